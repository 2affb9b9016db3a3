"""Isolated-atom on-site Hamiltonians: the reference that fixes a structure's energy zero by its atoms.

In a crystal an element's on-site levels sit near those of the free atom, shifted by its environment; the
structure's own energy zero (arbitrary in periodic DFT) shifts them all together. ``atom_onsite`` is the
Kohn-Sham Hamiltonian of the isolated, spherical, spin-unpolarised atom in the recipe's basis, pseudopotential
and functional (molecular PySCF, vacuum zero): the on-site block a structure's atoms are compared with
(``data_prep.gauge`` with a reference). Spherical means: each same-l shell pair block replaced by its mean
diagonal times the identity, blocks between different l zero, so the reference is rotation invariant and
the same in PySCF's and OpenMX's orbital order.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np

from .orbitals import cell_shells
from .settings import DFTSettings, pyscf_basis_name
from .structure import element_pseudo, supported_elements

# Ha: Fermi smearing of the atom's levels; spreads the valence electrons evenly over a degenerate open shell
# (spherical and spin-unpolarised, as the crystal's spin-unpolarised Kohn-Sham atoms).
ATOM_SMEARING_HA = 0.01
ATOM_CONV_TOL_HA = 1e-9


def _atom_scf(symbol: str, settings: DFTSettings, sigma: float, damp: float):
    from pyscf import dft, gto, scf

    pseudo, _ = element_pseudo(settings.pseudo, settings.basis, symbol)
    mol = gto.Mole(atom=f"{symbol} 0 0 0", basis={symbol: pyscf_basis_name(settings.basis)},
                   pseudo={symbol: pseudo}, verbose=0, unit="Angstrom")
    mol.spin = 0
    try:
        mol.build()
    except RuntimeError:  # odd electron count: PySCF wants spin = 1 to build; the smeared RKS stays unpolarised
        mol.spin = 1
        mol.build()
    mf = dft.RKS(mol)
    mf.xc = settings.xc
    mf = scf.addons.smearing_(mf, sigma=sigma, method="fermi")
    mf.conv_tol = ATOM_CONV_TOL_HA
    mf.max_cycle = 150
    mf.damp, mf.diis_start_cycle = damp, (8 if damp else 1)
    try:
        mf.kernel()
    except IndexError:  # PySCF's minimal-basis guess has no entry for some pseudopotential cores (Sc q11)
        mf.init_guess = "1e"
        mf.kernel()
    return mol, mf


def shell_levels(h: np.ndarray, shells: list[int]) -> np.ndarray:
    """(n_shell, n_shell) mean diagonal of each same-l shell pair block (0 between different l)."""
    starts = np.concatenate([[0], np.cumsum([2 * l + 1 for l in shells])])
    return np.array([[np.trace(h[starts[a]:starts[a + 1], starts[b]:starts[b + 1]]) / (2 * la + 1) if la == lb else 0.0
                      for b, lb in enumerate(shells)] for a, la in enumerate(shells)])


def expand_shell_levels(levels: np.ndarray, shells: list[int]) -> np.ndarray:
    """Inverse of ``shell_levels`` for a spherical block: (n_orb, n_orb), level · 1 per same-l shell pair."""
    starts = np.concatenate([[0], np.cumsum([2 * l + 1 for l in shells])])
    out = np.zeros((starts[-1], starts[-1]))
    for a, la in enumerate(shells):
        for b, lb in enumerate(shells):
            if la == lb:
                out[starts[a]:starts[a + 1], starts[b]:starts[b + 1]] = levels[a][b] * np.eye(2 * la + 1)
    return out


def atom_levels(symbol: str, settings: DFTSettings = DFTSettings()) -> tuple[list[int], np.ndarray]:
    """(shells, levels) of the spherical isolated atom (module docstring): l of each shell in the basis file's
    order and the (n_shell, n_shell) ``shell_levels`` of its Kohn-Sham H, eV. RuntimeError if its SCF does
    not converge."""
    from .runner import hartree_to_ev

    # an open d shell oscillates between s and d at narrow smearing: damped, then wider smearing
    for sigma, damp in ((ATOM_SMEARING_HA, 0.0), (2 * ATOM_SMEARING_HA, 0.5), (5 * ATOM_SMEARING_HA, 0.5)):
        mol, mf = _atom_scf(symbol, settings, sigma, damp)
        if mf.converged:
            break
    else:
        raise RuntimeError(f"{symbol}: the isolated-atom SCF did not converge")
    fock = np.asarray(mf.get_fock()) * hartree_to_ev()
    shells = cell_shells(mol)[0]
    return shells, shell_levels(fock, shells)


def atom_onsite(symbol: str, settings: DFTSettings = DFTSettings()) -> np.ndarray:
    """(n_orb, n_orb) spherical isolated-atom on-site H of ``symbol``, eV, orbitals in the basis file's order."""
    shells, levels = atom_levels(symbol, settings)
    return expand_shell_levels(levels, shells)


