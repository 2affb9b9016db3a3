"""Datasets shipped in the repository, by name: ``dataset_path(name)`` and ``list_datasets()``.

* ``quickstart``: one archive (``quickstart.tar.xz``), see README.md here.
* ``universal-mini``: the universal database at CPU scale, shipped as chunks in ``universal-mini/``
  (``dataset.json`` lists them with their checksums, structures and failures; see its README.md). Chunks
  hold the compact form of ``shipping``; extraction restores complete DeepH folders (float64 H, exact S).

Extraction happens once per content (the cache folder name carries a digest of the dataset record),
atomically, into ``$DEEPH_CACHE`` (default ``~/.cache/deeph-lightning``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

from . import HERE, default_cache_dir, quickstart_path, sha256

CHUNKED = {"universal-mini": HERE / "universal-mini"}


def dataset_record(name: str) -> dict:
    if name not in CHUNKED:
        raise KeyError(f"unknown dataset {name!r} (shipped: {', '.join(['quickstart', *CHUNKED])})")
    path = CHUNKED[name] / "dataset.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the {name} dataset record is missing from this installation")
    return json.loads(path.read_text())


def dataset_path(name: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """Folder of DeepH structure folders of a shipped dataset (extracted on first use)."""
    if name == "quickstart":
        return quickstart_path(cache_dir)
    dataset_record(name)  # a clear error for unknown names
    return extract_chunked(CHUNKED[name], cache_dir)


def given_up(record: dict) -> dict[str, list[str]]:
    """The structures of a chunked dataset's record that failed twice (not retried), with their errors."""
    return {sid: errors for sid, errors in record.get("failures", {}).items() if len(errors) >= 2}


def current_structures(record: dict) -> dict[str, str]:
    """Structure id -> chunk file for every structure a chunked dataset holds now: the latest chunk that has
    it, without the retired ones (``record["retired"]``: computed with an outdated recipe, not yet recomputed)."""
    where = {sid: chunk["file"] for chunk in record.get("chunks", []) for sid in chunk["ids"]}
    retired = record.get("retired", {})
    return {sid: file for sid, file in where.items() if sid not in retired}


def extract_chunked(folder: Path, cache_dir: str | os.PathLike | None = None) -> Path:
    """Extract the chunks listed in ``folder/dataset.json`` once (checksums verified, overlaps restored)."""
    folder = Path(folder)
    record = json.loads((folder / "dataset.json").read_text())
    name = record["name"]
    if not record.get("chunks"):
        raise FileNotFoundError(f"{folder}: no chunk of {name} has been shipped yet")
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    content = [record["chunks"], sorted(record.get("retired", {}))]
    digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]
    target = cache / f"{name}-{digest}"
    if (target / name).is_dir():
        return target / name
    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=cache))
    try:
        _extract(folder, record, tmp)
        try:
            os.replace(tmp, target)
        except OSError:  # another process finished first
            if not (target / name).is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target / name


def _extract(folder: Path, record: dict, tmp: Path) -> None:
    from .shipping import restore

    shipped = tmp / "shipped"
    for chunk in record["chunks"]:
        archive = folder / chunk["file"]
        if not archive.is_file():
            raise FileNotFoundError(f"{archive}: chunk listed in dataset.json is missing")
        if sha256(archive) != chunk["sha256"]:
            raise ValueError(f"{archive}: checksum differs from dataset.json (corrupted or modified chunk)")
        with tarfile.open(archive, "r:xz") as tar:
            tar.extractall(shipped / chunk["file"], filter="data")
    (tmp / record["name"]).mkdir()
    for sid, file in sorted(current_structures(record).items()):
        restore(shipped / file / sid, tmp / record["name"] / sid)
    shutil.rmtree(shipped)


def list_datasets() -> list[dict]:
    """Name, structures, elements, size on disk and recipe of every shipped dataset."""
    from . import ARCHIVE

    out = [{"name": "quickstart", "structures": 40, "elements": ["C", "Si"], "size_mb": ARCHIVE.stat().st_size / 1e6,
            "recipe": "PBE, GTH, SZV-MOLOPT-SR-GTH, k-spacing 0.8, 40 Ha, radius 7 Å", "path": str(ARCHIVE)}]
    for name, folder in CHUNKED.items():
        try:
            record = dataset_record(name)
        except FileNotFoundError:
            continue
        structures = list(current_structures(record))
        elements = sorted({e for s in structures for e in record["structures"][s]["elements"]})
        size = sum((folder / c["file"]).stat().st_size for c in record.get("chunks", []))
        r = record["recipe"]
        out.append({"name": name, "structures": len(structures), "elements": elements, "size_mb": size / 1e6,
                    "recipe": f"{r['xc'].upper()}, {r['pseudo']}, {r['basis']}, k-spacing {r['kspacing']}, "
                              f"grid {r['ke_cutoff']} Ha" + (f" ({r['ke_cutoff_d']} Ha with d shells)"
                                                              if r.get("ke_cutoff_d") else "")
                              + f", radius {r['radius']} Å",
                    "failures": len(given_up(record)),
                    "planned": record.get("planned"), "path": str(folder)})
    return out
