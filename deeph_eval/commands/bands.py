"""deeph-eval bands: band structure along a high-symmetry path, optionally against a reference."""

from __future__ import annotations

from pathlib import Path

from ..band_errors import band_errors
from ..bands import BandResult, common_bands, compute_bands
from ..plots import plot_bands
from ._common import add_electron_options, describe_filling, formula, load_folder, n_electrons_for, write_json


def register(sub) -> None:
    p = sub.add_parser("bands", help="band structure (bands.json, bands.png) from a DeepH folder's H(R), S(R)")
    p.add_argument("--hamiltonian", required=True, help="DeepH folder with hamiltonians.h5 and overlaps.h5")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--reference", help="DeepH folder of the reference (DFT) Hamiltonian to overlay and compare")
    add_electron_options(p)
    p.add_argument("--path", default=None, help="special points in ASE notation, e.g. GXWKGL (default: automatic)")
    p.add_argument("--npoints", type=int, default=120, help="k-points along the path")
    p.add_argument("--kspacing", type=float, default=0.2, help="uniform-mesh spacing for the Fermi level, 1/Å")
    p.add_argument("--solver", choices=("auto", "dense", "sparse"), default="auto")
    p.add_argument("--n-bands", type=int, default=16, help="sparse solver: levels per k nearest the Fermi level")
    p.add_argument("--fermi-level", type=float, default=None,
                   help="sparse solver: centre energy (default: info.json fermi_level)")
    p.add_argument("--window", type=float, default=2.0, help="band errors: ± window around E_F, eV")
    p.add_argument("--align", choices=("fermi", "none"), default="fermi", help="band errors: energy alignment")
    p.add_argument("--emin", type=float, default=-6.0)
    p.add_argument("--emax", type=float, default=6.0)
    p.set_defaults(func=run)


def _bands(args, st, n_e, kpath=None) -> BandResult:
    return compute_bands(
        st, n_e, kpath=kpath, npoints=args.npoints, path=args.path, kspacing=args.kspacing,
        smearing=args.smearing, solver=args.solver, n_bands=args.n_bands, centre=args.fermi_level,
    )


def run(args) -> int:
    out = Path(args.out)
    st = load_folder(args.hamiltonian, "--hamiltonian")
    n_e = n_electrons_for(args, st)
    res = _bands(args, st, n_e)
    molecule = res.kpath.dimensionality == 0
    payload = {"structure": st.source, "formula": formula(st), **res.to_json()}
    series = [("DeepH" if args.reference else formula(st), res.energies, res.filling.fermi_level)]
    lines = [describe_filling("bands", res.filling, molecule)]
    if args.reference:
        ref_st = load_folder(args.reference, "--reference")
        ref = _bands(args, ref_st, n_electrons_for(args, ref_st), kpath=res.kpath)
        pred_e, ref_e = common_bands(res, ref)
        errs = band_errors(pred_e, ref_e, res.filling.fermi_level, ref.filling.fermi_level,
                           window=args.window, align=args.align)
        payload["reference"] = {"structure": ref_st.source, **ref.to_json()}
        payload["band_errors"] = errs
        ef_pred = res.filling.fermi_level if args.align == "fermi" else ref.filling.fermi_level
        series = [("DFT", ref.energies, ref.filling.fermi_level), ("DeepH", res.energies, ef_pred)]
        lines = [describe_filling("DFT  ", ref.filling, molecule), describe_filling("DeepH", res.filling, molecule),
                 f"band error within ±{args.window} eV of E_F ({args.align} alignment): "
                 f"MAE {errs['mae_meV']:.2f} meV, max {errs['max_abs_meV']:.2f} meV over {errs['n_values']} values"]
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "bands.json", payload)
    title = f"{formula(st)}: " + ("Γ-point levels" if molecule else f"path {res.kpath.path}")
    plot_bands(res.kpath, series, out / "bands.png", emin=args.emin, emax=args.emax, title=title)
    if molecule:
        levels = ", ".join(f"{e:.3f}" for e in res.energies[0])
        lines.append(f"levels (eV): {levels}")
    print("\n".join(lines))
    print(f"wrote {out / 'bands.json'} and {out / 'bands.png'}")
    return 0
