"""k-point sets: high-symmetry band paths for the structure's *own* cell, and Γ-centred uniform meshes.

All k-points are fractional coordinates in the reciprocal basis of the input cell (what
``data_prep.kspace.bloch_sum`` takes). The band path comes from ASE's ``Cell.bandpath`` (Setyawan–Curtarolo
special points), which identifies the Bravais lattice of the cell as given and returns the path expressed
in that same cell, so no standardisation/rotation is applied behind the user's back (seekpath's paths
are for its standardised primitive cell, which may be rotated or re-chosen). The path depends on the
lattice only, not on the atoms inside it.

Periodicity: a direction counts as periodic only if it is flagged periodic *and* the atoms do not leave
a vacuum gap wider than ``vacuum`` Å along it (slab/molecule in a periodic box). Then
  3 periodic -> 3D path; 2 -> in-plane 2D path; 1 -> Γ–X along the chain; 0 (molecule) -> Γ only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

DEFAULT_VACUUM = 5.0  # Å: a gap this wide between periodic images means "not bonded along this axis"


def plane_spacing(cell) -> np.ndarray:
    """Distance between successive lattice planes normal to each reciprocal vector (Å)."""
    return 1.0 / np.linalg.norm(np.linalg.inv(np.asarray(cell, dtype=float)).T, axis=1)


def periodic_directions(cell, positions, pbc, vacuum: float = DEFAULT_VACUUM) -> np.ndarray:
    cell = np.asarray(cell, dtype=float)
    pbc = np.broadcast_to(np.asarray(pbc, dtype=bool), (3,)).copy()
    if abs(np.linalg.det(cell)) < 1e-8:
        return pbc & (np.linalg.norm(cell, axis=1) > 1e-8)
    frac = np.asarray(positions, dtype=float) @ np.linalg.inv(cell)
    spacing = plane_spacing(cell)
    for d in np.flatnonzero(pbc):
        f = np.sort(np.mod(frac[:, d], 1.0))
        gaps = np.diff(np.concatenate([f, [f[0] + 1.0]]))
        if gaps.max() * spacing[d] > vacuum:
            pbc[d] = False
    return pbc


@dataclass
class KPath:
    kpts: np.ndarray  # (n, 3) fractional
    x: np.ndarray  # (n,) cumulative path length, 1/Å (2π included)
    special_x: np.ndarray  # positions of the labelled points
    labels: list[str]
    dimensionality: int
    path: str = ""
    segments: list = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "kpts_frac": self.kpts.tolist(), "x": self.x.tolist(), "special_x": self.special_x.tolist(),
            "labels": self.labels, "dimensionality": self.dimensionality, "path": self.path,
        }


def _pretty(label: str) -> str:
    return "Γ" if label == "G" else label


def _allocate_steps(shares: np.ndarray, n_steps: int) -> list[int]:
    """``n_steps`` split over legs in proportion to ``shares`` (largest remainder), at least one per leg."""
    raw = shares * n_steps
    steps = np.maximum(np.floor(raw).astype(int), 1)
    for leg in np.argsort(-(raw - np.floor(raw)))[: max(n_steps - int(steps.sum()), 0)]:
        steps[leg] += 1
    return steps.tolist()


def _sample_path(cell, special_points: dict, path: str, npoints: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, list]:
    """k-points along ``path`` (ASE labels, "," = break) with every special point on the path itself.

    Each leg between two special points gets a share of ``npoints`` proportional to its length, at least one
    step. x is the path length in 1/Å, with no jump across a break (two labels then share one x). ASE's own
    ``bandpath`` sampling drops special points when ``npoints`` is small, and its linear axis then puts
    adjacent special points at one x (a "GX" path with 2 points had x = [0, 0]).
    """
    from ase.dft.kpoints import parse_path_string

    recip = 2 * np.pi * np.linalg.inv(np.asarray(cell, dtype=float)).T
    segments = [seg for seg in parse_path_string(path) if seg]
    unknown = sorted({name for seg in segments for name in seg if name not in special_points})
    if unknown or not segments:
        raise ValueError(f"--path {path!r}: {'unknown special point(s) ' + ', '.join(unknown) if unknown else 'no points'}"
                         f" for this lattice; it has {', '.join(sorted(special_points))}")
    point = {name: np.asarray(special_points[name], dtype=float) for seg in segments for name in seg}
    legs = [(a, b) for seg in segments for a, b in zip(seg, seg[1:])]
    lengths = np.array([np.linalg.norm((point[b] - point[a]) @ recip) for a, b in legs])
    steps = iter(_allocate_steps(lengths / (lengths.sum() or 1.0), max(npoints - len(segments), len(legs))))
    length = iter(lengths)
    kpts, x, special_x, labels, pos = [], [], [], [], 0.0
    for seg in segments:
        kpts.append(point[seg[0]]), x.append(pos), special_x.append(pos), labels.append(_pretty(seg[0]))
        for a, b in zip(seg, seg[1:]):
            t = np.arange(1, (n := next(steps)) + 1) / n
            leg = next(length)
            kpts.extend(point[a] + np.outer(t, point[b] - point[a]))
            x.extend(pos + t * leg)
            pos += leg
            special_x.append(pos), labels.append(_pretty(b))
    return np.array(kpts), np.array(x), np.array(special_x), labels


def _from_ase_bandpath(bp, cell, dim, npoints: int, perm=None) -> KPath:
    """ASE supplies the special points and standard path of ``cell`` (the cell as given); we sample it."""
    kpts, x, special_x, labels = _sample_path(cell, bp.special_points, bp.path, npoints)
    if perm is not None:
        out = np.zeros_like(kpts)
        out[:, perm] = kpts
        kpts = out
    return KPath(kpts, x, special_x, labels, dim, bp.path)


def _ase_bandpath(cell, path: str | None, npoints: int, **kw):
    """ASE's band path of ``cell`` (an ase Cell); a path naming points the lattice lacks is a ``ValueError``."""
    try:
        return cell.bandpath(path=path, npoints=npoints, **kw)
    except KeyError as err:
        known = ", ".join(sorted(cell.bandpath(npoints=0, **kw).special_points))
        raise ValueError(f"--path {path!r}: unknown special point {err.args[0]!r} for this lattice; it has {known}") from None


