"""The DFT recipe: every choice of the PySCF run in one dataclass, recorded verbatim in info.json."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

# CP2K-style basis names -> PySCF's names for the same files.
_BASIS_ALIASES = {
    "SZV-MOLOPT-SR-GTH": "gth-szv-molopt-sr",
    "DZVP-MOLOPT-SR-GTH": "gth-dzvp-molopt-sr",
    "SZV-MOLOPT-GTH": "gth-szv-molopt",
    "DZVP-MOLOPT-GTH": "gth-dzvp-molopt",
}


def pyscf_basis_name(name: str) -> str:
    return _BASIS_ALIASES.get(name.upper(), name.lower())


EXECUTION_ONLY = ("threads",)


@dataclass(frozen=True)
class DFTSettings:
    """Periodic Kohn-Sham recipe. Units: Å, eV (Å⁻¹ for k-spacings, 2π included as in VASP's KSPACING)."""

    xc: str = "pbe"
    basis: str = "SZV-MOLOPT-SR-GTH"
    pseudo: str = "gth-pbe"  # the basis's valence (q) is appended per element, e.g. gth-pbe-q4 for Si
    kspacing: float = 0.5  # SCF k-mesh: n_i = max(1, ceil(|b_i| / kspacing)), b_i with 2π
    kmesh: tuple[int, int, int] | None = None  # explicit SCF mesh overrides kspacing
    radius: float = 9.5  # Å: blocks stored for atom pairs closer than this (and alias-free, see realspace)
    dense_kmesh: tuple[int, int, int] | None = None  # non-SCF mesh for H(R); default: sized from alias_radius
    # Å: the dense mesh is sized so H(R) is alias-free to this radius (None: radius). Stored blocks near the
    # radius pick up the tails of H beyond it folded back; sizing for a larger radius pushes those images out.
    alias_radius: float | None = None
    density_fit: str = "multigrid"  # multigrid | fftdf | gdf
    ke_cutoff: float | None = 60.0  # Hartree, plane-wave cutoff of the density grid (None: PySCF's default)
    # Hartree, the grid cutoff of cells with d shells in the basis (3d metals; Zn, Ga, In, Tl keep semicore d):
    # at 60 Ha their grid error puts k-dependent noise into H(k) (docs/data.md). None: ke_cutoff for all cells.
    ke_cutoff_d: float | None = 120.0
    smearing: float = 0.1  # eV, Fermi-Dirac width (0: integer occupations, insulators only)
    conv_tol: float = 1e-9  # Hartree
    max_cycle: int = 100
    min_distance_factor: float = 0.5  # reject pairs closer than this x the sum of covalent radii
    threads: int = 1

    def __post_init__(self):
        if self.density_fit not in ("multigrid", "fftdf", "gdf"):
            raise ValueError(f"density_fit must be multigrid, fftdf or gdf, not {self.density_fit!r}")
        if self.kspacing <= 0 or self.radius <= 0 or self.smearing < 0:
            raise ValueError("kspacing and radius must be > 0 and smearing >= 0")
        if self.alias_radius is not None and self.alias_radius < self.radius:
            raise ValueError(f"alias_radius ({self.alias_radius} Å) must be >= radius ({self.radius} Å)")
        for name in ("kmesh", "dense_kmesh"):
            mesh = getattr(self, name)
            if mesh is not None:
                mesh = tuple(int(n) for n in mesh)
                if len(mesh) != 3 or min(mesh) < 1:
                    raise ValueError(f"{name} must be three positive integers, got {mesh}")
                object.__setattr__(self, name, mesh)

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}

    def recipe(self) -> dict:
        """The settings that change results (``to_dict`` without execution details such as threads)."""
        return {k: v for k, v in self.to_dict().items() if k not in EXECUTION_ONLY}

    @classmethod
    def from_dict(cls, d: dict) -> "DFTSettings":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown DFT setting(s): {', '.join(sorted(unknown))} (known: {', '.join(sorted(known))})")
        return cls(**d)

    def replace(self, **changes) -> "DFTSettings":
        return dataclasses.replace(self, **changes)


def kmesh_from_spacing(cell_rows: np.ndarray, kspacing: float) -> tuple[int, int, int]:
    """Monkhorst-Pack size with reciprocal-space spacing <= kspacing (Å⁻¹, 2π included)."""
    b = 2 * np.pi * np.linalg.inv(np.asarray(cell_rows, dtype=float)).T  # rows b_i
    return tuple(max(1, math.ceil(np.linalg.norm(bi) / kspacing - 1e-9)) for bi in b)


def plane_spacings(cell_rows: np.ndarray) -> np.ndarray:
    """Distance between neighbouring lattice planes along each reciprocal direction (Å)."""
    inv = np.linalg.inv(np.asarray(cell_rows, dtype=float))
    return 1.0 / np.linalg.norm(inv, axis=0)


def dense_kmesh_for_radius(cell_rows: np.ndarray, radius: float) -> tuple[int, int, int]:
    """Smallest mesh whose Born-von Kármán supercell has every plane spacing >= 2·radius."""
    return tuple(max(1, math.ceil(2 * radius / d - 1e-9)) for d in plane_spacings(cell_rows))
