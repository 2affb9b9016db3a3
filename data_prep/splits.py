"""Splits that test generalisation, stored in the packed dataset's metadata beside the random one.

* ``composition``: whole chemical systems (the sorted element set of a structure, of its parent compound
  for a substitution) are held out, so no test composition, and no other compound of the same elements,
  appears in training. A system is held out only while each of its elements stays in some training
  structure: the split tests unseen compositions, not unseen elements (no model can predict those).
* ``complicated``: every structure the catalogue marks as complicated (defects, slabs, bilayers, strained and
  larger cells) is test; train and validation are a random split of the rest.

Structures carry their catalogue record in ``info.json["catalogue"]`` (written when the dataset is shipped);
without it a structure counts as regular and its system comes from its atoms.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np

from .basis import element_symbol


def catalogue_record(folder: Path) -> dict:
    try:
        info = json.loads((Path(folder) / "info.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    record = info.get("catalogue")
    return record if isinstance(record, dict) else {}


def chemical_system(folder: Path) -> str:
    record = catalogue_record(folder)
    if record.get("elements"):
        elements = set(record["elements"])
        if record.get("kind") == "substitution" and record.get("defect"):
            elements -= {record["defect"].get("by")}
    else:
        from .deeph_format import read_deeph  # either layout

        numbers = read_deeph(folder, hamiltonian=False, overlap=False).numbers
        elements = {element_symbol(int(z)) for z in numbers}
    return "-".join(sorted(elements))


def _fill(order: Sequence[int], sizes: np.ndarray, target: float, elements: list[set[str]],
          left: Counter) -> tuple[list[int], list[int]]:
    """Take groups from ``order`` until they hold at least ``target`` structures, skipping a group that holds the
    last remaining (``left``: groups not yet taken per element) group of one of its elements."""
    taken, total = [], 0
    for g in order:
        if total >= target:
            break
        if any(left[e] < 2 for e in elements[g]):
            continue
        left.subtract(elements[g])
        taken.append(g)
        total += int(sizes[g])
    return taken, [g for g in order if g not in set(taken)]


def stable_order(names: Sequence[str], seed: int) -> list[int]:
    """Indices of ``names`` in a seeded pseudo-random order that depends on each name alone: a dataset that grows
    keeps its systems in the same relative order, so its held-out systems mostly stay held out and model
    versions trained as the data grows can be compared on them (a permutation of the index would reshuffle all)."""
    return sorted(range(len(names)), key=lambda g: hashlib.sha256(f"{seed}:{names[g]}".encode()).digest())


def composition_split(systems: Sequence[str], seed: int, fractions: Sequence[float]) -> dict[str, list[int]]:
    names, group_of = np.unique(np.asarray(systems), return_inverse=True)
    sizes = np.bincount(group_of, minlength=len(names))
    elements = [set(name.split("-")) for name in names]
    left = Counter(e for els in elements for e in els)
    order = stable_order(names, seed)
    n = len(systems)
    test, rest = _fill(order, sizes, fractions[2] * n, elements, left)
    val, train = _fill(rest, sizes, fractions[1] * n, elements, left)
    members = {name: sorted(int(i) for i in np.nonzero(np.isin(group_of, groups))[0])
               for name, groups in (("train", train), ("val", val), ("test", test))}
    return members


def complicated_split(groups: Sequence[str], seed: int, val_fraction: float) -> dict[str, list[int]]:
    regular = [i for i, g in enumerate(groups) if g != "complicated"]
    perm = list(np.random.default_rng(seed).permutation(regular))
    n_val = max(1, int(round(val_fraction * len(regular)))) if len(regular) >= 3 else 0
    return {"train": sorted(int(i) for i in perm[n_val:]), "val": sorted(int(i) for i in perm[:n_val]),
            "test": [i for i, g in enumerate(groups) if g == "complicated"]}


def generalisation_splits(folders: Sequence[Path], seed: int, fractions: Sequence[float]) -> dict:
    """{"composition": {...}, "complicated": {...} (only when there are complicated structures)}."""
    out = {"composition": composition_split([chemical_system(f) for f in folders], seed, fractions)}
    groups = [catalogue_record(f).get("group", "regular") for f in folders]
    if "complicated" in groups:
        out["complicated"] = complicated_split(groups, seed, fractions[1])
    return out
