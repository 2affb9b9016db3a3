"""deeph-eval predict: a trained model's H(R) for a structure, written as a DeepH folder (with exact S(R)).

info.json "gauge" says which energy zero the written H has (``deeph_eval.gauge``): a standardised model writes
H with <H,S> = 0; ``--reference DIR`` gives it the μ of a DFT calculation of the same structure, ``--shift-ev C``
adds C·S (every band C eV higher).
"""

from __future__ import annotations

import time
from pathlib import Path

from data_prep.deeph_format import LAYOUTS, write_deeph
from data_prep.outputs import check_output_path
from data_prep.pair_sets import on_one_pair_set

from .. import progress
from ..electrons import ElectronCountError
from ..checks import structure_difference
from ..fermi import fermi_filling
from ..gauge import restore_shift
from ..inference import (DEFAULT_OVERLAP_RADIUS, MAX_OVERLAP_RADIUS, OVERLAP_RADIUS_STEP, predicted_structure,
                         read_input_structure)
from ..model_io import load_checkpoint
from ._common import check_positive, describe_filling, formula, load_folder


def add_model_options(p, structure_required: bool = True) -> None:
    p.add_argument("--ckpt", required=structure_required, help="checkpoint written by train.py")
    p.add_argument("--structure", required=structure_required,
                   help="DeepH folder, CIF, POSCAR or any file ASE reads (Å)")
    p.add_argument("--dft-basis", default=None,
                   help="DFT basis for S(R) when the structure has no overlaps.h5 (default: the training data's)")
    p.add_argument("--overlap-radius", type=float, default=None,
                   help=f"Å: S(R) blocks for pairs closer than this (default: {DEFAULT_OVERLAP_RADIUS:g}, grown in steps of "
                        f"{OVERLAP_RADIUS_STEP:g} up to {MAX_OVERLAP_RADIUS:g} while S(k) is not positive definite, "
                        "as for diffuse Cs/Rb orbitals)")


def register(sub) -> None:
    p = sub.add_parser("predict", help="predict H(R) with a trained model; write a DeepH folder")
    add_model_options(p)
    p.add_argument("--out", required=True, help="output DeepH folder (written atomically)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace --out if it exists and holds only our own earlier output")
    p.add_argument("--format", choices=LAYOUTS, default="legacy",
                   help="DeepH layout to write: legacy (hamiltonians.h5, ...) or v1 (DeepH-pack v1: POSCAR, hamiltonian.h5)")
    p.add_argument("--n-electrons", type=float, default=None, help="valence electrons per cell (default: recipe)")
    p.add_argument("--kspacing", type=float, default=0.2, help="k-mesh spacing for the Fermi level, 1/Å")
    shift = p.add_mutually_exclusive_group()
    shift.add_argument("--reference", default=None,
                       help="DFT DeepH folder of the same structure: shift the predicted H by c*S so that its "
                            "mu = <H,S>/<S,S> equals the reference's (DFT's energy zero restored)")
    shift.add_argument("--shift-ev", type=float, default=None,
                       help="add C*S to the predicted H (every band, and the Fermi level, C eV higher)")
    p.set_defaults(func=run)


def predict_folder(args):
    """The predicted DeepHStructure (with Fermi level when the electron count is known) and its Filling."""
    loaded = load_checkpoint(args.ckpt)
    st = read_input_structure(args.structure)
    t0 = time.perf_counter()
    pred = predicted_structure(loaded, st, dft_basis=args.dft_basis, overlap_radius=args.overlap_radius,
                               n_electrons=getattr(args, "n_electrons", None))
    reference, shift_ev = getattr(args, "reference", None), getattr(args, "shift_ev", None)
    if reference is not None or shift_ev is not None:
        ref = None
        if reference is not None:
            ref = load_folder(reference, "--reference")
            diff = structure_difference(pred, ref, 1e-3)
            if diff:
                raise ValueError(f"--reference {reference}: not the structure {args.structure} ({diff})")
        restore_shift(pred, loaded.target_gauge, shift_eV=shift_ev, reference=ref)
    fill = None
    n_e = pred.info.get("n_electrons")
    if n_e is not None:
        try:
            fill = fermi_filling(pred, n_e, kspacing=args.kspacing)
        except ElectronCountError as err:
            raise ValueError(f"{args.structure}: {err}") from None
        pred.fermi_level = fill.fermi_level
    pred.info["predict_seconds"] = round(time.perf_counter() - t0, 3)
    return loaded, st, pred, fill


def run(args) -> int:
    out = Path(args.out)
    progress.enable()  # step lines on stderr: large structures take minutes to hours
    check_positive(args, "kspacing", "overlap_radius")
    check_output_path(out, [args.structure, args.ckpt], overwrite=args.overwrite)
    _, st, pred, fill = predict_folder(args)
    written, n_zero_h, _ = on_one_pair_set(pred)  # H = 0 beyond the model cutoff, on S's pairs (docs/evaluation.md)
    write_deeph(written, out, overwrite=args.overwrite, layout=args.format)
    n_blocks = len(pred.hamiltonians)
    print(f"{formula(pred)}: {pred.n_atoms} atoms, {n_blocks} predicted H blocks, S from {pred.info['overlap_source']}"
          + (f"; H written as zero for the {n_zero_h} S pairs beyond the model cutoff" if n_zero_h else ""))
    if fill is None:
        print("electron count unknown (no info.json n_electrons, no DFT recipe): no Fermi level written; "
              "pass --n-electrons")
    else:
        print(describe_filling("predicted", fill, False))
    g = pred.info["gauge"]
    if "mu_eV" in g:
        print(f"gauge: model trained on {g['model_target_gauge']} H; written H has mu = <H,S>/<S,S> = "
              f"{g['mu_eV']:.4f} eV" + (f" (shifted by {g['shift_eV']:+.4f} eV * S)" if g["shift_eV"] else "")
              + (f", the mu of {g['aligned_to']}" if g["aligned_to"] else ""))
    print(f"wrote {out}")
    return 0
