"""The LMDB record schema: one structure = one plain dict of numpy arrays (+ two strings).

Serialised with safetensors (a flat header of dtypes/shapes + raw buffers), so reading someone else's
dataset can never execute code. Fields (atoms 0-based, lattice vectors as rows, Å, eV):

    positions (N,3) f8 · cell (3,3) f8 · pbc (3,) bool · atomic_numbers (N,) i8 · orbital_counts (N,) i8
    edge_index (2,E) i8 · cell_shift (E,3) i8 · edge_rev (E,) i8 · fermi_level (1,) f8 (NaN: unknown)
    h_node, s_node: on-site blocks H_ii(0), S_ii(0), row-major, concatenated over atoms (Σ n_i²)
    h_edge, s_edge: hopping blocks H_ij(R), S_ij(R) for every edge, concatenated (Σ_e n_i n_j)
    structure_id, source: strings (kept in the safetensors metadata)

Blocks stay in the source's dtype and OpenMX orbital order, so a DeepH folder -> LMDB -> blocks round trip
is exact. Bump ``SCHEMA_VERSION`` on any change to this layout.
"""

from __future__ import annotations

import hashlib
import json
import struct

import numpy as np
import safetensors.numpy as stn

from .deeph_format import MATRIX_FILES, Blocks, DeepHFormatError, DeepHStructure, format_block_key
from .graph import GraphError, neighbor_graph

SCHEMA_VERSION = 1
STRING_FIELDS = ("structure_id", "source")
BLOCK_FIELDS = ("h_node", "s_node", "h_edge", "s_edge")
# Integrity: blake2b-128 of the whole encoded record, computed with this field zeroed, kept in the safetensors
# metadata. Records written before it existed have none and still read (``verify`` reports them).
CHECKSUM_KEY = "record_blake2b"
CHECKSUM_BYTES = 16
CHECKSUM_NAME = "blake2b-128"
_CHECKSUM_PLACEHOLDER = "0" * (2 * CHECKSUM_BYTES)
MAX_ATOMIC_NUMBER = 118


class RecordError(ValueError):
    pass


def _missing_block_hint(cutoff: float, radius) -> str:
    """Why a block inside the cutoff may be absent: the DFT run stored blocks only up to info.json "radius"."""
    try:
        radius = float(radius)
    except (TypeError, ValueError):
        radius = None
    if radius is not None and cutoff > radius:
        return (f"the cutoff {cutoff:g} Å exceeds info.json radius {radius:g} Å, the distance up to which blocks were "
                f"stored: pack with --cutoff {radius:g} or less")
    return "lower the cutoff, or pack with missing_blocks='zero' if absent blocks are exact zeros"


def _gather(blocks: Blocks | None, keys, shapes, where: str, what: str, missing: str, hint: str = "") -> np.ndarray:
    """Concatenate the blocks of ``keys`` row-major; an absent block is an error, or zeros if missing='zero'."""
    if blocks is None:
        return np.zeros(0)
    dtype = next(iter(blocks.values())).dtype if blocks else np.float64
    parts = []
    for key, shape in zip(keys, shapes):
        blk = blocks.get(key)
        if blk is None:
            if missing == "error":
                raise DeepHFormatError(
                    f"{where}: {what} has no block {format_block_key(key)}, which lies within the cutoff ({hint})"
                )
            blk = np.zeros(shape, dtype=dtype)
        parts.append(blk.ravel())
    return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)


def structure_to_record(
    st: DeepHStructure, cutoff: float, structure_id: str, *, missing_blocks: str = "error"
) -> dict:
    """Build the record of a structure: its neighbour graph within ``cutoff`` and the blocks on it."""
    if missing_blocks not in ("error", "zero"):
        raise ValueError("missing_blocks must be 'error' or 'zero'")
    where = st.source or structure_id
    try:
        edge_index, cell_shift, edge_rev = neighbor_graph(st.cell, st.positions, st.pbc, cutoff)
    except GraphError as err:
        raise DeepHFormatError(f"{where}: {err}") from None
    hint = _missing_block_hint(cutoff, st.info.get("radius"))
    n_orb = st.n_orbitals()
    node_keys = [(0, 0, 0, a, a) for a in range(st.n_atoms)]
    edge_keys = [(int(r[0]), int(r[1]), int(r[2]), int(i), int(j)) for (i, j), r in zip(edge_index.T, cell_shift)]
    node_shapes = [(n_orb[a], n_orb[a]) for a in range(st.n_atoms)]
    edge_shapes = [(n_orb[i], n_orb[j]) for i, j in edge_index.T]
    h_file, s_file = MATRIX_FILES[st.layout]
    rec = {
        "positions": np.asarray(st.positions, dtype=np.float64),
        "cell": np.asarray(st.cell, dtype=np.float64),
        "pbc": np.asarray(st.pbc, dtype=bool),
        "atomic_numbers": np.asarray(st.numbers, dtype=np.int64),
        "orbital_counts": n_orb,
        "edge_index": edge_index,
        "cell_shift": cell_shift,
        "edge_rev": edge_rev,
        "fermi_level": np.array([np.nan if st.fermi_level is None else st.fermi_level], dtype=np.float64),
        "h_node": _gather(st.hamiltonians, node_keys, node_shapes, where, h_file, missing_blocks, hint),
        "h_edge": _gather(st.hamiltonians, edge_keys, edge_shapes, where, h_file, missing_blocks, hint),
        "s_node": _gather(st.overlaps, node_keys, node_shapes, where, s_file, missing_blocks, hint),
        "s_edge": _gather(st.overlaps, edge_keys, edge_shapes, where, s_file, missing_blocks, hint),
        "structure_id": str(structure_id),
        "source": str(st.source),
    }
    return rec


