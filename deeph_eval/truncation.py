"""The truncation floor: what a model with a finite cutoff cannot do better than, even if it were exact.

A model predicts H_ij(R) only for pairs within its cutoff (plus on-site blocks). Truncating the *reference*
H to exactly the predicted block set, and keeping the reference's exact S, gives the bands of a "perfect"
model; their error against the full reference is the truncation error, and the learning error is what the
real prediction adds on top. Both are reported side by side by ``deeph-eval bands --reference``.
"""

from __future__ import annotations

from data_prep.deeph_format import Blocks, DeepHStructure


def truncated_reference(reference: DeepHStructure, predicted_keys) -> tuple[DeepHStructure, int]:
    """Reference H restricted to ``predicted_keys`` (S untouched) and the number of keys it lacks."""
    h = reference.hamiltonians
    kept: Blocks = {k: h[k] for k in predicted_keys if k in h}
    missing = sum(1 for k in predicted_keys if k not in h)
    st = DeepHStructure(**{**reference.__dict__, "hamiltonians": kept,
                           "source": f"{reference.source} (H truncated at the model cutoff)"})
    return st, missing


def model_blocks(st: DeepHStructure) -> Blocks:
    """The H blocks a model predicted: for a folder written by ``deeph-eval predict`` (info.json model_cutoff),
    the pairs within the model's cutoff (the graph the model saw), not the zero blocks on S's longer pairs."""
    cutoff = st.info.get("model_cutoff")
    if cutoff is None:
        return st.hamiltonians
    keys = graph_keys(st, float(cutoff))
    return {k: b for k, b in st.hamiltonians.items() if k in keys}


def graph_keys(st: DeepHStructure, cutoff: float) -> set[tuple[int, int, int, int, int]]:
    """Block keys (Rx, Ry, Rz, i, j) a model with this cutoff predicts: on-site blocks and its graph's edges."""
    from data_prep.graph import neighbor_graph

    edge_index, shift, _ = neighbor_graph(st.cell, st.positions, st.pbc, cutoff)
    keys = {(0, 0, 0, a, a) for a in range(st.n_atoms)}
    keys |= {(int(r[0]), int(r[1]), int(r[2]), int(i), int(j)) for (i, j), r in zip(edge_index.T, shift)}
    return keys
