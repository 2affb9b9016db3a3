"""Cost and fidelity of the default PySCF recipe: time per stage and band error vs truncation radius.

    OMP_NUM_THREADS=2 python bench/dft_cost.py [--structures si,nacl,graphene,cu] [--threads 2]
    python bench/dft_cost.py --structures K.extxyz,Cs.extxyz --radius 16 --alias-radius 22 --radii 8,9.5,11,12.5,14

``--structures``: built-in names (``STRUCTURES``) or files ASE reads. Prints, per structure: SCF / dense-Fock /
overlap seconds, meshes, stored blocks, and the band error (max/mean meV within ``--window`` of the band edges,
4 random off-mesh k-points) of H(R), S(R) truncated at each of ``--radii`` and at the stored radius.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from ase.build import bulk, graphene

from data_prep.dft import DFTSettings, pyscf_band_energies, run_dft
from data_prep.dft.fidelity import edge_window, off_mesh_kpoints
from data_prep.kspace import band_energies

STRUCTURES = {
    "si": lambda: bulk("Si", "diamond", a=5.43),
    "nacl": lambda: bulk("NaCl", "rocksalt", a=5.64),
    "graphene": lambda: graphene(vacuum=9.0),
    "cu": lambda: bulk("Cu", "fcc", a=3.61),
    "cr": lambda: bulk("Cr", "bcc", a=2.88),
    "k": lambda: bulk("K", "bcc", a=5.23),
    "cs": lambda: bulk("Cs", "bcc", a=6.05),
}


def structure(name: str):
    if name in STRUCTURES:
        return STRUCTURES[name]()
    from ase.io import read

    return read(name)


def truncated(st, radius):
    keep = {k for k in st.hamiltonians
            if np.linalg.norm(st.positions[k[4]] + np.array(k[:3]) @ st.cell - st.positions[k[3]]) < radius}
    return {k: st.hamiltonians[k] for k in keep}, {k: st.overlaps[k] for k in keep}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--structures", default="si,nacl,graphene,cu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--radius", type=float, default=DFTSettings.radius, help="Å, blocks stored (the largest cut)")
    p.add_argument("--alias-radius", type=float, default=None, help="Å, dense mesh alias-free to this")
    p.add_argument("--radii", default="6,7,8", help="Å, cuts below --radius to compare")
    p.add_argument("--window", type=float, default=5.0, help="eV beyond the band edges")
    p.add_argument("--ke-cutoff-d", type=float, default=DFTSettings.ke_cutoff_d,
                   help="Ha, grid of cells with d shells (0: the same grid as the others)")
    args = p.parse_args()
    radii = tuple(float(r) for r in args.radii.split(",")) + (None,)
    print(f"{'structure':<10} {'atoms':>5} {'kmesh':>8} {'dense':>8} {'scf/s':>7} {'fock/s':>7} {'S/s':>5} "
          f"{'blocks':>6} " + " ".join(f"{'err@' + (f'{r:g}' if r else 'max') + ' max/mean meV':>24}" for r in radii))
    for name in args.structures.split(","):
        atoms = structure(name)
        atoms.pbc = True
        settings = DFTSettings(threads=args.threads, radius=args.radius, alias_radius=args.alias_radius,
                               ke_cutoff_d=args.ke_cutoff_d or None)
        res = run_dft(atoms, settings)
        st = res.structure
        k = off_mesh_kpoints(4, seed=0)
        ref = pyscf_band_energies(res.scf, k)
        sel = edge_window(ref, st.fermi_level, args.window)
        cols = []
        for r in radii:
            h, s = truncated(st, r if r else np.inf)
            err = np.abs(band_energies(h, s, st.n_orbitals(), k) - ref)[sel] * 1000
            cols.append(f"{err.max():11.2f} / {err.mean():9.2f}")
        tm = res.timings
        meshes = f"{'x'.join(map(str, res.kmesh)):>8} {'x'.join(map(str, res.dense_kmesh)):>8}"
        print(f"{Path(name).stem:<10} {len(atoms):>5} {meshes} "
              f"{tm['scf']:7.1f} {tm['dense_fock']:7.1f} {tm['overlap']:5.2f} {len(st.hamiltonians):>6} "
              + " ".join(f"{c:>24}" for c in cols), flush=True)


if __name__ == "__main__":
    main()
