"""The energy zero of batched Hamiltonian blocks (torch); the numpy twin is ``data_prep.gauge``.

H and H + c·S describe the same physics per structure. On a batch of ``BlockData`` graphs:
* ``structure_mu``: per structure, μ = <V, S> / <S, S> over the masked on-site and edge blocks of any block
  values V (the targets: the structure's gauge; a residual: the shift that best explains it);
* ``standardise_targets``: h_node/h_edge -> H - μ·S in place (the standardised targets), returns μ;
* ``gauge_free_residuals``: (pred - target) - c·S with c the per-structure least-squares shift;
* ``project_standardised``: a prediction -> prediction - μ_pred·S, onto <H, S> = 0 like the standardised targets.

The atoms gauge (``data_prep.gauge``): the same with μ_a = <H - A, S> / <S, S>, A the free atoms' on-site blocks
(``atom_node`` = A_i per atom, ``atom_reference_tensor(...)[z]``; zero on the edges).
The huckel gauge: the targets are H - H0 (``huckel_reference``: A_i on-site, K/2 (A_i S_ij + S_ij A_j) on the
edges), standardised; the network predicts that residual (``gauge_targets`` / ``gauge_projection``).
"""

from __future__ import annotations

import torch
from torch_geometric.utils import scatter

from data_prep.basis import BasisTable
from data_prep.gauge import ATOM_GAUGES, GAUGES, check_gauge
from data_prep.torch_data import block_mask

__all__ = ["GAUGES", "ATOM_GAUGES", "check_gauge", "structure_mu", "standardise_targets", "gauge_free_residuals",
           "project_standardised", "minus_mu_s", "owners", "atom_reference_tensor", "gauge_mu_of", "huckel_reference",
           "gauge_targets", "gauge_projection"]


