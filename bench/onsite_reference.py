"""How well per-element on-site levels carry over to structures not seen, by the energy zero they are averaged in.

    python bench/onsite_reference.py [FOLDER ...]

FOLDER: DeepH folders (or folders of them); default: the shipped universal-mini dataset. For each structure,
leave-one-out: the mean on-site level of each element and shell (the mean diagonal of its same-shell block, what
``model.block_stats`` puts into the network's on-site shift) over all *other* structures, after bringing each of
them to a common energy zero by:

  raw           DFT's own zero (periodic codes: the average electrostatic potential);
  standardised  H - μS with μ = <H,S>/<S,S> over all stored blocks (``model.target_gauge=standardised``);
  atoms         H - μ_a S with μ_a = <H - A, S>/<S,S> over all stored blocks, A the free atoms' on-site
                blocks (``model.target_gauge=atoms``, ``data_prep.dft.atom_reference``);
  atoms, on-site only  the same with μ_a over the on-site blocks alone (a variant; hoppings then carry
                the free atoms' levels: larger, see docs/training.md);
  atom levels   no data: the isolated atom's own levels.

The held-out structure's on-site levels are compared with those means after removing the best rigid shift
(its own zero is arbitrary): the RMS over its orbitals (meV) is what a network starting from those shifts has
to learn from the environment. Printed: median / mean / p90 over structures.

``--targets``: the size of what a network would have to produce, mean |entry| of the on-site and hopping
blocks within 9 Å after subtracting a reference H0 and standardising the rest (μ of H - H0 over those blocks):
H0 = 0 (standardised targets), the free atoms on the on-site blocks (A), and A plus extended-Hückel hoppings
H0_ij = K/2 (A_i S_ij + S_ij A_j) (Wolfsberg-Helmholz, K = 1 and 1.75); every third structure.
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import numpy as np

from data_prep.deeph_format import read_deeph
from data_prep.dft.atom_reference import onsite_table, shell_levels
from data_prep.gauge import atom_blocks, atoms_mu, gauge_mu, huckel_blocks, standardised
from deeph_eval.truncation import graph_keys

from cutoff_floor import folders_of

ZEROS = ("raw", "standardised", "atoms", "atoms, on-site only")


def structure_levels(st, reference: dict) -> tuple[dict[str, float], list[tuple]]:
    """(energy zero per scheme, [(element, shell), level, degeneracy, atom level] per atom and shell)."""
    H, S = st.hamiltonians, st.overlaps
    onsite = [(0, 0, 0, a, a) for a in range(st.n_atoms)]
    atom = [reference[int(z)] for z in st.numbers]
    atoms = dict(zip(onsite, atom))
    zeros = {"raw": 0.0, "standardised": gauge_mu(H, S), "atoms": atoms_mu(H, S, atoms),
             "atoms, on-site only": atoms_mu(H, S, atoms, onsite)}
    rows = []
    for a, (z, shells) in enumerate(zip(st.numbers, st.orbital_types)):
        levels = shell_levels(H[onsite[a]], list(shells)).diagonal()
        atom_level = shell_levels(atom[a], list(shells)).diagonal()
        rows += [((int(z), k), levels[k], 2 * l + 1, atom_level[k]) for k, l in enumerate(shells)]
    return zeros, rows


def rigid_rms(levels: np.ndarray, predicted: np.ndarray, weight: np.ndarray) -> float:
    d = levels - predicted
    d = d - np.sum(weight * d) / np.sum(weight)
    return float(np.sqrt(np.sum(weight * d * d) / np.sum(weight)))


def target_sizes(structures, reference: dict, radius: float = 9.0) -> None:
    """``--targets`` (module docstring)."""
    references = {"none (standardised)": None, "free atoms on-site": 0.0, "atoms + Hückel K=1": 1.0,
                  "atoms + Hückel K=1.75": 1.75}
    sizes = defaultdict(list)
    for st in structures:
        H, S = st.hamiltonians, st.overlaps
        A = atom_blocks(st.numbers, reference)
        keys = [k for k in graph_keys(st, radius) if k in H and k in S]
        for name, K in references.items():
            h0 = {} if K is None else A if K == 0.0 else huckel_blocks(st.numbers, reference, S, keys, K)
            R, _ = standardised({k: H[k] - h0[k] if k in h0 else H[k] for k in keys}, S)
            size = {k: np.abs(R[k]).mean() for k in keys}
            sizes[name].append((np.mean([v for k, v in size.items() if k in A]),
                                np.mean([v for k, v in size.items() if k not in A])))
    print(f"{len(structures)} structures; mean |entry| (meV) of the blocks within {radius} Å after subtracting H0 and "
          "standardising the rest")
    print("| H0 | on-site | hopping |")
    print("|---|---|---|")
    for name, v in sizes.items():
        on, hop = 1000 * np.mean(v, axis=0)
        print(f"| {name} | {on:.0f} | {hop:.0f} |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folders", nargs="*")
    ap.add_argument("--targets", action="store_true", help="sizes of the targets after a reference H0 (docstring)")
    args = ap.parse_args(argv)
    structures = [read_deeph(f) for f in folders_of(args.folders)]
    recipe = structures[0].info["dft"]
    reference = onsite_table(recipe, {int(z) for st in structures for z in st.numbers})
    if args.targets:
        target_sizes(structures[::3], reference)
        return 0
    data = [structure_levels(st, reference) for st in structures]
    rms: dict[str, list[float]] = defaultdict(list)
    for held, (_, rows) in enumerate(data):
        levels = np.array([r[1] for r in rows])
        weight = np.array([r[2] for r in rows], dtype=float)
        rms["atom levels"].append(rigid_rms(levels, np.array([r[3] for r in rows]), weight))
        for zero in ZEROS:
            seen = defaultdict(list)
            for other, (zeros, others) in enumerate(data):
                if other != held:
                    for key, level, _, _ in others:
                        seen[key].append(level - zeros[zero])
            # an element and shell no other structure has: its atom level (any constant would do as well)
            mean = np.array([np.mean(seen[key]) if key in seen else atom_level for key, _, _, atom_level in rows])
            rms[zero].append(rigid_rms(levels, mean, weight))
    print(f"{len(structures)} structures; on-site level RMS after the best rigid shift, leave-one-structure-out (meV)")
    print("| energy zero of the averaged levels | median | mean | p90 |")
    print("|---|---|---|---|")
    for name, v in rms.items():
        v = 1000 * np.asarray(v)
        print(f"| {name} | {np.median(v):.0f} | {np.mean(v):.0f} | {np.percentile(v, 90):.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
