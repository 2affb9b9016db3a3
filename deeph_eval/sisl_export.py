"""A DeepH structure's H(R), S(R) as a non-orthogonal sisl Hamiltonian: sisl's bands, DOS, PDOS, TBtrans (NEGF).

sisl orders a shell by m = −l…l (p = py, pz, px), the DeepH-pack v1 order, so each block is permuted from
OpenMX order with ``data_prep.basis.openmx_to_v1_order``; the atoms carry ``sisl.AtomicOrbital``s with the
shells' l and m (several shells of one l are zeta 1, 2, ...). Units: eV and Å, as sisl's. Block (i, j, R)
goes to row i, column j of the supercell image R: sisl's H(k) = Σ_R H(R) e^{ik·R} in its default 'lattice'
gauge is our ``data_prep.kspace.bloch_sum`` (tested, together with the eigenvalues).

sisl is imported only here (it takes seconds to import).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from data_prep.basis import element_symbol, openmx_to_v1_order
from data_prep.deeph_format import DeepHStructure
from data_prep.graph import block_bond_lengths
from data_prep.pair_sets import on_one_pair_set

SUFFIXES = (".TSHS", ".nc")


def _atoms(st: DeepHStructure, radius: np.ndarray):
    import sisl

    atoms = []
    for a, (z, shells) in enumerate(zip(st.numbers.tolist(), st.orbital_types)):
        orbitals, zeta = [], {}
        for l in shells:
            zeta[l] = zeta.get(l, 0) + 1
            orbitals += [sisl.AtomicOrbital(l=l, m=m, zeta=zeta[l], R=float(radius[a])) for m in range(-l, l + 1)]
        atoms.append(sisl.Atom(int(z), orbitals=orbitals, tag=element_symbol(int(z))))
    return atoms


def to_sisl(st: DeepHStructure):
    """``st``'s blocks (H in eV, S) as a ``sisl.Hamiltonian`` (non-orthogonal unless ``st.isorthogonal``)."""
    import scipy.sparse
    import sisl

    if st.hamiltonians is None:
        raise ValueError(f"{st.source or 'structure'}: no Hamiltonian blocks to export")
    if st.overlaps is None and not st.isorthogonal:
        raise ValueError(f"{st.source or 'structure'}: no overlap blocks and the basis is not orthogonal")
    st, _, _ = on_one_pair_set(st)
    keys = np.array(sorted(st.hamiltonians), dtype=np.int64).reshape(-1, 5)
    if not st.pbc.all() and np.any(keys[:, :3][:, ~st.pbc]):
        raise ValueError(f"{st.source or 'structure'}: blocks with R along a non-periodic direction")
    nsc = 2 * np.abs(keys[:, :3]).max(axis=0, initial=0) + 1
    bond = block_bond_lengths(keys, st.positions, st.cell)
    radius = np.full(st.n_atoms, 0.5)  # Å; sisl wants every orbital pair that has a block within R_i + R_j
    np.maximum.at(radius, keys[:, 3], 0.5 * bond + 1e-3)
    np.maximum.at(radius, keys[:, 4], 0.5 * bond + 1e-3)
    lattice = sisl.Lattice(np.asarray(st.cell, dtype=float), nsc=nsc)
    geometry = sisl.Geometry(np.asarray(st.positions, dtype=float), atoms=_atoms(st, radius), lattice=lattice)

    n_orb = st.n_orbitals()
    first = np.concatenate([[0], np.cumsum(n_orb)])
    perm = [openmx_to_v1_order(ls) for ls in st.orbital_types]  # sisl orbital k of an atom is our orbital perm[k]
    no = int(first[-1])
    images = np.asarray(lattice.sc_index(keys[:, :3]), dtype=np.int64).reshape(-1)
    rows, cols = [], []
    for (rx, ry, rz, i, j), image in zip(keys.tolist(), images.tolist()):
        r, c = np.meshgrid(np.arange(first[i], first[i + 1]), np.arange(first[j], first[j + 1]), indexing="ij")
        rows.append(r.ravel())
        cols.append(c.ravel() + image * no)
    rows, cols = np.concatenate(rows), np.concatenate(cols)

    def csr(blocks):
        vals = np.concatenate([np.asarray(blocks[tuple(k)])[np.ix_(perm[k[3]], perm[k[4]])].ravel()
                               for k in keys.tolist()])
        return scipy.sparse.csr_matrix((vals, (rows, cols)), shape=(no, no * int(np.prod(nsc))))

    s = None if st.overlaps is None else csr(st.overlaps)
    return sisl.Hamiltonian.fromsp(geometry, csr(st.hamiltonians), S=s)


def write_sisl(st: DeepHStructure, path: str | Path):
    """Write ``st`` with sisl, all-or-nothing (the suffix picks the format: .TSHS for SIESTA/TBtrans, .nc with
    netCDF4 installed). Returns the sisl Hamiltonian."""
    import os
    import shutil
    import tempfile

    import sisl

    path = Path(path)
    if path.suffix not in SUFFIXES:
        raise ValueError(f"{path}: write a sisl Hamiltonian as {' or '.join(SUFFIXES)} (SIESTA/TBtrans binary, "
                         "or sisl's netCDF file, which needs the netCDF4 package)")
    h = to_sisl(st)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        try:
            sile = sisl.get_sile(str(tmp / path.name), mode="w")
        except Exception as err:  # sisl's own error types for suffixes it does not know
            raise ValueError(f"{path}: sisl cannot write this file type ({err}); use .TSHS") from None
        try:
            sile.write_hamiltonian(h)
        except (ImportError, NotImplementedError, AttributeError) as err:
            raise ValueError(f"{path}: sisl cannot write a Hamiltonian to this file type "
                             f"({type(err).__name__}: {err}); use .TSHS") from None
        os.replace(tmp / path.name, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return h
