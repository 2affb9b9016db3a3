"""deeph-eval test: a checkpoint's H errors (meV) over a whole test set, optionally with band errors.

Data: a packed dataset (directory with metadata.json; ``--split`` picks the records) or a directory of
DeepH folders (every folder under it). Reference blocks are the data's own; predictions are compared on
every predicted block that has a reference block (``report.BlockErrorReport``). Structures the model cannot
handle (an element it never saw, another DFT basis, unreadable folder) are listed as skipped with the reason.
With ``--bands``: per-structure band errors of (predicted H, reference S) against (reference H, S), and the
truncation floor (reference H cut to the predicted blocks) next to them.

Gauge (``deeph_eval.gauge``): a standardised checkpoint predicts H - μ·S; its blocks are compared with the
reference standardised over the same blocks (the same as re-adding the reference's μ to the prediction), and
every report holds the gauge-invariant MAEs and each structure's μ next to the raw ones.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from data_prep.deeph_format import DeepHFormatError, DeepHStructure
from data_prep.outputs import check_writable

from ..band_errors import band_errors
from ..bands import common_bands, compute_bands
from ..electrons import ElectronCountError
from ..gauge import model_hamiltonian, mu_offset, reference_in_gauge, warn_if_mixed, written_gauge
from ..model_io import ModelInputError, check_known_elements, load_checkpoint, warn_if_other_recipe
from ..predict import DEFAULT_MAX_GRAPH_SIZE, predict_many
from ..report import BlockErrorReport
from ..truncation import truncated_reference
from ._common import check_positive, formula

if TYPE_CHECKING:
    from deeph_lightning.models.checkpoint import LoadedModel


def register(sub) -> None:
    p = sub.add_parser("test", help="H errors (meV) of a checkpoint over a test set: report.json, report.csv")
    p.add_argument("--ckpt", required=True, help="checkpoint written by train.py")
    p.add_argument("--data", required=True, help="packed dataset (LMDB directory) or a directory of DeepH folders")
    p.add_argument("--out", required=True, help="report.json path (report.csv is written next to it)")
    p.add_argument("--split", default="test", help="packed datasets: split to evaluate (train/val/test/all)")
    p.add_argument("--split-set", default="random",
                   help="packed datasets: random, composition (held-out chemical systems) or complicated")
    p.add_argument("--bands", action="store_true", help="also band errors per structure (costs a diagonalisation)")
    p.add_argument("--window", type=float, default=2.0, help="band errors: ± window around E_F, eV")
    p.add_argument("--npoints", type=int, default=40, help="band errors: k-points along the path")
    p.add_argument("--kspacing", type=float, default=0.3, help="band errors: mesh spacing for E_F, 1/Å")
    p.add_argument("--band-align", choices=("fermi", "mu", "none"), default="fermi",
                   help="band errors: align the Fermi levels, or restore the reference's mu = <H,S>/<S,S> to the "
                        "prediction, or absolute energies (meaningless for a standardised model)")
    p.add_argument("--max-graph-size", type=int, default=DEFAULT_MAX_GRAPH_SIZE,
                   help="nodes + edges per forward pass (structures are batched up to this)")
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                   help="inference precision (float32: the trainer's own arithmetic)")
    p.set_defaults(func=run)


def _record_structure(rec: dict, where: str) -> DeepHStructure:
    from ..blocklist import BlockList

    n_orb = rec["orbital_counts"]
    h = BlockList.from_record(rec, "h").to_blocks()
    s = BlockList.from_record(rec, "s").to_blocks() if rec.get("s_node") is not None and rec["s_node"].size else None
    fermi = float(rec["fermi_level"][0])
    return DeepHStructure(cell=rec["cell"], positions=rec["positions"], numbers=rec["atomic_numbers"],
                          orbital_types=[[] for _ in n_orb], fermi_level=None if np.isnan(fermi) else fermi,
                          hamiltonians=h, overlaps=s, pbc=rec["pbc"].astype(bool), source=where)


def iter_dataset(path: str, split: str, split_set: str = "random"):
    """(structure id, DeepHStructure or the reason it cannot be read, dataset-level DFT recipe or None)."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{path}: no such file or directory")
    if (p / "metadata.json").is_file():
        from data_prep.lmdb_dataset import LmdbDataset

        ds = LmdbDataset(p)
        recipe = ds.metadata.get("dft_recipe")
        idx = range(len(ds)) if split == "all" else ds.split(split, split_set)
        ids = ds.metadata.get("ids") or [str(i) for i in range(len(ds))]
        for i in idx:
            rec = ds[i]
            sid = str(rec.get("structure_id") or ids[i])
            st = _record_structure(rec, f"{path} record {i} ({sid})")
            st.info["orbital_counts"] = rec["orbital_counts"].tolist()
            yield sid, st, recipe
        return
    from data_prep.deeph_format import read_deeph
    from data_prep.lmdb_dataset import find_structure_folders, structure_ids

    folders = find_structure_folders([p])
    for sid, folder in zip(structure_ids(folders), folders):
        try:
            yield sid, read_deeph(folder), None
        except DeepHFormatError as err:
            yield sid, str(err), None


def _check_fits(loaded: LoadedModel, st: DeepHStructure) -> None:
    check_known_elements(loaded, st.numbers, st.source)
    model_n = [loaded.basis.n_orbitals(int(z)) for z in st.numbers]
    have = st.info.get("orbital_counts") or st.n_orbitals().tolist()
    if list(have) != model_n:
        a = next(k for k, (x, y) in enumerate(zip(have, model_n)) if x != y)
        raise ModelInputError(f"{st.source}: atom {a + 1} has {have[a]} orbitals in the data but {model_n[a]} in the "
                              "model's basis (another DFT basis)")
    if st.hamiltonians is None:
        raise ModelInputError(f"{st.source}: no reference Hamiltonian (hamiltonians.h5) to compare with")
    if not any(st.orbital_types):  # packed records keep counts only; the counts match the model's shells
        st.orbital_types = [list(loaded.basis.shells_of(int(z))) for z in st.numbers]


