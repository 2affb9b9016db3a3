"""Records -> torch-geometric graphs with blocks padded into the union basis of a ``BasisTable``.

``BlockData`` fields (N atoms, E edges, M = basis.n_union orbitals of the union basis, OpenMX order):

    atomic_numbers (N,) long · pos (N,3) · cell (1,3,3) · pbc (1,3) bool
    edge_index (2,E) long · cell_shift (E,3) (integer lattice shifts, float dtype) · edge_rev (E,) long
    h_node, s_node (N,M,M) · h_edge, s_edge (E,M,M)       [only when the record has blocks]
    fermi_level (1,) · structure_id (str)

Entries of a block outside the two elements' orbitals are zero; ``block_mask`` rebuilds the mask from
atomic numbers. Batching (``torch_geometric.data.Batch``) offsets ``edge_index`` by atoms and
``edge_rev`` by edges, so the reverse-edge map stays valid across a batch.
"""

from __future__ import annotations

import numpy as np
import torch
from torch_geometric.data import Data

from .basis import BasisTable, check_elements
from .graph import FIRST_SHELL, neighbor_graph
from .records import block_offsets


class BlockData(Data):
    def __inc__(self, key, value, *args, **kwargs):
        if key == "edge_rev":
            return self.edge_index.shape[1]
        return super().__inc__(key, value, *args, **kwargs)

    def __cat_dim__(self, key, value, *args, **kwargs):
        if key in ("cell", "pbc"):
            return 0  # already (1, ...) per structure
        return super().__cat_dim__(key, value, *args, **kwargs)


def _padded(flat: np.ndarray, slots_i, slots_j, counts_i, counts_j, n_union) -> np.ndarray:
    """Vectorised pad: flat blocks with per-block (n_i, n_j) -> (B, M, M)."""
    B = len(counts_i)
    out = np.zeros((B, n_union, n_union), dtype=flat.dtype)
    if B == 0:
        return out
    sizes = counts_i * counts_j
    block = np.repeat(np.arange(B), sizes)
    local = np.arange(sizes.sum()) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    nj = np.repeat(counts_j, sizes)
    a, b = local // nj, local % nj
    out[block, slots_i[block, a], slots_j[block, b]] = flat
    return out


def record_to_data(rec: dict, basis: BasisTable, dtype: torch.dtype = torch.float32) -> BlockData:
    z = rec["atomic_numbers"]
    check_elements(basis, z, rec.get("structure_id", "record"))
    slot_table = basis.slot_table(max(int(z.max()), max(basis.elements)))
    ei = rec["edge_index"]
    n_orb = rec["orbital_counts"]
    data = BlockData(
        atomic_numbers=torch.from_numpy(z.astype(np.int64)),
        pos=torch.from_numpy(rec["positions"]).to(dtype),
        cell=torch.from_numpy(rec["cell"]).to(dtype).unsqueeze(0),
        pbc=torch.from_numpy(rec["pbc"].astype(bool)).unsqueeze(0),
        edge_index=torch.from_numpy(ei.astype(np.int64)),
        cell_shift=torch.from_numpy(rec["cell_shift"]).to(dtype),
        edge_rev=torch.from_numpy(rec["edge_rev"].astype(np.int64)),
        fermi_level=torch.tensor([float(rec["fermi_level"][0])], dtype=dtype),
        structure_id=str(rec.get("structure_id", "")),
        num_nodes=len(z),
    )
    expected = np.array([basis.n_orbitals(int(x)) for x in z])
    if not np.array_equal(expected, n_orb):
        raise ValueError(f"{rec.get('structure_id')}: orbital counts {n_orb.tolist()} disagree with the basis table")
    M = basis.n_union
    node_slots = slot_table[z]
    for which in ("h", "s"):
        if rec.get(f"{which}_node") is not None and rec[f"{which}_node"].size:
            node = _padded(rec[f"{which}_node"], node_slots, node_slots, n_orb, n_orb, M)
            edge = _padded(
                rec[f"{which}_edge"], node_slots[ei[0]], node_slots[ei[1]], n_orb[ei[0]], n_orb[ei[1]], M
            )
            data[f"{which}_node"] = torch.from_numpy(node).to(dtype)
            data[f"{which}_edge"] = torch.from_numpy(edge).to(dtype)
    return data


def structure_to_data(
    numbers, positions, cell, pbc, cutoff: float, basis: BasisTable, dtype: torch.dtype = torch.float32,
    structure_id: str = "",
) -> BlockData:
    """Graph of a bare structure (no DFT blocks), e.g. for inference on a new material."""
    numbers = np.asarray(numbers, dtype=np.int64)
    check_elements(basis, numbers, structure_id or "structure")
    ei, shift, rev = neighbor_graph(np.asarray(cell), np.asarray(positions), np.asarray(pbc), cutoff)
    rec = {
        "atomic_numbers": numbers,
        "positions": np.asarray(positions, dtype=np.float64),
        "cell": np.asarray(cell, dtype=np.float64),
        "pbc": np.broadcast_to(np.asarray(pbc, dtype=bool), (3,)).copy(),
        "orbital_counts": np.array([basis.n_orbitals(int(x)) for x in numbers] if len(numbers) else [], dtype=np.int64),
        "edge_index": ei,
        "cell_shift": shift,
        "edge_rev": rev,
        "fermi_level": np.array([np.nan]),
        "structure_id": structure_id,
    }
    return record_to_data(rec, basis, dtype)


def first_shell_edges(data) -> torch.Tensor:
    """(E,) bool: the edges of each graph no longer than ``FIRST_SHELL`` times that graph's shortest edge."""
    length = edge_vectors(data).norm(dim=1)
    graph = getattr(data, "batch", None)
    owner = torch.zeros_like(data.edge_index[0]) if graph is None else graph[data.edge_index[0]]
    n_graphs = int(owner.max()) + 1 if len(owner) else 0
    shortest = torch.full((n_graphs,), float("inf"), dtype=length.dtype, device=length.device)
    shortest = shortest.scatter_reduce(0, owner, length, reduce="amin")
    return length <= FIRST_SHELL * shortest[owner]


def edge_vectors(data) -> torch.Tensor:
    """Bond vectors r_j + R·cell - r_i (E, 3) of a ``BlockData`` or a batch of them."""
    i, j = data.edge_index
    batch = getattr(data, "batch", None)
    cell = data.cell[batch[i]] if batch is not None else data.cell[0].expand(len(i), 3, 3)
    shift = torch.einsum("ek,ekc->ec", data.cell_shift, cell)
    return data.pos[j] - data.pos[i] + shift


def block_mask(basis: BasisTable, atomic_numbers: torch.Tensor, edge_index: torch.Tensor | None = None):
    """Boolean masks (N,M,M) for on-site blocks, or (E,M,M) for edges when ``edge_index`` is given."""
    table = torch.from_numpy(basis.orbital_mask_table(max(basis.elements))).to(atomic_numbers.device)
    orb = table[atomic_numbers]
    if edge_index is None:
        return orb[:, :, None] & orb[:, None, :]
    return orb[edge_index[0]][:, :, None] & orb[edge_index[1]][:, None, :]


__all__ = ["BlockData", "record_to_data", "structure_to_data", "edge_vectors", "block_mask", "block_offsets"]
