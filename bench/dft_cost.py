"""Cost and fidelity of the default PySCF recipe: time per stage and band error vs truncation radius.

    OMP_NUM_THREADS=2 python bench/dft_cost.py [--structures si,nacl,graphene,cu] [--threads 2]

Prints, per structure: SCF / dense-Fock / overlap seconds, meshes, stored blocks, and the band error
(max/mean meV within E_F ± 5 eV, 4 random off-mesh k-points) of H(R), S(R) truncated at 6, 7, 8 Å and at
the stored radius.
"""

from __future__ import annotations

import argparse

import numpy as np
from ase.build import bulk, graphene

from data_prep.dft import DFTSettings, pyscf_band_energies, run_dft
from data_prep.dft.fidelity import off_mesh_kpoints
from data_prep.kspace import band_energies

STRUCTURES = {
    "si": lambda: bulk("Si", "diamond", a=5.43),
    "nacl": lambda: bulk("NaCl", "rocksalt", a=5.64),
    "graphene": lambda: graphene(vacuum=9.0),
    "cu": lambda: bulk("Cu", "fcc", a=3.61),
}


def truncated(st, radius):
    keep = {k for k in st.hamiltonians
            if np.linalg.norm(st.positions[k[4]] + np.array(k[:3]) @ st.cell - st.positions[k[3]]) < radius}
    return {k: st.hamiltonians[k] for k in keep}, {k: st.overlaps[k] for k in keep}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--structures", default="si,nacl,graphene,cu")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    radii = (6.0, 7.0, 8.0, None)
    print(f"{'structure':<10} {'atoms':>5} {'kmesh':>8} {'dense':>8} {'scf/s':>7} {'fock/s':>7} {'S/s':>5} "
          f"{'blocks':>6} " + " ".join(f"{'err@' + (f'{r:g}' if r else 'max') + ' max/mean meV':>24}" for r in radii))
    for name in args.structures.split(","):
        atoms = STRUCTURES[name]()
        atoms.pbc = True
        res = run_dft(atoms, DFTSettings(threads=args.threads))
        st = res.structure
        k = off_mesh_kpoints(4, seed=0)
        ref = pyscf_band_energies(res.scf, k)
        sel = np.abs(ref - st.fermi_level) <= 5.0
        cols = []
        for r in radii:
            h, s = truncated(st, r if r else np.inf)
            err = np.abs(band_energies(h, s, st.n_orbitals(), k) - ref)[sel] * 1000
            cols.append(f"{err.max():11.2f} / {err.mean():9.2f}")
        tm = res.timings
        print(f"{name:<10} {len(atoms):>5} {'x'.join(map(str, res.kmesh)):>8} {'x'.join(map(str, res.dense_kmesh)):>8} "
              f"{tm['scf']:7.1f} {tm['dense_fock']:7.1f} {tm['overlap']:5.2f} {len(st.hamiltonians):>6} "
              + " ".join(f"{c:>24}" for c in cols), flush=True)


if __name__ == "__main__":
    main()
