"""deeph-eval bands: band structure along a high-symmetry path, optionally against a reference."""

from __future__ import annotations

from pathlib import Path

from data_prep.outputs import check_writable

from .. import progress
from ..band_errors import band_errors
from ..bands import BandResult, common_bands, compute_bands
from ..plots import plot_bands
from ..checks import structure_difference
from ..gauge import folder_gauge, mu_offset, warn_if_mixed
from ..truncation import model_blocks, truncated_reference
from ._common import (add_electron_options, check_positive, describe_filling, formula, load_folder, n_electrons_for,
                      write_json)
from .predict import add_model_options


def register(sub) -> None:
    p = sub.add_parser("bands", help="band structure (bands.json, bands.png) from a DeepH folder's H(R), S(R)")
    p.add_argument("--hamiltonian", help="DeepH folder with hamiltonians.h5 and overlaps.h5 (or use --ckpt)")
    add_model_options(p, structure_required=False)  # --ckpt/--structure: H predicted by a model
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--reference", help="DeepH folder of the reference (DFT) Hamiltonian to overlay and compare")
    add_electron_options(p)
    p.add_argument("--path", default=None, help="special points in ASE notation, e.g. GXWKGL (default: automatic)")
    p.add_argument("--npoints", type=int, default=120, help="k-points along the path")
    p.add_argument("--kspacing", type=float, default=0.2, help="uniform-mesh spacing for the Fermi level, 1/Å")
    p.add_argument("--solver", choices=("auto", "dense", "sparse", "matrix-free"), default="auto",
                   help="auto: dense up to 3000 orbitals, sparse (shift-invert LDL^H, exact band indices) up to "
                        "20000, else matrix-free (no factorization, memory linear in the number of atoms)")
    p.add_argument("--n-bands", type=int, default=16, help="sparse solver: levels per k nearest the Fermi level")
    p.add_argument("--fermi-level", type=float, default=None,
                   help="sparse solvers: centre energy (default: sparse: info.json fermi_level, else found from the "
                        "electron count; matrix-free: the Γ mid-gap found from the electron count)")
    p.add_argument("--window", type=float, default=2.0, help="band errors: ± window around E_F, eV")
    p.add_argument("--structure-tol", type=float, default=1e-3,
                   help="Å: --reference must have the same species, lattice and positions to within this")
    p.add_argument("--align", choices=("fermi", "mu", "none"), default="fermi",
                   help="band errors: align the Fermi levels; or shift the prediction rigidly to the reference's "
                        "mu = <H,S>/<S,S>; or absolute energies (meaningless for a standardised model)")
    p.add_argument("--emin", type=float, default=-6.0)
    p.add_argument("--emax", type=float, default=6.0)
    p.set_defaults(func=run)


def _bands(args, st, n_e, kpath=None) -> BandResult:
    return compute_bands(
        st, n_e, kpath=kpath, npoints=args.npoints, path=args.path, kspacing=args.kspacing,
        smearing=args.smearing, solver=args.solver, n_bands=args.n_bands, centre=args.fermi_level,
    )


def _same_atoms(a, b) -> bool:
    return (a.numbers.tolist() == b.numbers.tolist() and a.positions.shape == b.positions.shape
            and abs(a.positions - b.positions).max() < 1e-6 and abs(a.cell - b.cell).max() < 1e-6)


def hamiltonian_source(args):
    """(structure whose bands to compute, loaded model or None): a DeepH folder or a model prediction."""
    if args.hamiltonian:
        if args.ckpt:
            raise ValueError("give either --hamiltonian or --ckpt, not both")
        return load_folder(args.hamiltonian, "--hamiltonian"), None
    if not args.ckpt:
        raise ValueError("give --hamiltonian DIR, or --ckpt CKPT with --structure PATH (or --reference DIR)")
    from ..inference import predicted_structure, read_input_structure
    from ..model_io import load_checkpoint

    path = args.structure or args.reference
    if path is None:
        raise ValueError("--ckpt needs --structure PATH (or --reference DIR to predict the reference's structure)")
    loaded = load_checkpoint(args.ckpt)
    st = read_input_structure(path)
    if st.overlaps is None and args.reference:
        ref = load_folder(args.reference, "--reference")
        if ref.overlaps is not None and _same_atoms(st, ref):
            st.overlaps = ref.overlaps  # same atoms: the reference's exact S
    return predicted_structure(loaded, st, dft_basis=args.dft_basis, overlap_radius=args.overlap_radius,
                               n_electrons=args.n_electrons), loaded


