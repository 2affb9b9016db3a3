"""deeph-eval dos: density of states with Gaussian smearing, on a uniform k-mesh or (large structures) by KPM."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from data_prep.outputs import check_writable

from ..dos import DosResult, structure_dos
from ..plots import plot_dos
from ..solvers import DENSE_MAX_ORBITALS
from ._common import (add_electron_options, check_positive, describe_filling, formula, load_folder, n_electrons_for,
                      write_json)


def register(sub) -> None:
    p = sub.add_parser("dos", help="density of states (dos.json, dos.dat, dos.png) from a DeepH folder")
    p.add_argument("--hamiltonian", required=True, help="DeepH folder with hamiltonians.h5 and overlaps.h5")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--reference", help="DeepH folder of a reference Hamiltonian to overlay")
    add_electron_options(p)
    p.add_argument("--kspacing", type=float, default=0.1, help="Γ-centred mesh spacing, 1/Å")
    p.add_argument("--sigma", type=float, default=0.1, help="Gaussian broadening of each level, eV")
    p.add_argument("--emin", type=float, default=-10.0, help="lowest energy relative to E_F, eV")
    p.add_argument("--emax", type=float, default=6.0, help="highest energy relative to E_F, eV")
    p.add_argument("--npts", type=int, default=1601)
    p.add_argument("--solver", choices=("auto", "dense", "kpm"), default="auto",
                   help=f"dense k-mesh, or KPM at Γ for large supercells (auto: KPM above {DENSE_MAX_ORBITALS} orbitals)")
    p.add_argument("--n-vectors", type=int, default=8, help="KPM: random vectors (stochastic error ∝ 1/√n)")
    p.set_defaults(func=run)


def dos_of(args, st) -> tuple[DosResult, str]:
    """The DOS of one structure as the options ask, and the line that describes its filling."""
    n_e = n_electrons_for(args, st)
    res = structure_dos(st, n_e, solver=args.solver, kspacing=args.kspacing, sigma=args.sigma, emin=args.emin,
                        emax=args.emax, npts=args.npts, smearing=args.smearing, n_vectors=args.n_vectors)
    if res.filling is not None:
        return res, describe_filling(st.source or "dos", res.filling, False)
    return res, (f"{st.source or 'dos'}: Fermi level ≈ {res.fermi_level:.3f} eV (KPM estimate at Γ from {n_e:g} "
                 f"electrons; `deeph-eval bands --solver sparse` gives the exact gap)")


def run(args) -> int:
    out = Path(args.out)
    check_positive(args, "kspacing", "sigma", "smearing", "n_vectors")
    check_positive(args, "npts", minimum=1)
    check_writable(out)
    st = load_folder(args.hamiltonian, "--hamiltonian")
    res, summary = dos_of(args, st)
    payload = {"structure": st.source, "formula": formula(st), **res.meta, "sigma_eV": args.sigma,
               "energies_eV": res.energies.tolist(), "dos_states_per_eV": res.dos.tolist(),
               "fermi_level_eV": res.fermi_level}
    series = [("DeepH" if args.reference else formula(st), res.dos, res.fermi_level)]
    lines = [summary]
    table = [res.energies, res.dos]
    if args.reference:
        ref_st = load_folder(args.reference, "--reference")
        ref, ref_summary = dos_of(args, ref_st)
        payload["reference"] = {"structure": ref_st.source, "energies_eV": ref.energies.tolist(),
                                "dos_states_per_eV": ref.dos.tolist(), "fermi_level_eV": ref.fermi_level}
        series = [("DFT", ref.dos, ref.fermi_level), ("DeepH", res.dos, res.fermi_level)]
        lines.insert(0, ref_summary)
        table += [ref.energies, ref.dos]
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "dos.json", payload)
    header = "E_eV DOS_states_per_eV" + (" E_ref_eV DOS_ref" if args.reference else "")
    tmp = out / ".dos.dat.tmp"
    np.savetxt(tmp, np.stack(table, axis=1), header=header)
    tmp.replace(out / "dos.dat")
    how = f"mesh {'x'.join(map(str, res.meta['mesh']))}" if res.meta["solver"] == "dense" else "KPM at Γ"
    plot_dos(res.energies, series, out / "dos.png", title=f"{formula(st)}: DOS, {how}, σ = {args.sigma} eV")
    print("\n".join(lines))
    print(f"wrote {out / 'dos.json'}, {out / 'dos.dat'} and {out / 'dos.png'}")
    return 0