def band_path(cell, positions, pbc, *, npoints: int = 120, path: str | None = None,
              vacuum: float = DEFAULT_VACUUM) -> KPath:
    """High-symmetry path for this cell (see module doc). ``path`` uses ASE's labels, e.g. "GXWKGLUWLK,UX"."""
    from ase.cell import Cell

    cell = np.asarray(cell, dtype=float)
    periodic = periodic_directions(cell, positions, pbc, vacuum)
    dim = int(periodic.sum())
    if dim == 0:
        return KPath(np.zeros((1, 3)), np.zeros(1), np.zeros(1), ["Γ"], 0, "G")
    if dim == 1:
        zone_edge = np.zeros(3)
        zone_edge[int(np.flatnonzero(periodic)[0])] = 0.5
        kpts, x, special_x, labels = _sample_path(cell, {"G": np.zeros(3), "X": zone_edge}, "GX", npoints)
        return KPath(kpts, x, special_x, labels, 1, "GX")
    if dim == 2:
        # ASE wants the non-periodic axis third and normal to the plane; in-plane fractional k-points do
        # not depend on that third vector, and bands of a slab do not depend on k along it.
        perm = [int(d) for d in np.flatnonzero(periodic)] + [int(np.flatnonzero(~periodic)[0])]
        a1, a2 = cell[perm[0]], cell[perm[1]]
        normal = np.cross(a1, a2)
        normal *= np.linalg.norm(cell[perm[2]]) / np.linalg.norm(normal)
        helper = Cell(np.array([a1, a2, normal]))
        bp = _ase_bandpath(helper, path, npoints, pbc=[True, True, False])
        return _from_ase_bandpath(bp, helper, 2, npoints, perm)
    bp = _ase_bandpath(Cell(cell), path, npoints)
    return _from_ase_bandpath(bp, cell, 3, npoints)


def uniform_mesh(size) -> tuple[np.ndarray, np.ndarray]:
    """Γ-centred mesh reduced by time reversal (ε(k) = ε(−k) for a real H(R)): (kpts_frac, weights summing to 1)."""
    size = np.asarray(size, dtype=int)
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in size], indexing="ij"), axis=-1).reshape(-1, 3)
    partner = np.mod(-grid, size)
    code = lambda g: (g[:, 0] * size[1] + g[:, 1]) * size[2] + g[:, 2]  # noqa: E731
    rep = np.minimum(code(grid), code(partner))
    uniq, counts = np.unique(rep, return_counts=True)
    g = np.stack([uniq // (size[1] * size[2]), (uniq // size[2]) % size[1], uniq % size[2]], axis=1)
    frac = g / size
    frac = np.where(frac > 0.5, frac - 1.0, frac)
    return frac, counts / counts.sum()
