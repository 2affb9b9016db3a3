"""What an output folder may replace: only what deeph-lightning wrote, never an input, checked before any work.

Every folder written through ``atomic.atomic_dir`` carries ``.deeph-output.json``, the list of the files we
wrote into it. ``--overwrite`` deletes a folder only when that manifest is there and the folder holds
nothing else; an ``--out`` that is an input, or a parent of one, is refused whatever the flags.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Iterable

OUTPUT_MANIFEST = ".deeph-output.json"


class OutputError(ValueError):
    """An output path would destroy something we did not write, or cannot be written at all."""


def files_under(folder: Path) -> list[str]:
    """Every file and link below ``folder`` as a sorted list of POSIX paths relative to it."""
    out = []
    for root, dirs, files in os.walk(folder):
        rel = Path(root).relative_to(folder)
        out += [(rel / name).as_posix() for name in files]
        out += [(rel / name).as_posix() for name in dirs if (Path(root) / name).is_symlink()]
    return sorted(out)


def write_manifest(folder: Path) -> None:
    """Record the files now in ``folder`` as ours (called on the complete temporary folder)."""
    files = [f for f in files_under(folder) if f != OUTPUT_MANIFEST]
    (folder / OUTPUT_MANIFEST).write_text(json.dumps({"written_by": "deeph-lightning", "files": files}, indent=1) + "\n")


def check_ours(folder: Path) -> None:
    """Raise ``OutputError`` unless ``folder`` holds only files deeph-lightning wrote (its manifest says so)."""
    folder = Path(folder)
    if folder.is_symlink() or not folder.is_dir():
        raise OutputError(f"{folder}: not a folder written by deeph-lightning; refusing to replace it")
    manifest = folder / OUTPUT_MANIFEST
    try:
        listed = set(json.loads(manifest.read_text())["files"])
    except FileNotFoundError:
        raise OutputError(f"{folder}: was not written by deeph-lightning (no {OUTPUT_MANIFEST}); refusing to delete it "
                          "with --overwrite: remove it yourself or choose another --out") from None
    except (ValueError, KeyError, TypeError):
        raise OutputError(f"{manifest}: unreadable output manifest; refusing to delete {folder}") from None
    foreign = [f for f in files_under(folder) if f != OUTPUT_MANIFEST and f not in listed]
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise OutputError(f"{folder}: holds files deeph-lightning did not write ({shown}); refusing to delete it "
                          "with --overwrite: move them away or choose another --out")


def check_writable(out: str | os.PathLike) -> None:
    """Raise ``OutputError`` now, before any work, if ``out`` cannot be created (probing its nearest existing parent)."""
    out = Path(out)
    parent = out.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise OutputError(f"{out}: cannot be created, {parent} is not a directory")
    try:
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as err:
        raise OutputError(f"{out}: cannot write in {parent} ({err.strerror or err})") from None


def check_output_path(out: str | os.PathLike, inputs: Iterable[str | os.PathLike], *, overwrite: bool) -> None:
    """Refuse an ``out`` that is or contains an input, that exists (unless ``overwrite`` and ours), or is unwritable."""
    out = Path(out)
    resolved = out.resolve()
    for src in inputs:
        if src is None:
            continue
        src_resolved = Path(src).resolve()
        if resolved == src_resolved or resolved in src_resolved.parents:
            what = "is" if resolved == src_resolved else "contains"
            raise OutputError(f"{out}: the output folder {what} the input {src}; choose another --out")
    if out.exists() or out.is_symlink():
        if not overwrite:
            raise FileExistsError(f"{out} already exists (pass --overwrite to replace it)")
        check_ours(out)
    check_writable(out)
