"""Helpers shared by the deeph-eval sub-commands."""

from __future__ import annotations

import json
import os
from pathlib import Path

from data_prep.basis import element_symbol
from data_prep.deeph_format import DeepHStructure, read_deeph

from ..electrons import Filling, resolve_n_electrons


def load_folder(path: str, what: str) -> DeepHStructure:
    if not Path(path).exists():
        raise FileNotFoundError(f"{what} {path}: no such directory")
    return read_deeph(path)


def check_positive(args, *names: str, minimum: float = 0.0) -> None:
    """Each ``--name`` must be a finite number above ``minimum`` (``ValueError`` naming the option)."""
    import math

    for name in names:
        value = getattr(args, name, None)
        if value is not None and not (math.isfinite(value) and value > minimum):
            raise ValueError(f"--{name.replace('_', '-')} {value}: must be a finite number above {minimum:g}")


def n_electrons_for(args, st: DeepHStructure) -> float:
    return resolve_n_electrons(args.n_electrons, st.info, st.numbers, st.source)


def write_json(path: Path, payload: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=1) + "\n")
    os.replace(tmp, path)


def formula(st: DeepHStructure) -> str:
    counts: dict[str, int] = {}
    for z in st.numbers:
        counts[element_symbol(int(z))] = counts.get(element_symbol(int(z)), 0) + 1
    return "".join(f"{el}{n if n > 1 else ''}" for el, n in counts.items())


def describe_filling(name: str, f: Filling, molecule: bool) -> str:
    if f.is_metal:
        return f"{name}: metallic, Fermi level {f.fermi_level:.4f} eV"
    v, c = ("HOMO", "LUMO") if molecule else ("VBM", "CBM")
    kind = "" if molecule else (" (direct)" if f.is_direct else f" (indirect; direct gap {f.direct_gap:.4f} eV)")
    return f"{name}: gap {f.gap:.4f} eV{kind}, {v} {f.vbm:.4f} eV, {c} {f.cbm:.4f} eV"


def add_electron_options(p) -> None:
    p.add_argument("--n-electrons", type=float, default=None,
                   help="valence electrons per cell (default: info.json 'n_electrons')")
    p.add_argument("--smearing", type=float, default=0.05, help="Gaussian smearing for metals' Fermi level, eV")