def owners(batch) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(structure of each atom, structure of each edge, number of structures)."""
    z, ei = batch.atomic_numbers, batch.edge_index
    graph = getattr(batch, "batch", None)
    graph = torch.zeros_like(z) if graph is None else graph
    n = int(batch.num_graphs) if hasattr(batch, "num_graphs") else 1
    return graph, graph[ei[0]], n


def _require_overlaps(batch) -> None:
    if getattr(batch, "s_node", None) is None or getattr(batch, "s_edge", None) is None:
        raise ValueError("the gauge μ = <H,S>/<S,S> needs overlaps (s_node/s_edge) in the data; "
                         "this dataset was packed without S")


def structure_mu(node: torch.Tensor, edge: torch.Tensor, batch, basis: BasisTable) -> torch.Tensor:
    """(B,) per structure <V, S> / <S, S> over the masked blocks, V given as (node, edge) block values."""
    _require_overlaps(batch)
    on, oe, n = owners(batch)
    z, ei = batch.atomic_numbers, batch.edge_index
    vs, ss = 0.0, 0.0
    for v, s, mask, owner in ((node, batch.s_node, block_mask(basis, z), on),
                              (edge, batch.s_edge, block_mask(basis, z, ei), oe)):
        s = s.to(v.dtype) * mask.to(v.dtype)
        vs = vs + scatter((v * s).sum(dim=(1, 2)), owner, 0, dim_size=n, reduce="sum")
        ss = ss + scatter((s * s).sum(dim=(1, 2)), owner, 0, dim_size=n, reduce="sum")
    return vs / ss.clamp(min=torch.finfo(node.dtype).tiny)


def atom_reference_tensor(table: dict, basis: BasisTable) -> torch.Tensor:
    """(Zmax+1, M, M) float64 union-basis isolated-atom on-site blocks from ``table`` {Z: (n_orb, n_orb), the
    element's orbitals in file order} (keys may be strings, as in a checkpoint)."""
    table = {int(z): v for z, v in table.items()}
    out = torch.zeros(max(basis.elements) + 1, basis.n_union, basis.n_union, dtype=torch.float64)
    for z in basis.elements:
        if z not in table:
            raise ValueError(f"isolated-atom reference: no block for element Z={z}")
        slots = torch.from_numpy(basis.union_slots(z))
        block = torch.as_tensor(table[z], dtype=torch.float64)
        if block.shape != (len(slots), len(slots)):
            raise ValueError(f"isolated-atom reference of Z={z}: shape {tuple(block.shape)}, expected "
                             f"{(len(slots), len(slots))} (its orbitals in the basis table)")
        out[z, slots[:, None], slots[None, :]] = block
    return out


def gauge_mu_of(node: torch.Tensor, edge: torch.Tensor, batch, basis: BasisTable,
                atom_node: torch.Tensor | None = None) -> torch.Tensor:
    """(B,) the zero of the standardised gauge (``atom_node`` None), or of the atoms gauge: μ of H - A."""
    if atom_node is not None:
        node = node - atom_node.to(node.dtype)
    return structure_mu(node, edge, batch, basis)


def minus_mu_s(node: torch.Tensor, edge: torch.Tensor, mu: torch.Tensor, batch) -> tuple[torch.Tensor, torch.Tensor]:
    """(node, edge) block values with μ_b·S removed for every structure b (μ: (B,))."""
    on, oe, _ = owners(batch)
    return (node - mu[on][:, None, None] * batch.s_node.to(node.dtype),
            edge - mu[oe][:, None, None] * batch.s_edge.to(edge.dtype))


def standardise_targets(batch, basis: BasisTable, atom_node: torch.Tensor | None = None) -> torch.Tensor:
    """Targets H -> H - μ·S per structure, in place (<H, S> = 0 afterwards; with ``atom_node`` the atoms
    gauge's μ_a); returns μ (B,) in eV."""
    mu = gauge_mu_of(batch.h_node, batch.h_edge, batch, basis, atom_node)
    batch.h_node, batch.h_edge = minus_mu_s(batch.h_node, batch.h_edge, mu, batch)
    return mu


def project_standardised(out: dict, batch, basis: BasisTable, atom_node: torch.Tensor | None = None) -> dict:
    """``out`` (h_node, h_edge) with its own μ·S removed per structure: <H, S> = 0 over the masked blocks.

    The standardised targets satisfy <H, S> = 0, so this orthogonal projection (in the Frobenius product over
    the masked blocks) never moves a prediction away from its target: its error becomes the gauge-invariant
    residual. The network need not learn each structure's μ, which depends on the whole structure. With
    ``atom_node``: the same in the atoms gauge (μ_a of the prediction removed, as the targets' was)."""
    mu = gauge_mu_of(out["h_node"], out["h_edge"], batch, basis, atom_node)
    h_node, h_edge = minus_mu_s(out["h_node"], out["h_edge"], mu, batch)
    return {**out, "h_node": h_node, "h_edge": h_edge}


def gauge_free_residuals(out: dict, batch, basis: BasisTable) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(node, edge) residuals pred - target with the per-structure least-squares c·S removed, and c (B,).
    Invariant to target -> target + c_b·S and to pred -> pred + c_b·S per structure b."""
    r_node, r_edge = out["h_node"] - batch.h_node, out["h_edge"] - batch.h_edge
    c = structure_mu(r_node, r_edge, batch, basis)
    return (*minus_mu_s(r_node, r_edge, c, batch), c)


def huckel_reference(batch, atoms: torch.Tensor, k: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(node, edge) blocks of the huckel gauge's H0 on a batch: A_i on the atoms, K/2 (A_i S_ij + S_ij A_j) on
    the edges (i = edge_index[0], rows; j = edge_index[1], columns); ``atoms`` from ``atom_reference_tensor``."""
    _require_overlaps(batch)
    a = atoms.to(batch.h_node.dtype)[batch.atomic_numbers]
    s = batch.s_edge.to(a.dtype)
    ei = batch.edge_index
    return a, 0.5 * k * (a[ei[0]] @ s + s @ a[ei[1]])


def gauge_targets(batch, basis: BasisTable, gauge: str, atoms: torch.Tensor | None = None,
                  huckel_k: float | None = None) -> torch.Tensor | None:
    """The batch's targets, in place, as a model of ``gauge`` learns them (raw: unchanged); returns μ (B,) eV.
    ``atoms``: ``atom_reference_tensor`` of the atoms and huckel gauges."""
    if gauge == "raw":
        return None
    if gauge == "huckel":
        node, edge = huckel_reference(batch, atoms, huckel_k)
        batch.h_node, batch.h_edge = batch.h_node - node, batch.h_edge - edge
        return standardise_targets(batch, basis)
    return standardise_targets(batch, basis, atoms[batch.atomic_numbers] if gauge == "atoms" else None)


def gauge_projection(out: dict, batch, basis: BasisTable, gauge: str, atoms: torch.Tensor | None = None) -> dict:
    """A network's output projected as ``gauge_targets`` made the targets (``project_standardised``)."""
    if gauge == "raw":
        return out
    return project_standardised(out, batch, basis, atoms[batch.atomic_numbers] if gauge == "atoms" else None)
