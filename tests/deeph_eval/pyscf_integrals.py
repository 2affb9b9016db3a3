"""Real Hamiltonian-like data for the evaluation tests, computed with PySCF integrals (no SCF, seconds).

``integral_structure`` returns a DeepH structure whose "Hamiltonian" is the kinetic-energy operator
T(R) = <φ_i,0| -½∇² |φ_j,R> (converted to eV) and whose overlap is S(R), both exact real-space
integrals between the atom-centred GTOs of cell 0 and of cell R (gto.intor_cross on translated copies).
PySCF's own lattice-summed k-space integrals (``cell.pbc_intor(..., kpts)``) are the independent
reference for everything k-space. PySCF orders p shells (px, py, pz) = OpenMX order; the tests use
s/p bases only, so PySCF's AO order is the DeepH (OpenMX) order.
"""

from __future__ import annotations

import itertools

import numpy as np
from pyscf import gto
from pyscf.pbc import gto as pgto

from data_prep.deeph_format import DeepHStructure

HARTREE_EV = 27.211386245988


def pyscf_cell(atoms, basis="gth-szv"):
    cell = pgto.Cell(
        a=np.asarray(atoms.cell), atom=[(s, p) for s, p in zip(atoms.get_chemical_symbols(), atoms.positions)],
        basis=basis, pseudo="gth-pade", unit="A", verbose=0, dimension=int(sum(atoms.pbc)) or 3,
    )
    return cell.build()


def integral_blocks(atoms, basis="gth-szv", tol=1e-7):
    """(T blocks in eV, S blocks, orbital types per atom) over all R with a non-negligible overlap."""
    cell = pyscf_cell(atoms, basis)
    mol = gto.M(atom=[(s, p) for s, p in zip(atoms.get_chemical_symbols(), atoms.positions)], basis=basis,
                unit="A", verbose=0)
    ao_off = mol.aoslice_by_atom()[:, 2:4]
    orbital_types = [[int(mol.bas_angular(b)) for b in range(*mol.aoslice_by_atom()[a, :2])] for a in range(mol.natm)]
    pbc = np.asarray(atoms.pbc, dtype=bool)
    t_blocks, s_blocks = {}, {}
    for shell in itertools.count():
        ranges = [range(-shell, shell + 1) if p else [0] for p in pbc]
        new = [r for r in itertools.product(*ranges) if max(map(abs, r), default=0) == shell]
        found = False
        for r in new:
            moved = mol.copy()
            moved.set_geom_(mol.atom_coords(unit="A") + np.array(r) @ np.asarray(atoms.cell), unit="A")
            s = gto.intor_cross("int1e_ovlp", mol, moved)
            if np.abs(s).max() < tol:
                continue
            found = True
            t = gto.intor_cross("int1e_kin", mol, moved) * HARTREE_EV
            for a in range(mol.natm):
                for b in range(mol.natm):
                    sa, sb = slice(*ao_off[a]), slice(*ao_off[b])
                    if np.abs(s[sa, sb]).max() >= tol:
                        s_blocks[(*r, a, b)] = s[sa, sb].copy()
                        t_blocks[(*r, a, b)] = t[sa, sb].copy()
        if not found:
            break
    return t_blocks, s_blocks, orbital_types, cell


def integral_structure(atoms, basis="gth-szv", n_electrons=None):
    t, s, orbital_types, cell = integral_blocks(atoms, basis)
    info = {} if n_electrons is None else {"n_electrons": n_electrons}
    st = DeepHStructure(
        cell=np.asarray(atoms.cell), positions=atoms.positions.copy(), numbers=atoms.numbers.copy(),
        orbital_types=orbital_types, hamiltonians=t, overlaps=s, pbc=np.asarray(atoms.pbc, dtype=bool),
        info=info, source=f"pyscf-integrals:{atoms.get_chemical_formula()}",
    )
    return st, cell
