"""Orbital-basis conventions shared by every part of the project.

Two conventions meet here, and this module is the only place that converts between them:

* **Files (DeepH format) and LMDB records** use the *OpenMX order* of real harmonics within a shell,
  as DeepH-pack writes them for every code it converts:
  p = (px, py, pz); d = (d3z²−r², dx²−y², dxy, dxz, dyz);
  f = (fz³, fxz², fyz², fz(x²−y²), fxyz, fx(x²−3y²), fy(3x²−y²)), all with positive sign.
* **Inside the model** features live in e3nn's real basis (e3nn ≥ 0.5: l=1 is (x, y, z) and D¹(R) = R;
  for l ≥ 2 the polar axis is y, so the map from OpenMX is a general orthogonal matrix, not a permutation).

``openmx_to_e3nn(l)`` returns the orthogonal U_l with  Y_e3nn(r) = U_l · Y_openmx(r); a block in OpenMX
order converts as H_e3nn = U_l1 · H_openmx · U_l2ᵀ and rotates as H' = D(l1) · H · D(l2)ᵀ in e3nn's basis.

The DeepH-pack v1 layout (``data_prep.deeph_v1``) orders a shell by m = −l…l instead (real harmonics as in
the standard table: p = (py, pz, px), d = (dxy, dyz, d3z²−r², dxz, dx²−y²), ...), every function with the
same positive sign as in OpenMX order, so the change is the permutation ``openmx_to_v1_order(l)``.

A ``BasisTable`` maps atomic number -> the list of shell angular momenta of that element, in file order
(e.g. Si: [0, 1]; Fe: [0, 0, 1, 1, 2]). One table per dataset; it is copied into every checkpoint.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np

LMAX_SUPPORTED = 3  # s, p, d, f

CHEMICAL_SYMBOLS = (
    "X H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge As Se Br Kr "
    "Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce Pr Nd Pm Sm Eu Gd Tb Dy Ho Er Tm Yb "
    "Lu Hf Ta W Re Os Ir Pt Au Hg Tl Pb Bi Po At Rn Fr Ra Ac Th Pa U Np Pu Am Cm Bk Cf Es Fm Md No Lr"
).split()


def _openmx_polynomials(l: int, xyz: np.ndarray) -> np.ndarray:
    """Unnormalised real harmonics in OpenMX order, evaluated at points ``xyz`` (n, 3) -> (n, 2l+1)."""
    x, y, z = xyz.T
    r2 = x * x + y * y + z * z
    if l == 0:
        cols = [np.ones_like(x)]
    elif l == 1:
        cols = [x, y, z]
    elif l == 2:
        cols = [3 * z * z - r2, x * x - y * y, x * y, x * z, y * z]
    elif l == 3:
        cols = [
            z * (5 * z * z - 3 * r2),
            x * (5 * z * z - r2),
            y * (5 * z * z - r2),
            z * (x * x - y * y),
            x * y * z,
            x * (x * x - 3 * y * y),
            y * (3 * x * x - y * y),
        ]
    else:
        raise ValueError(f"orbital shells with l={l} are not supported (max l={LMAX_SUPPORTED})")
    return np.stack(cols, axis=1)


@functools.lru_cache(maxsize=None)
def openmx_to_e3nn(l: int) -> np.ndarray:
    """Orthogonal (2l+1, 2l+1) matrix U_l with Y_e3nn = U_l · Y_openmx (both orthonormal on the sphere)."""
    import torch
    from e3nn import o3

    rng = np.random.default_rng(0)
    pts = rng.normal(size=(64, 3))
    pts /= np.linalg.norm(pts, axis=1, keepdims=True)
    f = _openmx_polynomials(l, pts)  # (n, 2l+1)
    y = o3.spherical_harmonics(l, torch.from_numpy(pts), normalize=True, normalization="component").numpy()
    # Solve f @ A = y  ->  y_m = sum_k A[k, m] f_k, i.e. U_raw = A.T (rows: e3nn m, cols: OpenMX k).
    a, *_ = np.linalg.lstsq(f, y, rcond=None)
    u_raw = a.T
    # Columns carry the (positive) normalisation of each OpenMX polynomial; remove it.
    u = u_raw / np.linalg.norm(u_raw, axis=0, keepdims=True)
    if not np.allclose(u @ u.T, np.eye(2 * l + 1), atol=1e-10):
        raise AssertionError(f"OpenMX->e3nn change of basis for l={l} is not orthogonal")
    u[np.abs(u) < 1e-14] = 0.0
    u.setflags(write=False)
    return u


# Orbital k of a shell in v1 (m = −l…l) order is OpenMX orbital OPENMX_TO_V1[l][k]; no sign changes.
OPENMX_TO_V1 = {0: (0,), 1: (1, 2, 0), 2: (2, 4, 0, 3, 1), 3: (6, 4, 2, 0, 1, 3, 5)}


def openmx_to_v1_order(shells: Sequence[int]) -> np.ndarray:
    """Index array p over an atom's orbitals with  M_v1 = M_openmx[p][:, p'] (p' of the other atom)."""
    out, start = [], 0
    for l in shells:
        if l not in OPENMX_TO_V1:
            raise ValueError(f"orbital shells with l={l} are not supported (max l={LMAX_SUPPORTED})")
        out.extend(start + k for k in OPENMX_TO_V1[l])
        start += 2 * l + 1
    return np.asarray(out, dtype=np.int64)


def element_symbol(z: int) -> str:
    return CHEMICAL_SYMBOLS[z] if 0 < z < len(CHEMICAL_SYMBOLS) else f"Z={z}"


@dataclass(frozen=True)
class BasisTable:
    """Element -> orbital shells (angular momenta in file order). Immutable, hashable, JSON-friendly."""

    shells: tuple[tuple[int, tuple[int, ...]], ...]  # sorted ((Z, (l, ...)), ...)

    @classmethod
    def from_mapping(cls, mapping: Mapping[int | str, Sequence[int]]) -> "BasisTable":
        items = []
        for z, ls in mapping.items():
            z = int(z) if not isinstance(z, str) or z.isdigit() else CHEMICAL_SYMBOLS.index(z)
            ls = tuple(int(l) for l in ls)
            if not ls:
                raise ValueError(f"element {element_symbol(z)} has no orbital shells")
            if any(l < 0 or l > LMAX_SUPPORTED for l in ls):
                raise ValueError(f"element {element_symbol(z)}: shells {ls} outside l=0..{LMAX_SUPPORTED}")
            items.append((z, ls))
        return cls(tuple(sorted(items)))

    def to_dict(self) -> dict[str, list[int]]:
        """JSON form: {"14": [0, 1], ...} (string keys so it survives JSON/YAML round trips)."""
        return {str(z): list(ls) for z, ls in self.shells}

    @classmethod
    def from_dict(cls, d: Mapping) -> "BasisTable":
        return cls.from_mapping({int(z): ls for z, ls in d.items()})

    # --- per element -------------------------------------------------------------------------------
    @property
    def elements(self) -> tuple[int, ...]:
        return tuple(z for z, _ in self.shells)

    def __contains__(self, z: int) -> bool:
        return int(z) in self._lookup

    @functools.cached_property
    def _lookup(self) -> dict[int, tuple[int, ...]]:
        return dict(self.shells)

    def shells_of(self, z: int) -> tuple[int, ...]:
        try:
            return self._lookup[int(z)]
        except KeyError:
            raise KeyError(
                f"element {element_symbol(int(z))} (Z={int(z)}) is not in the basis table "
                f"(elements: {self.symbols})"
            ) from None

    def unknown(self, numbers: Iterable[int]) -> list[int]:
        """The atomic numbers among ``numbers`` that the table lacks, sorted."""
        return sorted({int(z) for z in numbers} - set(self.elements))

    @property
    def symbols(self) -> str:
        """The table's elements as "H, C, Si"."""
        return ", ".join(element_symbol(z) for z in self.elements)

    def n_orbitals(self, z: int) -> int:
        return sum(2 * l + 1 for l in self.shells_of(z))

    def merge(self, other: "BasisTable") -> "BasisTable":
        """Union of two tables; an element present in both must have the same shells."""
        merged = dict(self._lookup)
        for z, ls in other.shells:
            if z in merged and merged[z] != ls:
                raise ValueError(
                    f"element {element_symbol(z)} has shells {list(merged[z])} in one source and {list(ls)} "
                    "in another: one basis table per dataset"
                )
            merged[z] = ls
        return BasisTable.from_mapping(merged)

    # --- union basis used by the model ------------------------------------------------------------
    @functools.cached_property
    def union_shells(self) -> tuple[int, ...]:
        """Shells of the union basis, sorted by l: for each l, as many as the element with most of them."""
        out: list[int] = []
        for l in range(LMAX_SUPPORTED + 1):
            count = max((ls.count(l) for _, ls in self.shells), default=0)
            out += [l] * count
        return tuple(out)

    @property
    def n_union(self) -> int:
        return sum(2 * l + 1 for l in self.union_shells)

    @property
    def lmax(self) -> int:
        return max(self.union_shells)

    def union_slots(self, z: int) -> np.ndarray:
        """Index into the union basis of each orbital of element z, in the element's file order.

        The k-th shell of angular momentum l of the element goes to the k-th union shell with that l.
        """
        start, offsets = 0, {}
        for idx, l in enumerate(self.union_shells):
            offsets.setdefault(l, []).append(start)
            start += 2 * l + 1
        seen: dict[int, int] = {}
        slots = []
        for l in self.shells_of(z):
            k = seen.get(l, 0)
            seen[l] = k + 1
            slots.extend(range(offsets[l][k], offsets[l][k] + 2 * l + 1))
        return np.asarray(slots, dtype=np.int64)

    def orbital_mask_table(self, zmax: int | None = None) -> np.ndarray:
        """(zmax+1, n_union) bool: which union orbitals element Z has (all False for unknown Z)."""
        zmax = max(self.elements) if zmax is None else zmax
        mask = np.zeros((zmax + 1, self.n_union), dtype=bool)
        for z in self.elements:
            mask[z, self.union_slots(z)] = True
        return mask

    def slot_table(self, zmax: int | None = None) -> np.ndarray:
        """(zmax+1, n_union) int: union slot of the element's k-th orbital (-1 padding)."""
        zmax = max(self.elements) if zmax is None else zmax
        table = -np.ones((zmax + 1, self.n_union), dtype=np.int64)
        for z in self.elements:
            s = self.union_slots(z)
            table[z, : len(s)] = s
        return table


def check_elements(basis: BasisTable, numbers: Iterable[int], where: str) -> None:
    missing = basis.unknown(numbers)
    if missing:
        raise ValueError(
            f"{where}: element(s) {', '.join(element_symbol(z) for z in missing)} not in the basis table "
            f"(known: {basis.symbols})"
        )
