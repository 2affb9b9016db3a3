"""Sharded LMDB datasets: write them (``pack_folders``) and read them lazily (``LmdbDataset``).

Layout of a dataset folder::

    metadata.json        schema version, units, cutoff, basis table, elements, per-record counts, splits
    data.0000.lmdb       shard written by worker 0: keys "00000000", ... -> encoded records (see records.py),
    data.0001.lmdb       plus "__length__" and "__metadata__" (the shard's own ids/counts, JSON)
    ...

Global record index = shard 0's records, then shard 1's, ... (``metadata.json`` has the shard lengths).
Readers open each shard once per process (``readonly=True, lock=False``) on first access, so a dataset
object pickles cleanly into DataLoader workers.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import lmdb
import numpy as np

from .atomic import atomic_dir
from .basis import BasisTable, element_symbol
from .deeph_format import MATRIX_FILES, DeepHFormatError, check_hermitian, is_deeph_folder, read_deeph
from .outputs import check_output_path
from .records import (CHECKSUM_NAME, SCHEMA_VERSION, RecordError, decode_record, encode_record, read_fields,
                      structure_to_record, validate_record)
from .splits import generalisation_splits

METADATA_FILE = "metadata.json"
SHARD_PATTERN = "data.{:04d}.lmdb"
LENGTH_KEY = b"__length__"
SHARD_META_KEY = b"__metadata__"
MAP_SIZE = 1 << 40  # virtual; the file only grows as records are written
DEFAULT_CUTOFF = 7.5  # Å
REQUIRED_METADATA = ("basis", "cutoff", "shards", "shard_lengths", "splits")


class DatasetError(ValueError):
    pass


def _key(i: int) -> bytes:
    return f"{i:08d}".encode()


# ---------------------------------------------------------------------------------------------------
# writing


def _deeph_folders_under(top: Path):
    """DeepH folders under ``top``, following symbolic links (a folder of links to structures is a common way
    to pick a test set) but never into a directory already seen."""
    seen: set[Path] = set()
    for root, dirs, files in os.walk(top, followlinks=True):
        here = Path(root).resolve()
        if here in seen:
            dirs[:] = []
            continue
        seen.add(here)
        if ("element.dat" in files or "POSCAR" in files) and is_deeph_folder(here):
            yield here


def find_structure_folders(sources: Sequence[str | os.PathLike]) -> list[Path]:
    """DeepH folders given directly, or found (recursively) under the given directories; sorted, unique."""
    found: set[Path] = set()
    for src in sources:
        src = Path(src)
        if not src.exists():
            raise FileNotFoundError(f"{src}: no such file or directory")
        if is_deeph_folder(src):
            found.add(src.resolve())
            continue
        hits = set(_deeph_folders_under(src))
        if not hits:
            raise DeepHFormatError(f"{src}: contains no DeepH-format folder (no element.dat or POSCAR found)")
        found |= hits
    return sorted(found)


def structure_ids(folders: Sequence[Path]) -> list[str]:
    """Stable ids: the folder name, or the path relative to the common parent where names clash."""
    names = [f.name for f in folders]
    if len(set(names)) == len(names):
        return names
    common = Path(os.path.commonpath([str(f) for f in folders]))
    return [str(f.relative_to(common)) for f in folders]


@dataclass
class _ShardJob:
    shard_path: str
    folders: list[str]
    ids: list[str]
    cutoff: float
    missing_blocks: str
    hermiticity_tol: float


_progress = None


def _init_worker(counter, parent_pid: int):
    global _progress
    _progress = counter
    _die_with_parent(parent_pid)


def _die_with_parent(parent_pid: int) -> None:
    """A writer process must not outlive ``deeph-prep pack`` (SIGKILL of the parent alone, a killed job step)."""
    import signal
    import threading

    try:  # Linux: the kernel sends SIGKILL when the parent exits
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)

    def watch():  # elsewhere: notice being re-parented
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _write_shard(job: _ShardJob) -> dict:
    # one writer per shard
    env = lmdb.open(job.shard_path, map_size=MAP_SIZE, subdir=False, meminit=False, map_async=True, lock=False)
    counts = {"n_atoms": [], "n_edges": [], "n_matrix_elements": [], "elements": [], "recipes": []}
    basis = None
    try:
        for idx, (folder, sid) in enumerate(zip(job.folders, job.ids)):
            st = read_deeph(folder)
            h_file, s_file = MATRIX_FILES[st.layout]
            check_hermitian(st.hamiltonians, f"{folder}/{h_file}", job.hermiticity_tol)
            if st.overlaps is not None:
                check_hermitian(st.overlaps, f"{folder}/{s_file}", job.hermiticity_tol)
            table = st.basis_table()
            basis = table if basis is None else basis.merge(table)
            rec = structure_to_record(st, job.cutoff, sid, missing_blocks=job.missing_blocks)
            with env.begin(write=True) as txn:
                txn.put(_key(idx), encode_record(rec))
            counts["n_atoms"].append(int(st.n_atoms))
            counts["n_edges"].append(int(rec["edge_index"].shape[1]))
            counts["n_matrix_elements"].append(int(rec["h_node"].size + rec["h_edge"].size))
            counts["elements"].append(sorted({int(z) for z in st.numbers}))
            counts["recipes"].append(dft_recipe(st.info))
            if _progress is not None:
                with _progress.get_lock():
                    _progress.value += 1
        meta = {"ids": job.ids, **{k: v for k, v in counts.items() if k != "recipes"}}
        with env.begin(write=True) as txn:
            txn.put(LENGTH_KEY, str(len(job.folders)).encode())
            txn.put(SHARD_META_KEY, json.dumps(meta).encode())
        env.sync(True)
    finally:
        env.close()
    return {"ids": job.ids, "basis": None if basis is None else basis.to_dict(), **counts}


RECIPE_KEYS = ("code", "xc", "basis", "pseudo")


def dft_recipe(info: dict) -> dict:
    """The parts of a structure's DFT recipe (info.json "dft") that define its Hamiltonian's basis and gauge."""
    dft = info.get("dft") or {}
    return {k: dft[k] for k in RECIPE_KEYS if k in dft}


def code_name(code) -> str:
    """The program of a recipe's ``code`` entry without its version ("pyscf 2.14.0" -> "pyscf")."""
    return str(code).split()[0].lower() if str(code).split() else ""