SHIPPED = Path(__file__).with_name("atom_onsite")


def recipe_key(recipe: dict) -> str:
    """File name of a recipe's table: basis, pseudopotential family and functional."""
    return "_".join(str(recipe[k]).lower() for k in ("basis", "pseudo", "xc")) + ".json"


def onsite_table(recipe: dict, elements) -> dict[int, np.ndarray]:
    """Atomic number -> (n_orb, n_orb) isolated-atom on-site H (eV, the element's orbitals in file order) for
    ``recipe`` (a dataset's recorded recipe: basis, pseudo, xc), read from the table shipped for it
    (``data_prep/dft/atom_onsite``); elements it lacks are computed here (seconds each)."""
    from ..basis import element_symbol

    path = SHIPPED / recipe_key(recipe)
    table = json.loads(path.read_text())["elements"] if path.exists() else {}
    settings = DFTSettings(**{k: recipe[k] for k in ("basis", "pseudo", "xc")})
    out = {}
    for z in sorted(set(int(z) for z in elements)):
        sym = element_symbol(z)
        if sym in table:
            out[z] = expand_shell_levels(np.asarray(table[sym]["levels"]), table[sym]["shells"])
        elif z not in supported_elements(settings):
            raise ValueError(f"no isolated-atom reference for {sym}: the recipe's basis {settings.basis} lacks it")
        else:
            warnings.warn(f"no shipped isolated-atom reference for {sym} with {path.name}: computing it")
            out[z] = atom_onsite(sym, settings)
    return out


def write_table(settings: DFTSettings, symbols: list[str], path: Path) -> dict:
    """Compute and write the shipped table of ``symbols`` (the recipe's shells and spherical levels, eV)."""
    out = {"recipe": {k: getattr(settings, k) for k in ("basis", "pseudo", "xc")},
           "method": "isolated spherical spin-unpolarised atom, molecular PySCF RKS with Fermi smearing "
                     "(data_prep.dft.atom_reference); levels: mean diagonal of each same-l shell pair block, eV",
           "elements": {}}
    for sym in symbols:
        shells, levels = atom_levels(sym, settings)
        out["elements"][sym] = {"shells": shells, "levels": np.round(levels, 6).tolist()}
        print(sym, flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(out, indent=1) + "\n")
    tmp.replace(path)
    return out


def main(argv=None) -> int:
    from ..basis import element_symbol

    ap = argparse.ArgumentParser(prog="python -m data_prep.dft.atom_reference",
                                 description="Write the isolated-atom on-site table of the default recipe.")
    ap.add_argument("--elements", help="comma-separated symbols (default: every element the recipe supports)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    settings = DFTSettings()
    symbols = args.elements.split(",") if args.elements else [element_symbol(z) for z in supported_elements(settings)]
    write_table(settings, symbols, args.out or SHIPPED / recipe_key(settings.recipe()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