def _n_electrons(st: DeepHStructure, recipe: dict | None) -> float:
    from ..electrons import resolve_n_electrons

    if st.info.get("n_electrons") is None and recipe and recipe.get("basis"):
        from data_prep.dft import DFTSettings, valence_electrons

        from ..inference import to_atoms

        settings = DFTSettings(basis=recipe["basis"], **({"pseudo": recipe["pseudo"]} if recipe.get("pseudo") else {}))
        return float(valence_electrons(to_atoms(st), settings))
    return resolve_n_electrons(None, st.info, st.numbers, st.source)


def structure_bands(st: DeepHStructure, pred_h, n_e: float, args) -> tuple[dict, dict]:
    """(band errors of the prediction, truncation floor), both vs the full (raw DFT) reference."""
    align = getattr(args, "band_align", "fermi")
    ref = compute_bands(st, n_e, npoints=args.npoints, kspacing=args.kspacing)
    out = []
    for h in (pred_h, truncated_reference(st, pred_h.keys())[0].hamiltonians):
        other = DeepHStructure(**{**st.__dict__, "hamiltonians": h})
        res = compute_bands(other, n_e, kpath=ref.kpath, kspacing=args.kspacing)
        a, b = common_bands(res, ref)
        shift = mu_offset(h, st.hamiltonians, st.overlaps) if align == "mu" else None
        out.append(band_errors(a, b, res.filling.fermi_level, ref.filling.fermi_level, window=args.window,
                               align=align, mu_shift=shift))
    return out[0], out[1]


def run(args) -> int:
    check_positive(args, "kspacing", "window")
    check_positive(args, "npoints", minimum=1)
    check_positive(args, "max_graph_size")
    check_writable(args.out)
    loaded = load_checkpoint(args.ckpt, dtype=args.dtype)
    gauge = loaded.target_gauge
    if args.bands:
        warn_if_mixed(gauge, "raw", args.band_align, f"{args.ckpt} band errors")
    report = BlockErrorReport()
    report.training_bonds = loaded.training_bonds
    report.meta = {"checkpoint": str(args.ckpt), "data": str(args.data), "split": args.split,
                   "split_set": args.split_set, "model_cutoff_A": loaded.cutoff, "dtype": args.dtype,
                   "target_gauge": gauge,
                   "reference_gauge": "raw" if gauge == "raw" else "standardised over the predicted blocks"}
    if args.bands:
        report.meta["band_align"] = args.band_align
    t0 = time.perf_counter()
    from data_prep.lmdb_dataset import dft_recipe as lmdb_dft_recipe

    usable: list[tuple[str, DeepHStructure, dict | None]] = []
    warned: set[str] = set()
    for sid, st, recipe in iter_dataset(args.data, args.split, args.split_set):
        if isinstance(st, str):
            report.skip(sid, st)
            continue
        data_recipe = recipe or lmdb_dft_recipe(st.info)
        key = json.dumps(data_recipe, sort_keys=True)
        if key not in warned:
            warned.add(key)
            if warn_if_other_recipe(loaded, data_recipe, st.source if recipe is None else str(args.data)):
                report.meta.setdefault("recipe_mismatch", []).append(data_recipe)
        try:
            _check_fits(loaded, st)
        except ModelInputError as err:
            report.skip(sid, str(err))
            continue
        usable.append((sid, st, recipe))
    outside: list[list[str]] = []
    for n, ((sid, st, recipe), pred) in enumerate(zip(usable, predict_many(loaded, [u[1] for u in usable],
                                                                         max_graph_size=args.max_graph_size,
                                                                         outside=outside))):
        extra: dict = {"formula": formula(st)}
        if outside[n]:
            extra["outside_training"] = outside[n]
        if st.overlaps is not None:
            pred = model_hamiltonian(loaded, st.numbers, pred, st.overlaps)
        bands = None
        if args.bands:
            try:
                bands, floor = structure_bands(st, pred, _n_electrons(st, recipe), args)
                extra["truncation_floor"] = floor
            except (ElectronCountError, DeepHFormatError, ValueError) as err:
                extra["band_error_skipped"] = str(err)
        try:
            ref_h, mus = reference_in_gauge(written_gauge(gauge), pred, st.hamiltonians, st.overlaps, st.source)
        except ValueError as err:
            report.skip(sid, str(err))
            continue
        report.add_structure(sid, st.numbers, pred, ref_h, band_errors=bands, overlaps=st.overlaps,
                             positions=st.positions, cell=st.cell, **mus, **extra)
    report.meta["seconds"] = round(time.perf_counter() - t0, 2)
    report.write(args.out)
    print(report.table())
    skipped = [s["id"] for s in report.structures if "band_error_skipped" in s]
    if skipped:
        print(f"band errors skipped for {len(skipped)} structure(s) (\"band_error_skipped\" in {args.out} says why): "
              + ", ".join(skipped))
    unfamiliar = sum(1 for s in report.structures if s.get("outside_training"))
    if unfamiliar:
        print(f"{unfamiliar} structure(s) have nearest-neighbour bonds outside the model's training set "
              f"(\"outside_training\" in {args.out})")
    print(f"wrote {args.out} and {Path(args.out).with_suffix('.csv')}")
    return 0