def block_offsets(orbital_counts: np.ndarray, edge_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start offsets (length count+1) of node and edge blocks in the flat arrays."""
    node_sizes = orbital_counts**2
    edge_sizes = orbital_counts[edge_index[0]] * orbital_counts[edge_index[1]]
    return np.concatenate([[0], np.cumsum(node_sizes)]), np.concatenate([[0], np.cumsum(edge_sizes)])


def record_blocks(rec: dict, which: str = "h") -> Blocks:
    """Blocks of a record keyed by (Rx, Ry, Rz, i, j): on-site blocks first, then edges."""
    n = rec["orbital_counts"]
    ei, shift = rec["edge_index"], rec["cell_shift"]
    node_off, edge_off = block_offsets(n, ei)
    node, edge = rec[f"{which}_node"], rec[f"{which}_edge"]
    out: Blocks = {}
    if len(node) == 0:
        return out
    for a in range(len(n)):
        out[(0, 0, 0, a, a)] = node[node_off[a] : node_off[a + 1]].reshape(n[a], n[a])
    for e, ((i, j), r) in enumerate(zip(ei.T, shift)):
        out[(int(r[0]), int(r[1]), int(r[2]), int(i), int(j))] = edge[edge_off[e] : edge_off[e + 1]].reshape(n[i], n[j])
    return out


def validate_record(rec: dict, where: str) -> None:
    """Structural checks of a decoded record (shapes, counts, finiteness)."""
    try:
        z = rec["atomic_numbers"]
        n = len(z)
        e = rec["edge_index"].shape[1]
        assert z.ndim == 1 and z.dtype.kind in "iu", "atomic_numbers are not integers"
        bad = z[(z < 1) | (z > MAX_ATOMIC_NUMBER)]
        assert bad.size == 0, f"atomic number {int(bad[0])} outside 1..{MAX_ATOMIC_NUMBER}"
        assert rec["orbital_counts"].shape == (n,) and np.all(rec["orbital_counts"] > 0), "orbital_counts"
        assert rec["positions"].shape == (n, 3), "positions shape"
        assert rec["cell"].shape == (3, 3), "cell shape"
        assert np.all(np.isfinite(rec["positions"])) and np.all(np.isfinite(rec["cell"])), "NaN/inf in the geometry"
        assert rec["pbc"].shape == (3,), "pbc shape"
        assert rec["edge_index"].shape == (2, e) and rec["cell_shift"].shape == (e, 3), "edge shapes"
        assert rec["edge_rev"].shape == (e,), "edge_rev shape"
        ei, rev = rec["edge_index"], rec["edge_rev"]
        assert e == 0 or (ei.min() >= 0 and ei.max() < n), "edge_index names an atom outside the record"
        assert e == 0 or (rev.min() >= 0 and rev.max() < e), "edge_rev out of range"
        assert np.array_equal(ei[:, rev], ei[::-1]) and np.array_equal(rec["cell_shift"][rev], -rec["cell_shift"]), \
            "edge_rev does not pair each edge (i, j, R) with (j, i, -R)"
        node_off, edge_off = block_offsets(rec["orbital_counts"], rec["edge_index"])
        for f, size in (("h_node", node_off[-1]), ("h_edge", edge_off[-1]), ("s_node", node_off[-1]), ("s_edge", edge_off[-1])):
            assert rec[f].size in (0, size), f"{f} has {rec[f].size} values, expected {size}"
            assert np.all(np.isfinite(rec[f])), f"{f} contains NaN or inf"
    except (KeyError, AssertionError, AttributeError, IndexError, TypeError, ValueError) as err:
        raise RecordError(f"{where}: malformed record ({err})") from None


def _checksum_token(value: str) -> bytes:
    return json.dumps({CHECKSUM_KEY: value}, separators=(",", ":"))[1:-1].encode()


def _digest(buf: bytes) -> str:
    return hashlib.blake2b(buf, digest_size=CHECKSUM_BYTES).hexdigest()


def encode_record(rec: dict) -> bytes:
    """Safetensors bytes of ``rec``; the metadata holds a blake2b digest of the whole buffer (itself zeroed)."""
    arrays = {k: np.ascontiguousarray(v) for k, v in rec.items() if k not in STRING_FIELDS}
    meta = {k: str(rec.get(k, "")) for k in STRING_FIELDS}
    meta["schema_version"] = str(SCHEMA_VERSION)
    meta[CHECKSUM_KEY] = _CHECKSUM_PLACEHOLDER
    buf = stn.save(arrays, metadata=meta)
    token = _checksum_token(_CHECKSUM_PLACEHOLDER)
    assert buf.count(token) == 1, "checksum placeholder must occur once in the record header"
    return buf.replace(token, _checksum_token(_digest(buf)))


def _check_digest(buf: bytes, header_len: int, stored: str, where: str) -> None:
    token = _checksum_token(stored)
    head = buf[8 : 8 + header_len]
    if head.count(token) != 1 or len(stored) != len(_CHECKSUM_PLACEHOLDER):
        raise RecordError(f"{where}: record checksum field is damaged (corrupt shard)")
    start = 8 + head.index(token)
    zeroed = buf[:start] + _checksum_token(_CHECKSUM_PLACEHOLDER) + buf[start + len(token):]
    if _digest(zeroed) != stored:
        raise RecordError(f"{where}: checksum mismatch, the record's bytes changed after it was written "
                          "(corrupt shard: re-copy or re-pack the dataset)")


def has_checksum(buf: bytes) -> bool:
    """Whether an encoded record carries a checksum (records packed before checksums existed do not)."""
    try:
        (header_len,) = struct.unpack("<Q", bytes(buf[:8]))
        return CHECKSUM_KEY in json.loads(bytes(buf[8 : 8 + header_len])).get("__metadata__", {})
    except Exception:
        return False


_SAFETENSORS_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
                       "U8": np.uint8, "BOOL": np.bool_}


def read_fields(buf, names, where: str = "record") -> dict:
    """Only the fields ``names`` of an encoded record, read from the safetensors header's offsets: nothing else is
    copied and the checksum is not computed (``decode_record`` does both). For start-up passes over a whole split
    that need the geometry, not the blocks."""
    view = memoryview(buf)
    try:
        (n,) = struct.unpack("<Q", view[:8])
        header = json.loads(bytes(view[8:8 + n]))
        out = {}
        for name in names:
            entry = header[name]
            start, end = (8 + n + int(o) for o in entry["data_offsets"])
            out[name] = np.frombuffer(view[start:end], dtype=_SAFETENSORS_DTYPES[entry["dtype"]]).reshape(
                entry["shape"]).copy()
    except (KeyError, ValueError, TypeError, struct.error) as err:
        raise RecordError(f"{where}: cannot read fields {', '.join(names)} ({type(err).__name__}: {err})") from None
    return out


def decode_record(buf: bytes, where: str = "record", *, require_checksum: bool = False) -> dict:
    """Decode (and, when it carries one, checksum-verify) an encoded record; ``RecordError`` names ``where``."""
    buf = bytes(buf)
    try:
        (header_len,) = struct.unpack("<Q", buf[:8])
        header = json.loads(buf[8 : 8 + header_len])
        meta = header.get("__metadata__", {})
        stored = meta.get(CHECKSUM_KEY)
    except Exception as err:  # corrupt bytes raise many different errors
        raise RecordError(f"{where}: cannot decode record ({type(err).__name__}: {err})") from None
    if stored is not None:
        _check_digest(buf, header_len, str(stored), where)
    elif require_checksum:
        raise RecordError(f"{where}: record has no checksum although its dataset was packed with them (corrupt shard)")
    try:
        rec = dict(stn.load(buf))
        version = int(meta.get("schema_version", -1))
    except Exception as err:
        raise RecordError(f"{where}: cannot decode record ({type(err).__name__}: {err})") from None
    if version != SCHEMA_VERSION:
        raise RecordError(f"{where}: record schema version {version}, this code reads version {SCHEMA_VERSION}")
    for k in STRING_FIELDS:
        rec[k] = meta.get(k, "")
    return rec