def truncation_floor(args, ref_st, ref: BandResult, predicted_keys) -> dict:
    """Bands of the reference H cut to the model's blocks (exact S) vs the full reference."""
    trunc_st, missing = truncated_reference(ref_st, predicted_keys)
    trunc = _bands(args, trunc_st, ref.filling.n_electrons, kpath=ref.kpath)
    t_e, r_e = common_bands(trunc, ref)
    shift = mu_offset(trunc_st.hamiltonians, ref_st.hamiltonians, ref_st.overlaps) if args.align == "mu" else None
    errs = band_errors(t_e, r_e, trunc.filling.fermi_level, ref.filling.fermi_level, window=args.window,
                       align=args.align, mu_shift=shift)
    errs["n_blocks_kept"] = len(trunc_st.hamiltonians)
    errs["n_reference_blocks"] = len(ref_st.hamiltonians)
    errs["n_model_blocks_missing_from_reference"] = missing
    return errs


def check_args(args) -> None:
    check_positive(args, "kspacing", "smearing", "window", "structure_tol")
    check_positive(args, "npoints", minimum=1)
    if args.path is not None and not args.path.replace(",", "").strip():
        raise ValueError(f"--path {args.path!r}: empty; give special points such as GXWKGL, or leave --path out")
    check_writable(args.out)


def check_reference(args, st, ref_st) -> None:
    """Band errors between two different structures are meaningless: refuse them."""
    diff = structure_difference(st, ref_st, args.structure_tol)
    if diff:
        raise ValueError(f"--reference {args.reference}: not the structure of the Hamiltonian {st.source} ({diff}, "
                         f"tolerance {args.structure_tol:g} Å)")


def run(args) -> int:
    out = Path(args.out)
    check_args(args)
    progress.enable()  # step lines on stderr: large structures take minutes to hours
    st, loaded = hamiltonian_source(args)
    ref_st = None
    if args.reference:
        ref_st = load_folder(args.reference, "--reference")
        check_reference(args, st, ref_st)
        warn_if_mixed(folder_gauge(st), folder_gauge(ref_st), args.align, f"--reference {args.reference}")
    n_e = n_electrons_for(args, st)
    res = _bands(args, st, n_e)
    molecule = res.kpath.dimensionality == 0
    payload = {"structure": st.source, "formula": formula(st), **res.to_json()}
    series = [("DeepH" if args.reference else formula(st), res.energies, res.filling.fermi_level)]
    lines = [describe_filling("bands", res.filling, molecule)]
    if args.reference:
        ref = _bands(args, ref_st, n_electrons_for(args, ref_st), kpath=res.kpath)
        pred_e, ref_e = common_bands(res, ref)
        shift = 0.0
        if args.align == "mu":
            shift = mu_offset(model_blocks(st), ref_st.hamiltonians, ref_st.overlaps)
        errs = band_errors(pred_e, ref_e, res.filling.fermi_level, ref.filling.fermi_level,
                           window=args.window, align=args.align, mu_shift=shift)
        if not res.filling.is_metal and not ref.filling.is_metal:  # the band window may hold no conduction band
            errs["gap_error_meV"] = 1000.0 * (res.filling.gap - ref.filling.gap)
        payload["reference"] = {"structure": ref_st.source, **ref.to_json()}
        payload["band_errors"] = errs
        if loaded is not None:
            floor = truncation_floor(args, ref_st, ref, st.hamiltonians.keys())
            payload["truncation_floor"] = {"cutoff_A": loaded.cutoff, **floor}
        ef_pred = res.filling.fermi_level if args.align == "fermi" else ref.filling.fermi_level - shift
        series = [("DFT", ref.energies, ref.filling.fermi_level), ("DeepH", res.energies, ef_pred)]
        lines = [describe_filling("DFT  ", ref.filling, molecule), describe_filling("DeepH", res.filling, molecule),
                 f"band error within ±{args.window} eV of E_F ({args.align} alignment): "
                 f"MAE {errs['mae_meV']:.2f} meV, max {errs['max_abs_meV']:.2f} meV over {errs['n_values']} values"]
        if "gap_error_meV" in errs:
            lines[-1] += f"; gap error {errs['gap_error_meV']:+.1f} meV (DeepH − DFT)"
        if loaded is not None:
            f = payload["truncation_floor"]
            lines[-1] = "model " + lines[-1]
            lines.append(f"truncation floor (reference H cut at the model cutoff {loaded.cutoff:g} Å, exact S): "
                         f"MAE {f['mae_meV']:.2f} meV, max {f['max_abs_meV']:.2f} meV")
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "bands.json", payload)
    title = f"{formula(st)}: " + ("Γ-point levels" if molecule else f"path {res.kpath.path}")
    plot_bands(res.kpath, series, out / "bands.png", emin=args.emin, emax=args.emax, title=title)
    if res.solver == "matrix-free":
        lines.append(f"matrix-free solver: band indices {res.to_json()['band_indices']}")
    if molecule:
        levels = ", ".join(f"{e:.3f}" for e in res.energies[0])
        lines.append(f"levels (eV): {levels}")
    print("\n".join(lines))
    print(f"wrote {out / 'bands.json'} and {out / 'bands.png'}")
    return 0