def common_recipe(recipes: list[dict]) -> dict | None:
    """The shared DFT recipe of all structures, or None when they differ or none is recorded.

    Versions of the same program do not make another recipe (a dataset computed over months spans releases):
    ``code`` then lists every version, e.g. "pyscf 2.14.0, pyscf 2.15.0"."""
    if not recipes or not recipes[0]:
        return None
    unique = {json.dumps({**r, "code": code_name(r.get("code", ""))}, sort_keys=True) for r in recipes}
    if len(unique) != 1:
        return None
    codes = sorted({str(r["code"]) for r in recipes if "code" in r})
    return {**recipes[0], **({"code": ", ".join(codes)} if codes else {})}


def make_splits(n: int, seed: int, fractions: Sequence[float]) -> dict[str, list[int]]:
    """Seeded split of record indices into train/val/test (by structure: one record = one structure)."""
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f"split fractions must be three non-negative numbers summing to 1, got {list(fractions)}")
    perm = np.random.default_rng(seed).permutation(n)
    n_val = int(round(fractions[1] * n))
    n_test = int(round(fractions[2] * n))
    if n >= 3:  # keep every split non-empty when its fraction is positive
        n_val = max(n_val, 1 if fractions[1] > 0 else 0)
        n_test = max(n_test, 1 if fractions[2] > 0 else 0)
    n_train = n - n_val - n_test
    return {
        "train": sorted(perm[:n_train].tolist()),
        "val": sorted(perm[n_train : n_train + n_val].tolist()),
        "test": sorted(perm[n_train + n_val :].tolist()),
    }


