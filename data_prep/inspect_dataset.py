"""Checks and statistics of a packed dataset (``deeph-prep verify`` / ``deeph-prep stats``)."""

from __future__ import annotations

import numpy as np

from .basis import element_symbol
from .lmdb_dataset import LmdbDataset
from .records import CHECKSUM_NAME, RecordError, block_offsets, has_checksum, validate_record


def record_hermiticity(rec: dict, which: str = "h") -> float:
    """max |X_ij(R) - X_ji(-R)ᵀ| over a record's edges and on-site blocks (0 when it has no blocks)."""
    node, edge = rec[f"{which}_node"], rec[f"{which}_edge"]
    if node.size == 0:
        return 0.0
    n, ei, rev = rec["orbital_counts"], rec["edge_index"], rec["edge_rev"]
    node_off, edge_off = block_offsets(n, ei)
    worst = 0.0
    for a in range(len(n)):
        blk = node[node_off[a] : node_off[a + 1]].reshape(n[a], n[a])
        worst = max(worst, float(np.abs(blk - blk.T).max(initial=0.0)))
    for e in range(ei.shape[1]):
        i, j, r = ei[0, e], ei[1, e], rev[e]
        blk = edge[edge_off[e] : edge_off[e + 1]].reshape(n[i], n[j])
        partner = edge[edge_off[r] : edge_off[r + 1]].reshape(n[j], n[i])
        worst = max(worst, float(np.abs(blk - partner.T).max(initial=0.0)))
    return worst


def verify_dataset(path, tol: float = 1e-4) -> dict:
    """Decode every record; check schema, counts, finiteness and H_ij(R) = H_ji(-R)ᵀ. Raises on the first problem."""
    ds = LmdbDataset(path)
    meta = ds.metadata
    for shard in range(len(meta["shards"])):
        stored = ds.shard_length(shard)
        if stored != meta["shard_lengths"][shard]:
            raise RecordError(
                f"{ds.path / meta['shards'][shard]}: holds {stored} records, metadata.json says {meta['shard_lengths'][shard]}"
            )
    worst = {"h": 0.0, "s": 0.0}
    with_checksum = 0
    for idx in range(len(ds)):
        with_checksum += has_checksum(ds.raw(idx))
        rec = ds[idx]  # verifies the checksum when the record has one
        where = f"{ds.path} record {idx} ({rec['structure_id']})"
        validate_record(rec, where)
        if rec["structure_id"] != meta["ids"][idx]:
            raise RecordError(f"{where}: id disagrees with metadata.json ({meta['ids'][idx]})")
        if len(rec["atomic_numbers"]) != meta["n_atoms"][idx]:
            raise RecordError(f"{where}: atom count disagrees with metadata.json")
        for which in worst:
            dev = record_hermiticity(rec, which)
            if dev > tol:
                raise RecordError(f"{where}: {which.upper()} is not Hermitian: max |X_ij(R) - X_ji(-R)^T| = {dev:.3g} > {tol:g}")
            worst[which] = max(worst[which], dev)
    checksums = (f"{CHECKSUM_NAME}, verified on every record" if with_checksum == len(ds) else
                 f"absent on {len(ds) - with_checksum} of {len(ds)} records (packed before records had checksums: "
                 "flipped bytes in their blocks cannot be detected; re-pack to add them)")
    return {"records": len(ds), "shards": len(meta["shards"]), "schema_version": meta["schema_version"],
            "checksums": checksums, "records_with_checksum": with_checksum,
            "max_hermiticity_error_h": worst["h"], "max_hermiticity_error_s": worst["s"]}


def dataset_stats(path) -> dict:
    ds = LmdbDataset(path)
    meta = ds.metadata
    element_counts: dict[str, int] = {}
    h_onsite, h_hop = [], []
    for idx in range(len(ds)):
        rec = ds[idx]
        for z in rec["atomic_numbers"]:
            sym = element_symbol(int(z))
            element_counts[sym] = element_counts.get(sym, 0) + 1
        if rec["h_node"].size:
            h_onsite.append(rec["h_node"])
            h_hop.append(rec["h_edge"])

    def summary(values):
        v = np.asarray(values, dtype=np.float64)
        return {"min": float(v.min()), "mean": float(v.mean()), "max": float(v.max())} if v.size else {}

    def value_summary(parts):
        if not parts:
            return {}
        v = np.concatenate(parts)
        return {"min": float(v.min()), "max": float(v.max()), "mean_abs": float(np.abs(v).mean()), "count": int(v.size)}

    return {
        "path": str(ds.path),
        "records": len(ds),
        "cutoff": meta["cutoff"],
        "basis": {element_symbol(int(z)): ls for z, ls in meta["basis"].items()},
        "atoms_per_element": dict(sorted(element_counts.items())),
        "n_atoms": summary(meta["n_atoms"]),
        "n_edges": summary(meta["n_edges"]),
        "n_matrix_elements": summary(meta["n_matrix_elements"]),
        "h_onsite_eV": value_summary(h_onsite),
        "h_hopping_eV": value_summary(h_hop),
        "splits": {k: len(v) for k, v in meta["splits"].items()},
    }
