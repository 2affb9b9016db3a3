"""All-or-nothing outputs: write under a temporary name beside the target, rename when complete.

A failure or a kill at any point leaves either the old target or nothing, never a half-written one.
A temporary folder is ``.<name>.tmp-XXXX`` holding ``.deeph-tmp.json`` (host and pid of its writer);
one whose writer is gone (a killed run) is removed by the next write of the same target. A finished
folder carries the manifest of its files (``outputs.OUTPUT_MANIFEST``); only such a folder is replaced.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import tempfile
from pathlib import Path

from .outputs import check_ours, write_manifest

TMP_MARKER = ".deeph-tmp.json"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _writer_alive(marker: Path) -> bool:
    """False only when the marker names a process of this host that no longer exists."""
    try:
        info = json.loads(marker.read_text())
        host, pid = info["host"], int(info["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return True  # not ours, or being written: leave it
    if host != socket.gethostname():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temps(target: Path) -> list[Path]:
    """Delete ``.<target>.tmp-*`` folders left by killed writers (ours by name and marker); returns them."""
    removed = []
    for tmp in target.parent.glob(f".{target.name}.tmp-*"):
        marker = tmp / TMP_MARKER
        if tmp.is_dir() and not tmp.is_symlink() and marker.is_file() and not _writer_alive(marker):
            shutil.rmtree(tmp, ignore_errors=True)
            removed.append(tmp)
    return removed


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike, overwrite: bool = False):
    """``with atomic_dir(out) as tmp:`` fill the folder ``tmp``; it becomes ``out`` on success.

    With ``overwrite``, an existing ``out`` is replaced only if it holds nothing but our own outputs.
    """
    target = Path(target)
    if target.exists() or target.is_symlink():
        if not overwrite:
            raise FileExistsError(f"{target} already exists")
        check_ours(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it private (0700); the result should be like mkdir's
    try:
        (tmp / TMP_MARKER).write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid()}) + "\n")
        yield tmp
        (tmp / TMP_MARKER).unlink()
        write_manifest(tmp)
        if target.exists():
            check_ours(target)
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def atomic_file(target: str | os.PathLike):
    """``with atomic_file(path) as tmp:`` write the file ``tmp``; it replaces ``path`` on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.tmp-", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private (0600)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
