"""Feature layout and per-edge rotations into the bond frame, in e3nn's real basis.

Node/edge features are dense tensors ``(n, K, C)`` with K = (lmax+1)² components in e3nn order
(l-major, m = -l..l inside a degree) and C channels. The first ``nat`` channels have *natural* parity
((-1)^l: 0e, 1o, 2e, ...), the rest *pseudo* parity (0o, 1e, 2o, ...): Hamiltonian blocks need both
(e.g. the antisymmetric part of a p-p block is a 1e pseudovector).

In e3nn the polar axis is y: a rotation about y mixes only the pair (index l-m, index l+m) of each
degree, as a 2-D rotation by mφ with the same orientation for every l; the mirror x -> -x (which keeps y)
leaves index l+m ("cos") even and flips index l-m ("sin") for natural parity. ``EdgeFrame`` rotates
features so that the bond points along +y and reorders them *m-major*:

    [m=0: l=0..L] [m=1 cos: l=1..L] [m=1 sin: l=1..L] [m=2 cos ...] ... up to mmax,

so an SO(2) convolution is a plain matmul on contiguous slices.
"""

from __future__ import annotations

import contextlib
import functools

import torch
from e3nn import o3


@contextlib.contextmanager
def float64_constants():
    """e3nn builds its generators in the default dtype; build our constants in float64 regardless."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


class Float64Buffers(torch.nn.Module):
    """Base for modules whose float64 buffers are exact constants (Wigner-D, 3j, masks) cast at use.

    ``.float()`` / ``.half()`` / ``.to(dtype)`` move those buffers to the new device but keep them float64:
    otherwise a float32 round trip (``model.float().double()``) would leave them rounded to float32 and the
    "float64" model equivariant only to ~1e-7.
    """

    def _apply(self, fn, recurse=True):
        kept = {n: b for n, b in self._buffers.items() if b is not None and b.dtype == torch.float64}
        super()._apply(fn, recurse)
        for name, b in kept.items():
            moved = self._buffers[name]
            if moved.dtype != torch.float64:
                try:
                    self._buffers[name] = b.to(device=moved.device)
                except (TypeError, RuntimeError):  # a device without float64 (e.g. MPS): keep the cast copy
                    pass
        return self


def num_coeffs(lmax: int) -> int:
    return (lmax + 1) ** 2


@functools.lru_cache(maxsize=None)
def degree_of_component(lmax: int) -> tuple[int, ...]:
    return tuple(l for l in range(lmax + 1) for _ in range(2 * l + 1))


@functools.lru_cache(maxsize=None)
def m_major_order(lmax: int, mmax: int) -> tuple[int, ...]:
    """Component indices (e3nn layout) in the m-major order described in the module docstring."""
    order = [l * l + l for l in range(lmax + 1)]
    for m in range(1, mmax + 1):
        order += [l * l + l + m for l in range(m, lmax + 1)]  # cos (+m)
        order += [l * l + l - m for l in range(m, lmax + 1)]  # sin (-m)
    return tuple(order)


def m_slices(lmax: int, mmax: int) -> list[tuple[int, int, int]]:
    """(m, start, n_l) of each m block in the m-major layout; m>0 blocks hold cos then sin (2·n_l rows)."""
    out, start = [], 0
    for m in range(mmax + 1):
        n = lmax - m + 1
        out.append((m, start, n))
        start += n if m == 0 else 2 * n
    return out


def _y_rotation(l: int, angle: torch.Tensor) -> torch.Tensor:
    """D^l of a rotation by ``angle`` about y, (..., 2l+1, 2l+1), built from cos/sin (no matrix_exp)."""
    d = torch.zeros(*angle.shape, 2 * l + 1, 2 * l + 1, dtype=angle.dtype, device=angle.device)
    d[..., l, l] = 1.0
    for m in range(1, l + 1):
        c, s = torch.cos(m * angle), torch.sin(m * angle)
        # e3nn generator X_y has X[l-m, l+m] = m, X[l+m, l-m] = -m  ->  exp(angle X) on (l-m, l+m).
        d[..., l - m, l - m] = c
        d[..., l + m, l + m] = c
        d[..., l - m, l + m] = s
        d[..., l + m, l - m] = -s
    return d


def pseudo_rows(lmax: int, mmax: int) -> tuple[list[int], list[float]]:
    """(source row, sign) per m-major row of J·D (``so2``'s J on every m > 0 cos/sin pair), so that
    (J·D)[r] = sign[r] · D[source[r]]: (Jy)_cos = -y_sin, (Jy)_sin = y_cos, m = 0 rows unchanged."""
    source, sign = [], []
    for m, start, n in m_slices(lmax, mmax):
        if m == 0:
            source += range(start, start + n)
            sign += [1.0] * n
            continue
        source += list(range(start + n, start + 2 * n)) + list(range(start, start + n))
        sign += [-1.0] * n + [1.0] * n
    return source, sign


class EdgeRotation:
    """Per-edge rotations into the bond frame: (E, K, K) matrices whose rows are in m-major order, so that
    the first ``n_rows`` rows truncate at mmax. ``to_frame(x, pseudo)`` takes (E, K, C) e3nn-layout features to
    the bond frame, natural channels by D and pseudo channels by J·D (``so2``), and ``from_frame(y, nat)``
    is its transpose (batched matmuls).

    Chunked inference keeps only the per-degree blocks, one (E, 2l+1, 2l+1) tensor per l: Σ_l (2l+1)² numbers
    per edge instead of K² (165 against 625 at lmax 4), and indexing a chunk builds that chunk's matrices.
    (Applying the blocks one l at a time instead is 3.6× slower: bmm is inefficient on 1×1 and 3×3 matrices.)
    """

    def __init__(self, order: torch.Tensor, pseudo: tuple[torch.Tensor, torch.Tensor], *,
                 dense: torch.Tensor | None = None, blocks: list | None = None, n_rows: int | None = None,
                 dense_pseudo: torch.Tensor | None = None):
        self.order, self.pseudo, self.dense, self.blocks = order, pseudo, dense, blocks
        self.n_rows = len(order) if n_rows is None else n_rows
        self.dense_pseudo = dense_pseudo
        if dense is not None and dense_pseudo is None:
            source, sign = pseudo
            self.dense_pseudo = dense[:, source] * sign.to(dense.dtype)[:, None]

    @staticmethod
    def assemble(blocks: list, order: torch.Tensor) -> torch.Tensor:
        K = len(blocks) ** 2
        full = blocks[0].new_zeros(blocks[0].shape[0], K, K)
        for l, d in enumerate(blocks):
            full[:, l * l : (l + 1) ** 2, l * l : (l + 1) ** 2] = d
        return full[:, order]

    def __getitem__(self, edges) -> "EdgeRotation":
        if self.dense is not None:
            return EdgeRotation(self.order, self.pseudo, dense=self.dense[edges], n_rows=self.n_rows,
                                dense_pseudo=self.dense_pseudo[edges])
        dense = self.assemble([b[edges] for b in self.blocks], self.order)
        return EdgeRotation(self.order, self.pseudo, dense=dense, n_rows=self.n_rows)

    def rows(self, n: int) -> "EdgeRotation":
        """Only the first ``n`` bond-frame components (m-major)."""
        return EdgeRotation(self.order, self.pseudo, dense=self.dense, blocks=self.blocks, n_rows=n,
                            dense_pseudo=self.dense_pseudo)

    def _matrices(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.dense is None:
            raise ValueError("per-degree rotations: index a chunk of edges first")
        return self.dense[:, : self.n_rows], self.dense_pseudo[:, : self.n_rows]

    def to_frame(self, x: torch.Tensor, pseudo: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` the natural channels, ``pseudo`` the pseudo ones (None: none) -> (E, n_rows, C), natural first."""
        d, dj = self._matrices()
        if pseudo is None:
            return torch.bmm(d, x)
        return torch.cat([torch.bmm(d, x), torch.bmm(dj, pseudo)], dim=-1)

    def from_frame(self, y: torch.Tensor, nat: int | None = None) -> torch.Tensor:
        d, dj = self._matrices()
        if nat is None or nat == y.shape[-1]:
            return torch.bmm(d.transpose(1, 2), y)
        return torch.cat([torch.bmm(d.transpose(1, 2), y[..., :nat]), torch.bmm(dj.transpose(1, 2), y[..., nat:])],
                         dim=-1)


class EdgeFrame(Float64Buffers):
    """Per-edge Wigner-D matrices for the rotation R(α, β, 0) that maps ŷ onto the bond direction.

    Returns an :class:`EdgeRotation` whose ``to_frame(x_edge)`` gives D(R)ᵀ x in m-major order and
    ``from_frame`` its transpose; ``per_degree=True`` stores only the blocks (chunked inference).
    D^l(α, β, 0) = Dy(α) · Dq · Dy(β) · Dqᵀ with Dq the constant D of a rotation taking ŷ to x̂, so the
    per-edge cost is a few small matmuls (no matrix exponentials).
    """

    def __init__(self, lmax: int, mmax: int):
        super().__init__()
        if not 0 <= mmax <= lmax:
            raise ValueError(f"need 0 <= mmax <= lmax, got mmax={mmax}, lmax={lmax}")
        self.lmax, self.mmax = lmax, mmax
        q = torch.tensor([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
        with float64_constants():
            angles = o3.matrix_to_angles(q)
            for l in range(lmax + 1):
                self.register_buffer(f"dq{l}", o3.wigner_D(l, *angles), persistent=False)
        self.register_buffer("order", torch.tensor(m_major_order(lmax, mmax)), persistent=False)
        source, sign = pseudo_rows(lmax, mmax)
        self.register_buffer("pseudo_source", torch.tensor(source), persistent=False)
        self.register_buffer("pseudo_sign", torch.tensor(sign, dtype=torch.float64), persistent=False)

    def forward(self, vec: torch.Tensor, per_degree: bool = False) -> EdgeRotation:
        """(E, 3) bond vectors -> the rotations taking e3nn-layout features into each bond's frame."""
        alpha, beta = o3.xyz_to_angles(vec)
        blocks = []
        for l in range(self.lmax + 1):
            dq = getattr(self, f"dq{l}").to(vec.dtype)
            blocks.append((_y_rotation(l, alpha) @ dq @ _y_rotation(l, beta) @ dq.T).transpose(1, 2))
        pseudo = (self.pseudo_source, self.pseudo_sign)
        if per_degree:
            return EdgeRotation(self.order, pseudo, blocks=blocks)
        return EdgeRotation(self.order, pseudo, dense=EdgeRotation.assemble(blocks, self.order))
