"""Rebuild the quickstart archive with the recorded commands: ``python -m data_prep.embedded.build``.

``--from-dir DIR`` packs an existing output of the recorded ``dft`` command instead of recomputing it.
"""

from __future__ import annotations

import argparse
import os
import sys
import tarfile
import tempfile
from pathlib import Path

from . import ARCHIVE, TOP, commands


def _fill(argv: list[str], **values) -> list[str]:
    return [a.format(**values) for a in argv]


def pack(dft_out: Path, archive: Path = ARCHIVE) -> Path:
    from ..deeph_format import read_deeph
    from ..dft.batch import is_complete

    folders = sorted(p for p in dft_out.iterdir() if p.is_dir() and not p.name.startswith(".") and is_complete(p))
    if not folders:
        raise ValueError(f"{dft_out}: no finished DeepH folders to pack")
    for f in folders:
        read_deeph(f)  # refuse to ship anything unreadable
    fd, tmp = tempfile.mkstemp(prefix=".quickstart.", suffix=".tar.xz", dir=archive.parent)
    os.close(fd)
    with tarfile.open(tmp, "w:xz", preset=9) as tar:
        for f in folders:
            for file in sorted(f.iterdir()):
                info = tar.gettarinfo(file, arcname=f"{TOP}/{f.name}/{file.name}")
                info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
                with open(file, "rb") as fh:
                    tar.addfile(info, fh)
    os.chmod(tmp, 0o644)  # mkstemp creates 0600
    os.replace(tmp, archive)
    print(f"packed {len(folders)} structures into {archive} ({archive.stat().st_size / 1e6:.2f} MB)")
    return archive


def summary_table(dft_out: Path) -> str:
    """Markdown table of the finished structures (for README.md)."""
    import json

    from ..dft.batch import is_complete

    rows = ["| id | atoms | SCF k-mesh | dense k-mesh | R vectors | SCF s | H(R) s |", "|---|---|---|---|---|---|---|"]
    for f in sorted(p for p in dft_out.iterdir() if p.is_dir() and is_complete(p)):
        info = json.loads((f / "info.json").read_text())
        n_blocks = len((f / "R_list.dat").read_text().splitlines())
        t = info["timings_s"]
        rows.append(f"| {f.name} | {info['nsites']} | {'x'.join(map(str, info['dft']['kmesh']))} | "
                    f"{'x'.join(map(str, info['dft']['dense_kmesh']))} | {n_blocks} | {t['scf']:.0f} | "
                    f"{t['dense_fock']:.0f} |")
    return "\n".join(rows)


def main(argv=None) -> int:
    from ..cli import main as deeph_prep

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--work", default=None, help="working folder (default: a temporary one)")
    p.add_argument("--from-dir", default=None, help="pack this finished dft output instead of recomputing")
    args = p.parse_args(argv)
    if args.from_dir:
        pack(Path(args.from_dir))
        print(summary_table(Path(args.from_dir)))
        return 0
    work = Path(args.work or tempfile.mkdtemp(prefix="deeph-quickstart-"))
    cmds = commands()
    structures, out = work / "structures", work / "dft"
    if deeph_prep(_fill(cmds["generate"], structures=structures, out=out)) != 0:
        return 1
    rc = deeph_prep(_fill(cmds["dft"], structures=structures, out=out))
    if rc != 0:
        print(f"some structures failed (see {out}/failures.jsonl); packing the finished ones", file=sys.stderr)
    pack(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
