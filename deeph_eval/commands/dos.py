"""deeph-eval dos: density of states with Gaussian smearing, on a uniform k-mesh or (large structures) by KPM."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data_prep.outputs import check_writable

from ..blocklist import BlockList
from ..checks import checked_pair
from ..dos import gaussian_dos
from ..eigen import DENSE_MAX_ORBITALS, bloch_pair, dense_eigvals
from ..electrons import filling
from ..kpath import mesh_size, periodic_directions, uniform_mesh
from ..level_count import kpm_dos, kpm_moments, level_count, moments_for_broadening, spectral_bounds
from ..plots import plot_dos
from ..sparse_bloch import SparseBloch
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


@dataclass
class DosResult:
    energies: np.ndarray  # eV, absolute
    dos: np.ndarray  # states / eV / cell, spin included
    fermi_level: float
    summary: str
    meta: dict


def mesh_dos(st, n_e, args) -> DosResult:
    h, s = checked_pair(st)
    periodic = periodic_directions(st.cell, st.positions, st.pbc)
    size = mesh_size(st.cell, periodic, args.kspacing)
    kpts, w = uniform_mesh(size)
    eigs = dense_eigvals(h, s, st.n_orbitals(), kpts, where=st.source)
    fill = filling(eigs, kpts, w, n_e, smearing=args.smearing, where=st.source)
    energies = fill.fermi_level + np.linspace(args.emin, args.emax, args.npts)
    return DosResult(energies, gaussian_dos(eigs, w, energies, args.sigma), fill.fermi_level,
                     describe_filling(st.source or "dos", fill, False),
                     {"solver": "dense", "mesh": size.tolist(), "filling": fill.to_json()})


def kpm_structure_dos(st, n_e, args) -> DosResult:
    """Γ-point DOS of a large cell (a supercell) by the kernel polynomial method: time and memory linear in N."""
    h, s = checked_pair(st)
    n_orb = st.n_orbitals()
    sh = SparseBloch(BlockList.from_blocks(h, n_orb))
    ss = None if s is None else SparseBloch(BlockList.from_blocks(s, n_orb))
    hk, sk = bloch_pair(sh, ss, np.zeros(3))
    lo, hi = spectral_bounds(hk, sk)
    n_moments = moments_for_broadening(0.5 * (hi - lo), args.sigma)
    moments = kpm_moments(hk, sk, n_orb, n_moments, n_vectors=args.n_vectors, bounds=(lo, hi), where=st.source)
    count = level_count(moments)
    ef = count.fermi_estimate(n_e)
    energies = ef + np.linspace(args.emin, args.emax, args.npts)
    summary = (f"{st.source or 'dos'}: Fermi level ≈ {ef:.3f} eV (KPM estimate at Γ from {n_e:g} electrons; "
               f"`deeph-eval bands --solver sparse` gives the exact gap)")
    meta = {"solver": "kpm", "mesh": [1, 1, 1], "n_moments": n_moments, "n_vectors": args.n_vectors,
            "spectrum_eV": [lo, hi], "stochastic_error_levels": count.noise}
    return DosResult(energies, kpm_dos(moments, energies, args.sigma), ef, summary, meta)


def structure_dos(st, n_e, args) -> DosResult:
    solver = args.solver
    if solver == "auto":
        solver = "dense" if st.n_orbitals().sum() <= DENSE_MAX_ORBITALS else "kpm"
    return mesh_dos(st, n_e, args) if solver == "dense" else kpm_structure_dos(st, n_e, args)


def run(args) -> int:
    out = Path(args.out)
    check_positive(args, "kspacing", "sigma", "smearing", "n_vectors")
    check_positive(args, "npts", minimum=1)
    check_writable(out)
    st = load_folder(args.hamiltonian, "--hamiltonian")
    res = structure_dos(st, n_electrons_for(args, st), args)
    payload = {"structure": st.source, "formula": formula(st), **res.meta, "sigma_eV": args.sigma,
               "energies_eV": res.energies.tolist(), "dos_states_per_eV": res.dos.tolist(),
               "fermi_level_eV": res.fermi_level}
    series = [("DeepH" if args.reference else formula(st), res.dos, res.fermi_level)]
    lines = [res.summary]
    table = [res.energies, res.dos]
    if args.reference:
        ref_st = load_folder(args.reference, "--reference")
        ref = structure_dos(ref_st, n_electrons_for(args, ref_st), args)
        payload["reference"] = {"structure": ref_st.source, "energies_eV": ref.energies.tolist(),
                                "dos_states_per_eV": ref.dos.tolist(), "fermi_level_eV": ref.fermi_level}
        series = [("DFT", ref.dos, ref.fermi_level), ("DeepH", res.dos, res.fermi_level)]
        lines.insert(0, ref.summary)
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
