"""deeph-eval dos: density of states with Gaussian smearing on a uniform k-mesh."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..bands import checked_pair
from ..dos import gaussian_dos
from ..eigen import dense_eigvals
from ..electrons import filling
from ..kpath import mesh_size, periodic_directions, uniform_mesh
from ..plots import plot_dos
from ._common import add_electron_options, describe_filling, formula, load_folder, n_electrons_for, write_json


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
    p.set_defaults(func=run)


def mesh_dos(st, n_e, args):
    h, s = checked_pair(st)
    periodic = periodic_directions(st.cell, st.positions, st.pbc)
    size = mesh_size(st.cell, periodic, args.kspacing)
    kpts, w = uniform_mesh(size)
    eigs = dense_eigvals(h, s, st.n_orbitals(), kpts, where=st.source)
    fill = filling(eigs, kpts, w, n_e, smearing=args.smearing, where=st.source)
    return eigs, w, fill, size


def run(args) -> int:
    out = Path(args.out)
    st = load_folder(args.hamiltonian, "--hamiltonian")
    eigs, w, fill, size = mesh_dos(st, n_electrons_for(args, st), args)
    energies = fill.fermi_level + np.linspace(args.emin, args.emax, args.npts)
    dos = gaussian_dos(eigs, w, energies, args.sigma)
    payload = {"structure": st.source, "formula": formula(st), "mesh": size.tolist(), "sigma_eV": args.sigma,
               "energies_eV": energies.tolist(), "dos_states_per_eV": dos.tolist(), "fermi_level_eV": fill.fermi_level,
               "filling": fill.to_json()}
    series = [("DeepH" if args.reference else formula(st), dos, fill.fermi_level)]
    lines = [describe_filling("dos", fill, False)]
    table = [energies, dos]
    if args.reference:
        ref = load_folder(args.reference, "--reference")
        r_eigs, r_w, r_fill, _ = mesh_dos(ref, n_electrons_for(args, ref), args)
        r_energies = r_fill.fermi_level + np.linspace(args.emin, args.emax, args.npts)
        r_dos = gaussian_dos(r_eigs, r_w, r_energies, args.sigma)
        payload["reference"] = {"structure": ref.source, "energies_eV": r_energies.tolist(),
                                "dos_states_per_eV": r_dos.tolist(), "fermi_level_eV": r_fill.fermi_level}
        series = [("DFT", r_dos, r_fill.fermi_level), ("DeepH", dos, fill.fermi_level)]
        lines.insert(0, describe_filling("reference", r_fill, False))
        table += [r_energies, r_dos]
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "dos.json", payload)
    header = "E_eV DOS_states_per_eV" + (" E_ref_eV DOS_ref" if args.reference else "")
    tmp = out / ".dos.dat.tmp"
    np.savetxt(tmp, np.stack(table, axis=1), header=header)
    tmp.replace(out / "dos.dat")
    plot_dos(energies, [(lab, d, ef) for lab, d, ef in series], out / "dos.png",
             title=f"{formula(st)}: DOS, mesh {'x'.join(map(str, size))}, σ = {args.sigma} eV")
    print("\n".join(lines))
    print(f"wrote {out / 'dos.json'}, {out / 'dos.dat'} and {out / 'dos.png'}")
    return 0
