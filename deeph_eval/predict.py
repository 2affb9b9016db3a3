"""Model prediction -> per-atom real-space blocks: the one entry point every model-driven command uses.

``predict_blocks(loaded, structure)`` builds the structure's neighbour graph at the checkpoint's cutoff
(``data_prep.torch_data.structure_to_data``), runs the network without gradients and cuts each predicted
union-basis block (``(M, M)``, OpenMX order) down to the two atoms' own orbitals
(``BasisTable.union_slots``). Result: ``{(Rx, Ry, Rz, i, j): (n_i, n_j) float64 array}`` in eV, every edge
of the graph in both directions (H_ij(R) and H_ji(-R)) plus the on-site blocks H_ii(0) — the DeepH
convention H_ij(R) = <φ_i,0|H|φ_j,R>.

Batching: ``predict_many`` packs several structures into one forward pass up to ``max_graph_size``
nodes + edges; a structure larger than that runs alone (the network's message passing needs the whole
graph, so one structure is never split). Within the forward pass a model that accepts ``edge_chunk`` (DeepH-2)
works through the edges ``EDGE_CHUNK`` at a time, so the per-edge features of a 10,000-atom structure are never
all held at once: the result is the same, the peak memory is node features plus one chunk.
"""

from __future__ import annotations

import inspect
from typing import Iterable, Iterator

from typing import TYPE_CHECKING

import numpy as np

from data_prep.deeph_format import Blocks, DeepHStructure

from .model_io import check_known_elements, outside_training, warn_outside_training

if TYPE_CHECKING:  # torch is imported where a prediction runs, so that command lines start fast
    import torch

    from deeph_lightning.models.checkpoint import LoadedModel

DEFAULT_MAX_GRAPH_SIZE = 200_000  # nodes + edges per forward pass
# Edges per chunk of the forward pass. CPU: small chunks stay in cache and cap the memory (bench/predict_chunks.py,
# table in docs/evaluation.md). GPUs: not measured here; larger chunks keep the device busy.
EDGE_CHUNK = 1024
EDGE_CHUNK_GPU = 8192


def geometry_of(structure) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]:
    """(numbers, positions, cell rows, pbc, name) of a ``DeepHStructure`` or an ``ase.Atoms``."""
    if isinstance(structure, DeepHStructure):
        return (np.asarray(structure.numbers), np.asarray(structure.positions), np.asarray(structure.cell),
                np.broadcast_to(np.asarray(structure.pbc, dtype=bool), (3,)), structure.source or "structure")
    return (np.asarray(structure.numbers), np.asarray(structure.positions), np.asarray(structure.cell[:]),
            np.asarray(structure.pbc, dtype=bool), structure.get_chemical_formula())


def _model_dtype(loaded: LoadedModel) -> torch.dtype:
    return next(loaded.model.parameters()).dtype


def _unpad(out: torch.Tensor, slots_i: list[np.ndarray], slots_j: list[np.ndarray], pairs) -> list[np.ndarray]:
    """Cut (B, M, M) padded blocks to (n_i, n_j), vectorised per element pair."""
    arr = out.detach().cpu().numpy().astype(np.float64, copy=False)
    result: list[np.ndarray | None] = [None] * len(arr)
    for (zi, zj), idx in pairs.items():
        si, sj = slots_i[zi], slots_j[zj]
        cut = arr[idx][:, si[:, None], sj[None, :]]
        for k, b in zip(idx, cut):
            result[k] = b
    return result


def _group_by_pair(zi: np.ndarray, zj: np.ndarray) -> dict[tuple[int, int], np.ndarray]:
    keys = zi.astype(np.int64) * 1000 + zj
    order = np.argsort(keys, kind="stable")
    uniq, start = np.unique(keys[order], return_index=True)
    bounds = list(start) + [len(order)]
    return {(int(u) // 1000, int(u) % 1000): order[bounds[n] : bounds[n + 1]] for n, u in enumerate(uniq)}


def _blocks_of(loaded: LoadedModel, data, h_node: torch.Tensor, h_edge: torch.Tensor) -> Blocks:
    z = data.atomic_numbers.numpy()
    slots = {int(e): loaded.basis.union_slots(int(e)) for e in np.unique(z)}
    blocks: Blocks = {}
    for a, blk in enumerate(_unpad(h_node, slots, slots, _group_by_pair(z, z))):
        blocks[(0, 0, 0, a, a)] = blk
    ei = data.edge_index.numpy()
    shift = np.rint(data.cell_shift.numpy()).astype(np.int64)
    edge_blocks = _unpad(h_edge, slots, slots, _group_by_pair(z[ei[0]], z[ei[1]]))
    for e, blk in enumerate(edge_blocks):
        blocks[(int(shift[e, 0]), int(shift[e, 1]), int(shift[e, 2]), int(ei[0, e]), int(ei[1, e]))] = blk
    return blocks


def structure_graph(loaded: LoadedModel, structure):
    from data_prep.torch_data import structure_to_data

    numbers, positions, cell, pbc, name = geometry_of(structure)
    check_known_elements(loaded, numbers, name)
    return structure_to_data(numbers, positions, cell, pbc, loaded.cutoff, loaded.basis, dtype=_model_dtype(loaded),
                             structure_id=name)


def predict_many(loaded: LoadedModel, structures: Iterable, *, max_graph_size: int = DEFAULT_MAX_GRAPH_SIZE,
                 outside: list | None = None) -> Iterator[Blocks]:
    """Predicted blocks of each structure, in order; small structures share a forward pass. Nearest-neighbour
    bonds outside the checkpoint's training set (``model_io.outside_training``) are warned about, or, with a list
    ``outside``, appended to it (one list of phrases per structure, in order, before its blocks are yielded)."""
    import torch
    from torch_geometric.data import Batch

    pending: list = []
    size = 0

    def flush():
        batch = Batch.from_data_list(pending)
        device = next(loaded.model.parameters()).device
        chunked = "edge_chunk" in inspect.signature(loaded.model.forward).parameters
        with torch.inference_mode():
            chunk = EDGE_CHUNK if device.type == "cpu" else EDGE_CHUNK_GPU
            out = loaded.model(batch.to(device), **({"edge_chunk": chunk} if chunked else {}))
        n_ptr = batch.ptr.tolist()
        e_counts = [d.edge_index.shape[1] for d in pending]
        e_ptr = np.concatenate([[0], np.cumsum(e_counts)])
        for k, d in enumerate(pending):
            yield _blocks_of(loaded, d, out["h_node"][n_ptr[k] : n_ptr[k + 1]],
                             out["h_edge"][e_ptr[k] : e_ptr[k + 1]])

    for st in structures:
        data = structure_graph(loaded, st)
        bonds = outside_training(loaded, data)
        if outside is None:
            warn_outside_training(data.structure_id, bonds)
        else:
            outside.append(bonds)
        n = data.num_nodes + data.edge_index.shape[1]
        if pending and size + n > max_graph_size:
            yield from flush()
            pending, size = [], 0
        pending.append(data)
        size += n
    if pending:
        yield from flush()


def predict_blocks(loaded: LoadedModel, structure, *, max_graph_size: int = DEFAULT_MAX_GRAPH_SIZE) -> Blocks:
    """Predicted H blocks (eV, OpenMX order, float64) of one structure, keyed (Rx, Ry, Rz, i, j), 0-based atoms."""
    return next(predict_many(loaded, [structure], max_graph_size=max_graph_size))