def pack_folders(
    sources: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    cutoff: float = DEFAULT_CUTOFF,
    workers: int = 1,
    shards: int | None = None,
    split_seed: int = 0,
    split_fractions: Sequence[float] = (0.8, 0.1, 0.1),
    missing_blocks: str = "error",
    hermiticity_tol: float = 1e-4,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Pack DeepH-format folders into a sharded LMDB dataset at ``out``. All-or-nothing.

    Everything is written under a temporary folder beside ``out`` and renamed at the end, so a failure
    (bad input, killed process) never leaves a half-written dataset at ``out``.
    """
    out = Path(out)
    if not (np.isfinite(cutoff) and cutoff > 0):
        raise ValueError(f"cutoff {cutoff}: must be a positive, finite radius in Å")
    if workers < 1 or (shards is not None and shards < 1):
        raise ValueError(f"workers={workers}, shards={shards}: both must be at least 1")
    check_output_path(out, sources, overwrite=overwrite)
    folders = find_structure_folders(sources)
    ids = structure_ids(folders)
    n_shards = max(1, min(shards or workers, len(folders)))
    with atomic_dir(out, overwrite=overwrite) as tmp:
        jobs = [
            _ShardJob(
                str(tmp / SHARD_PATTERN.format(k)),
                [str(f) for f in folders[k::n_shards]],
                ids[k::n_shards],
                cutoff,
                missing_blocks,
                hermiticity_tol,
            )
            for k in range(n_shards)
        ]
        results = _run_jobs(jobs, workers, len(folders), progress)
        basis = None
        for r in results:
            if r["basis"] is not None:
                table = BasisTable.from_dict(r["basis"])
                basis = table if basis is None else basis.merge(table)
        flat = {key: [v for r in results for v in r[key]] for key in ("ids", "n_atoms", "n_edges", "n_matrix_elements")}
        elements = sorted({z for r in results for zs in r["elements"] for z in zs})
        recipes = [r for res in results for r in res["recipes"]]
        meta = {
            "schema_version": SCHEMA_VERSION,
            "format": "deeph-lightning sharded LMDB",
            "record_checksums": CHECKSUM_NAME,
            "units": {"length": "angstrom", "energy": "eV"},
            "orbital_order": "openmx",
            "cutoff": float(cutoff),
            "missing_blocks": missing_blocks,
            "basis": basis.to_dict(),
            "dft_recipe": common_recipe(recipes),  # e.g. basis name: needed to compute S(R) for new structures
            "elements": elements,
            "element_symbols": [element_symbol(z) for z in elements],
            "shards": [Path(j.shard_path).name for j in jobs],
            "shard_lengths": [len(j.folders) for j in jobs],
            "length": len(folders),
            **flat,
            "sources": [str(Path(s).resolve()) for s in sources],
            "split_seed": int(split_seed),
            "split_fractions": list(map(float, split_fractions)),
            "splits": make_splits(len(folders), split_seed, split_fractions),
            "split_sets": generalisation_splits([Path(f) for j in jobs for f in j.folders], split_seed,
                                                split_fractions),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        (tmp / METADATA_FILE).write_text(json.dumps(meta, indent=1) + "\n")
    return out


def _run_jobs(jobs: list[_ShardJob], workers: int, total: int, progress: bool) -> list[dict]:
    from tqdm import tqdm

    bar = tqdm(total=total, desc="pack", unit="structure", disable=not progress)
    try:
        if workers <= 1 or len(jobs) == 1:
            results = []
            for job in jobs:
                results.append(_write_shard(job))
                bar.update(len(job.folders))
            return results
        ctx = mp.get_context("fork")
        counter = ctx.Value("i", 0)
        with ctx.Pool(min(workers, len(jobs)), initializer=_init_worker, initargs=(counter, os.getpid())) as pool:
            pending = pool.map_async(_write_shard, jobs)
            while not pending.ready():
                pending.wait(0.2)
                bar.update(counter.value - bar.n)
            results = pending.get()  # re-raises the first worker error
        bar.update(total - bar.n)
        return results
    finally:
        bar.close()


# ---------------------------------------------------------------------------------------------------
# reading


_OPEN_ENVS: dict[tuple, lmdb.Environment] = {}


_LMDB_MAGIC = 0xBEEFC0DE


def check_shard_file(path: Path) -> None:
    """Raise ``DatasetError`` unless ``path`` is an LMDB file as long as its own header says.

    LMDB memory-maps the file; reading a page past the end of a truncated file (interrupted copy, full disk)
    kills the process with SIGBUS. Each of the two meta pages records the last page in use (``mm_last_pg``)
    and its transaction id; the newest valid one must fit in the file.
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(2 * 65536)
    first = _meta_page(head, 0)  # (txnid, page size, last page) or None
    second = _meta_page(head, first[1] if first else 4096)  # a damaged first page: try the usual page size
    valid = [m for m in (first, second) if m is not None]
    newest = max(valid) if valid else None
    if newest is None:
        raise DatasetError(f"{path}: not an LMDB shard (no valid header; {size} bytes): corrupt or truncated, "
                           "re-copy or re-pack the dataset")
    _, page_size, last_page = newest
    needed = (last_page + 1) * page_size
    if size < needed:
        raise DatasetError(f"{path}: truncated LMDB shard ({size} bytes, its header needs {needed}): re-copy or "
                           "re-pack the dataset")


def _meta_page(head: bytes, offset: int):
    """(txnid, page size, last page) of the LMDB meta page at ``offset`` (64-bit layout), or None if invalid."""
    if len(head) < offset + 152:
        return None
    magic, version = struct.unpack_from("<II", head, offset + 16)
    page_size = struct.unpack_from("<I", head, offset + 40)[0]  # kept in the free-list DB's md_pad
    last_page, txnid = struct.unpack_from("<QQ", head, offset + 136)
    if magic != _LMDB_MAGIC or version != 1 or page_size < 512 or page_size > 65536 or page_size & (page_size - 1):
        return None
    return txnid, page_size, last_page


def _open_readonly(path: Path) -> lmdb.Environment:
    """One read-only environment per shard file and process (LMDB refuses to open a file twice in a process)."""
    if not path.is_file():
        raise DatasetError(f"{path}: shard listed in {METADATA_FILE} is missing")
    check_shard_file(path)
    pid = os.getpid()
    for inherited in [k for k in _OPEN_ENVS if k[0] != pid]:
        # A forked child inherits the parent's handles; LMDB must not use them there, and refuses to open the
        # file again while they exist. Closing the child's copy leaves the parent's untouched.
        _OPEN_ENVS.pop(inherited).close()
    stat = path.stat()  # a dataset re-packed at the same path is a new file: key on its identity too
    key = (pid, str(path.resolve()), stat.st_ino, stat.st_mtime_ns)
    for replaced in [k for k in _OPEN_ENVS if k[:2] == key[:2] and k != key]:
        _OPEN_ENVS.pop(replaced).close()  # the file changed since it was opened: LMDB allows one handle per file
    env = _OPEN_ENVS.get(key)
    if env is None:
        try:
            env = lmdb.open(str(path), subdir=False, readonly=True, lock=False, readahead=False, meminit=False)
        except lmdb.Error as e:
            raise DatasetError(f"{path}: cannot open LMDB shard ({e})") from None
        _OPEN_ENVS[key] = env
    return env


class LmdbDataset:
    """Read-only, lazily opened view of a packed dataset. ``ds[i]`` is the decoded record dict."""

    def __init__(self, path: str | os.PathLike, validate: bool = True):
        self.path = Path(path)
        meta_path = self.path / METADATA_FILE
        if not meta_path.is_file():
            raise DatasetError(f"{self.path}: not a packed dataset (no {METADATA_FILE}); create one with deeph-prep pack")
        try:
            self.metadata = json.loads(meta_path.read_text())
        except json.JSONDecodeError as e:
            raise DatasetError(f"{meta_path}: invalid JSON ({e})") from None
        if not isinstance(self.metadata, dict):
            raise DatasetError(f"{meta_path}: expected a JSON object, got {type(self.metadata).__name__}")
        version = self.metadata.get("schema_version")
        if version != SCHEMA_VERSION:
            raise DatasetError(f"{self.path}: dataset schema version {version}, this code reads version {SCHEMA_VERSION}")
        missing = [k for k in REQUIRED_METADATA if k not in self.metadata]
        if missing:
            raise DatasetError(f"{meta_path}: missing {', '.join(repr(k) for k in missing)}; re-pack the dataset")
        try:
            self.basis = BasisTable.from_dict(self.metadata["basis"])
            self.cutoff = float(self.metadata["cutoff"])
            lengths = [int(n) for n in self.metadata["shard_lengths"]]
            assert len(lengths) == len(self.metadata["shards"]) and min(lengths, default=0) >= 0
        except (ValueError, TypeError, KeyError, AttributeError, AssertionError) as err:
            raise DatasetError(f"{meta_path}: malformed basis, cutoff, shards or shard_lengths ({err})") from None
        self._bounds = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        self.checksums = self.metadata.get("record_checksums")  # None: packed before records had checksums
        self.validate = validate
        self._envs: dict[int, lmdb.Environment] = {}
        self._pid = None

    def __len__(self) -> int:
        return int(self._bounds[-1])

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_envs"] = {}
        state["_pid"] = None
        return state

    def _env(self, shard: int) -> lmdb.Environment:
        if self._pid != os.getpid():  # opened in another process (forked worker): reopen here
            self._envs, self._pid = {}, os.getpid()
        env = self._envs.get(shard)
        if env is None:
            env = self._envs[shard] = _open_readonly(self.path / self.metadata["shards"][shard])
        return env

    def locate(self, idx: int) -> tuple[int, int]:
        if idx < 0:
            idx += len(self)
        if not 0 <= idx < len(self):
            raise IndexError(f"record {idx} out of range for dataset of {len(self)} records")
        shard = int(np.searchsorted(self._bounds, idx, side="right") - 1)
        return shard, idx - int(self._bounds[shard])

    def _where(self, idx: int) -> tuple[int, int, str]:
        shard, local = self.locate(int(idx))
        return shard, local, f"{self.path / self.metadata['shards'][shard]} record {local}"

    def _read(self, idx: int, use, buffers: bool = False):
        """``use(buffer, where)`` on record ``idx``'s stored bytes, inside the read transaction (``buffers``: a
        memoryview into the map, valid only there)."""
        shard, local, where = self._where(idx)
        try:
            with self._env(shard).begin(buffers=buffers) as txn:
                buf = txn.get(_key(local))
                if buf is None:
                    raise DatasetError(f"{where}: record missing from shard (corrupt or truncated dataset)")
                return use(buf, where)
        except lmdb.Error as e:
            raise DatasetError(f"{where}: LMDB read failed ({e}); the shard is corrupt or truncated") from None

    def raw(self, idx: int) -> bytes:
        """The encoded bytes of record ``idx`` as stored in its shard."""
        return self._read(idx, lambda buf, where: buf)

    def fields(self, idx: int, names) -> dict:
        """Only the fields ``names`` of record ``idx`` (``records.read_fields``: no blocks copied, no checksum)."""
        return self._read(idx, lambda buf, where: read_fields(buf, names, where), buffers=True)

    def __getitem__(self, idx: int) -> dict:
        """Record ``idx``, checksum-verified (when packed with checksums) and checked for shape/range errors."""
        _, _, where = self._where(idx)
        rec = decode_record(self.raw(idx), where, require_checksum=bool(self.checksums))
        if self.validate:
            validate_record(rec, where)
            self._check_basis(rec, where)
        return rec

    def _check_basis(self, rec: dict, where: str) -> None:
        for z, n in zip(rec["atomic_numbers"].tolist(), rec["orbital_counts"].tolist()):
            if z not in self.basis:
                raise RecordError(f"{where}: element {z} is not in the dataset's basis table ({METADATA_FILE})")
            if self.basis.n_orbitals(z) != n:
                raise RecordError(f"{where}: element {z} has {n} orbitals, the basis table says {self.basis.n_orbitals(z)}")

    def shard_length(self, shard: int) -> int:
        with self._env(shard).begin() as txn:
            raw = txn.get(LENGTH_KEY)
        if raw is None:
            raise DatasetError(f"{self.path / self.metadata['shards'][shard]}: no {LENGTH_KEY.decode()} key (incomplete shard)")
        return int(raw)

    def split(self, name: str, split_set: str = "random") -> list[int]:
        """Record indices of split ``name`` (train/val/test) of ``split_set``: "random" or one of the
        generalisation splits of ``data_prep.splits`` ("composition", "complicated")."""
        sets = {"random": self.metadata["splits"], **self.metadata.get("split_sets", {})}
        if split_set not in sets:
            raise DatasetError(f"{self.path}: no split set {split_set!r} (have {sorted(sets)})")
        try:
            return list(sets[split_set][name])
        except KeyError:
            raise DatasetError(f"{self.path}: no split named {name!r} (have {sorted(sets[split_set])})") from None

    def close(self) -> None:
        """Forget this reader's handles. Environments are shared per process (LMDB allows one per file) and
        stay open for other readers of the same shards; they close when the process exits."""
        self._envs = {}


class LmdbGraphDataset:
    """torch-style dataset of ``BlockData`` graphs (blocks padded to the dataset's union basis)."""

    def __init__(self, path: str | os.PathLike, indices: Sequence[int] | None = None, dtype=None,
                 basis: BasisTable | None = None):
        import torch

        self.records = LmdbDataset(path)
        self.basis = basis or self.records.basis
        self.indices = list(range(len(self.records))) if indices is None else list(indices)
        self.dtype = dtype or torch.get_default_dtype()

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        from .torch_data import record_to_data

        return record_to_data(self.records[self.indices[i]], self.basis, self.dtype)

    def matrix_elements(self) -> np.ndarray:
        """Per-item count of stored matrix elements (for size-balanced batching)."""
        counts = np.asarray(self.records.metadata["n_matrix_elements"])
        return counts[self.indices]
