"""The quickstart dataset shipped with the package: small PySCF structures as DeepH folders (tar.xz).

``quickstart_path()`` extracts the archive once (atomically, safe with concurrent callers) into a cache
folder and returns the folder holding one DeepH folder per structure. How it was made: README.md here
(``python -m data_prep.embedded.build`` reruns exactly the recorded ``deeph-prep`` commands).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ARCHIVE = HERE / "quickstart.tar.xz"
COMMANDS = HERE / "commands.json"
TOP = "quickstart"  # the archive's single top-level folder


def commands() -> dict:
    """The recorded ``deeph-prep`` argument lists ({structures}, {out} are placeholders)."""
    return json.loads(COMMANDS.read_text())


def default_cache_dir() -> Path:
    base = os.environ.get("DEEPH_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "deeph-lightning")
    return Path(base)


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _digest(path: Path) -> str:
    return sha256(path)[:16]


def quickstart_path(cache_dir: str | os.PathLike | None = None) -> Path:
    """Folder of DeepH structure folders of the quickstart dataset (extracted on first use)."""
    if not ARCHIVE.is_file():
        raise FileNotFoundError(f"{ARCHIVE}: the quickstart archive is missing from this installation")
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = cache / f"quickstart-{_digest(ARCHIVE)}"
    if (target / TOP).is_dir():
        return target / TOP
    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=cache))
    try:
        with tarfile.open(ARCHIVE, "r:xz") as tar:
            tar.extractall(tmp, filter="data")
        if not (tmp / TOP).is_dir():
            raise ValueError(f"{ARCHIVE}: archive has no top-level '{TOP}/' folder")
        try:
            os.replace(tmp, target)
        except OSError:  # another process finished first
            if not (target / TOP).is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target / TOP


def dataset_path(name: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """Folder of DeepH structure folders of the shipped dataset ``name`` ("quickstart", "universal-mini")."""
    from .datasets import dataset_path as _dataset_path

    return _dataset_path(name, cache_dir)
