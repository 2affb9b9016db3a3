"""The SCF with PySCF's multigrid on every k-point vs on half of them (``data_prep.dft.time_reversal``).

    python bench/scf_half_mesh.py [--structures si,nacl,cu,cr] [--threads 1]

Per structure, both SCFs start from the same guess with the default recipe; prints cycles, seconds, the speed-up,
and how far apart the converged results are: Kohn-Sham matrices (max |ΔF| over the mesh), total energies, and
band energies within 2 eV of the band edges at 4 random off-mesh k-points (max |ΔE|), all in meV. They differ by
the grid's integration error: PySCF's multigrid matrices at k and at the equivalent k + G of the mesh are not
equal (tens of meV in steep semicore elements at 60 Ha), and the two SCFs use different ones.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from dft_cost import structure

from data_prep.dft import DFTSettings
from data_prep.dft.fidelity import edge_window, off_mesh_kpoints
from data_prep.dft.runner import fermi_level, hartree_to_ev, initial_density, make_scf, pyscf_band_energies
from data_prep.dft.settings import kmesh_from_spacing
from data_prep.dft.structure import build_cell, valence_electrons


def converged(mf, dm0):
    t0 = time.perf_counter()
    mf.kernel(dm0=dm0)
    return time.perf_counter() - t0


def main(argv=None) -> int:
    from pyscf import lib
    from pyscf.pbc.dft.multigrid import MultiGridNumInt

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--structures", default="si,nacl,cu,cr")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    lib.num_threads(args.threads)
    settings, ev = DFTSettings(), hartree_to_ev()
    print("| structure | k-mesh | grid (Ha) | cycles | SCF all k (s) | SCF half (s) | speed-up | max ΔF | ΔE_tot | max Δ band |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in args.structures.split(","):
        atoms = structure(name)
        cell = build_cell(atoms, settings, name)
        kmesh = kmesh_from_spacing(atoms.cell[:], settings.kspacing)
        half = make_scf(cell, cell.make_kpts(kmesh), settings)
        stock = make_scf(cell, cell.make_kpts(kmesh), settings)
        stock._numint = MultiGridNumInt(cell)
        dm0 = initial_density(stock)[0]
        t_stock, t_half = converged(stock, dm0), converged(half, dm0)
        df = np.abs(np.asarray(stock.get_fock()) - np.asarray(half.get_fock())).max() * ev * 1e3
        de = abs(stock.e_tot - half.e_tot) * ev * 1e3
        kpts = off_mesh_kpoints(4)
        bands_stock, bands_half = pyscf_band_energies(stock, kpts), pyscf_band_energies(half, kpts)
        mu = fermi_level(stock.mo_energy, valence_electrons(atoms, settings), settings.smearing / ev) * ev
        near = edge_window(bands_stock, mu, 2.0)
        dband = np.abs(bands_stock - bands_half)[near].max() * 1e3
        print(f"| {name} | {'×'.join(map(str, kmesh))} | {cell.ke_cutoff:g} | {stock.cycles}/{half.cycles} | "
              f"{t_stock:.1f} | {t_half:.1f} | {t_stock / t_half:.2f} | {df:.3f} | {de:.3f} | {dband:.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
