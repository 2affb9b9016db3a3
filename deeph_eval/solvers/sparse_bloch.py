"""Sparse Bloch matrices M(k) = Σ_R e^{i2πk·R} M(R) as scipy CSR, memory linear in the number of blocks.

Same convention as ``data_prep.kspace.bloch_sum`` (the dense version, used for small systems). The CSR
pattern (the union of (row, col) over all R) is built once; each k-point then only recomputes the data
array. At k-points where every phase is real (Γ and the other time-reversal-invariant points) the matrix
is real, which halves memory and time for Γ-only calculations on large supercells.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from data_prep.kspace import orbital_offsets

from ..blocklist import BlockList


class SparseBloch:
    def __init__(self, bl: BlockList):
        self.n_orb = np.asarray(bl.n_orb, dtype=np.int64)
        off = orbital_offsets(self.n_orb)
        self.dim = int(off[-1])
        ni, nj = self.n_orb[bl.i], self.n_orb[bl.j]
        sizes = ni * nj
        nnz = int(sizes.sum())
        if nnz != bl.values.size:
            raise ValueError(f"block list holds {bl.values.size} values but its blocks need {nnz}")
        idx_dtype = np.int32 if self.dim < 2**31 - 1 else np.int64
        self.shifts, r_of_block = np.unique(bl.shift, axis=0, return_inverse=True)
        blk = np.repeat(np.arange(bl.n_blocks, dtype=np.int64), sizes)
        local = np.arange(nnz, dtype=np.int64) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        ncol = nj[blk]
        row = off[bl.i][blk] + local // ncol
        col = off[bl.j][blk] + local % ncol
        del local, ncol
        self.r_of_entry = r_of_block.reshape(-1)[blk].astype(np.int32)
        del blk
        key = row * self.dim + col
        del row, col
        uniq, self.pos = np.unique(key, return_inverse=True)
        del key
        self.pos = self.pos.reshape(-1).astype(idx_dtype)
        self.n_unique = len(uniq)
        rows_u = uniq // self.dim
        self.indices = (uniq % self.dim).astype(idx_dtype)
        self.indptr = np.concatenate([[0], np.cumsum(np.bincount(rows_u, minlength=self.dim))]).astype(idx_dtype)
        self.values = np.asarray(bl.values, dtype=np.float64)

    def phases(self, kpt_frac) -> np.ndarray:
        return np.exp(2j * np.pi * (self.shifts @ np.asarray(kpt_frac, dtype=float)))

    def matrix(self, kpt_frac) -> sp.csr_matrix:
        """M(k) as CSR; real dtype when all phases are real (e.g. k = Γ)."""
        ph = self.phases(kpt_frac)
        if np.abs(ph.imag).max(initial=0.0) < 1e-12:
            data = np.bincount(self.pos, weights=self.values * ph.real[self.r_of_entry], minlength=self.n_unique)
        else:
            w = ph[self.r_of_entry]
            data = np.bincount(self.pos, weights=self.values * w.real, minlength=self.n_unique) + 1j * np.bincount(
                self.pos, weights=self.values * w.imag, minlength=self.n_unique
            )
        return sp.csr_matrix((data, self.indices, self.indptr), shape=(self.dim, self.dim))

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.r_of_entry, self.pos, self.indices, self.indptr, self.values, self.shifts))


def bloch_pair(h: SparseBloch, s: SparseBloch | None, kpt_frac):
    """Sparse H(k), S(k) of one dtype (S = 1 for an orthogonal basis)."""
    hk = h.matrix(kpt_frac)
    sk = s.matrix(kpt_frac) if s is not None else sp.identity(h.dim, dtype=hk.dtype, format="csr")
    if sk.dtype != hk.dtype:
        hk, sk = hk.astype(np.complex128), sk.astype(np.complex128)
    return hk, sk
