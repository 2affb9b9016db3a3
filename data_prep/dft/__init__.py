"""Real DFT data with PySCF: structure -> periodic Kohn-Sham -> DeepH folder (H(R), S(R) in OpenMX order)."""

from .orbitals import cell_shells, pyscf_to_openmx
from .realspace import alias_free_radius, block_pairs, overlap_blocks
from .runner import DFTResult, SCFNotConvergedError, fermi_level, pyscf_band_energies, run_dft, run_scf
from .settings import DFTSettings, dense_kmesh_for_radius, kmesh_from_spacing
from .structure import BadStructureError, build_cell, check_structure, supported_elements, valence_electrons

__all__ = [
    "BadStructureError",
    "DFTResult",
    "DFTSettings",
    "SCFNotConvergedError",
    "alias_free_radius",
    "block_pairs",
    "build_cell",
    "cell_shells",
    "check_structure",
    "dense_kmesh_for_radius",
    "fermi_level",
    "kmesh_from_spacing",
    "overlap_blocks",
    "pyscf_band_energies",
    "pyscf_to_openmx",
    "run_dft",
    "run_scf",
    "supported_elements",
    "valence_electrons",
]
