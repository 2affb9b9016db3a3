"""deeph-eval compare: block errors (and optionally band errors) between two sets of DeepH folders.

A predicted folder written in the standardised gauge (info.json "gauge", ``deeph_eval.gauge``) is compared with
its reference standardised over the same blocks; gauge-invariant MAEs and μ's are reported when S is there.
"""

from __future__ import annotations

from pathlib import Path

from data_prep.deeph_format import DeepHFormatError

from ..band_errors import band_errors
from ..bands import common_bands, compute_bands
from ..electrons import ElectronCountError
from ..gauge import folder_gauge, reference_in_gauge
from ..report import BlockErrorReport
from ..truncation import model_blocks
from ._common import formula, load_folder


def register(sub) -> None:
    p = sub.add_parser("compare", help="H errors (meV) of predicted DeepH folders against reference folders")
    p.add_argument("--predicted", required=True, nargs="+", help="DeepH folder(s) of predicted Hamiltonians")
    p.add_argument("--reference", required=True, nargs="+", help="matching reference DeepH folder(s), same order")
    p.add_argument("--out", required=True, help="report.json path (a .csv is written next to it)")
    p.add_argument("--bands", action="store_true", help="also compare bands (needs the electron count)")
    p.add_argument("--n-electrons", type=float, default=None)
    p.add_argument("--window", type=float, default=2.0)
    p.set_defaults(func=run)


def structure_band_errors(pred_st, ref_st, n_electrons, window) -> dict:
    ref = compute_bands(ref_st, n_electrons, npoints=40, kspacing=0.3)
    pred = compute_bands(pred_st, n_electrons, kpath=ref.kpath, kspacing=0.3)
    p, r = common_bands(pred, ref)
    return band_errors(p, r, pred.filling.fermi_level, ref.filling.fermi_level, window=window)


def run(args) -> int:
    if len(args.predicted) != len(args.reference):
        raise ValueError(f"--predicted has {len(args.predicted)} folders but --reference has {len(args.reference)}")
    report = BlockErrorReport()
    for pred_dir, ref_dir in zip(args.predicted, args.reference):
        sid = Path(pred_dir).name
        try:
            pred, ref = load_folder(pred_dir, "--predicted"), load_folder(ref_dir, "--reference")
        except DeepHFormatError as err:
            report.skip(sid, str(err))
            continue
        if pred.numbers.tolist() != ref.numbers.tolist():
            report.skip(sid, f"{pred_dir} and {ref_dir} hold different atoms")
            continue
        bands = None
        if args.bands:
            from ..electrons import resolve_n_electrons

            try:
                n_e = resolve_n_electrons(args.n_electrons, ref.info, ref.numbers, ref.source)
                bands = structure_band_errors(pred, ref, n_e, args.window)
            except (ElectronCountError, ValueError) as err:
                bands = {"error": str(err)}
        pred_h = model_blocks(pred)
        gauge = folder_gauge(pred) if folder_gauge(ref) == "raw" else "raw"
        try:
            ref_h, mus = reference_in_gauge(gauge, pred_h, ref.hamiltonians, ref.overlaps, ref.source)
        except ValueError as err:
            report.skip(sid, str(err))
            continue
        report.add_structure(sid, ref.numbers, pred_h, ref_h, overlaps=ref.overlaps, **mus,
                             positions=ref.positions, cell=ref.cell,
                             band_errors=bands if bands and "error" not in bands else None, formula=formula(ref),
                             **({"band_error_skipped": bands["error"]} if bands and "error" in bands else {}))
    report.write(args.out)
    print(report.table())
    print(f"wrote {args.out}")
    return 0
