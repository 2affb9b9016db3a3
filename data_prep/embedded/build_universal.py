"""Ship finished chunks of the universal-mini DFT run: ``python -m data_prep.embedded.build_universal``.

Chunk k holds the catalogue structures with index in [k·size, (k+1)·size) (size ``CHUNK_SIZE``). A chunk is shipped once every one
of its structures has finished or failed twice (the batch run retries a failure once, on its next run), so
chunks never change after they are committed; its failures are recorded in ``dataset.json`` with the error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tarfile
import tempfile
from collections import Counter
from pathlib import Path

from .datasets import CHUNKED, sha256

NAME = "universal-mini"
OUT = CHUNKED[NAME]
CHUNK_SIZE = 10
GENERATE = ["generate", "--mode", "materials", "--n", "440", "--seed", "0", "--out", "{structures}"]
DFT = ["dft", "{structures}", "--out", "{out}", "--alias-radius", "13", "--workers", "2", "--threads", "1",
       "--timeout", "14400"]


def _manifest(structures: Path) -> list[dict]:
    return [json.loads(line) for line in (structures / "manifest.jsonl").read_text().splitlines() if line.strip()]


def _failures(dft: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for path in sorted(dft.glob("failures*.jsonl")):
        for line in path.read_text().splitlines():
            if line.strip():
                rec = json.loads(line)
                out.setdefault(rec["id"], []).append(rec["error"])
    return out


def _tar(folders: list[Path], archive: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{archive.name}.", dir=archive.parent)
    os.close(fd)
    with tarfile.open(tmp, "w:xz", preset=9) as tar:
        for folder in folders:
            for file in sorted(folder.iterdir()):
                info = tar.gettarinfo(file, arcname=f"{folder.name}/{file.name}")
                info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
                with open(file, "rb") as fh:
                    tar.addfile(info, fh)
    os.chmod(tmp, 0o644)
    os.replace(tmp, archive)


def _write_record(path: Path, record: dict) -> None:
    """``dataset.json`` replaced atomically (a crash leaves the previous record)."""
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    os.replace(tmp, path)


def ship(structures: Path, dft: Path, chunk_size: int = CHUNK_SIZE, out: Path = OUT, log=print) -> list[str]:
    """Write every newly complete chunk into ``out`` and update ``dataset.json``; returns the new chunk files."""
    from ..dft.batch import is_complete
    from .shipping import compact

    manifest = _manifest(structures)
    failures = _failures(dft)
    record_path = out / "dataset.json"
    record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    record.setdefault("name", NAME)
    record["recipe"] = json.loads((dft / "settings.json").read_text())
    record["commands"] = {"generate": GENERATE, "dft": DFT, "chunk_size": chunk_size}
    record["planned"] = len(manifest)
    record.setdefault("chunks", [])
    record.setdefault("structures", {})
    done_chunks = {c["file"] for c in record["chunks"]}
    new = []
    for k in range((len(manifest) + chunk_size - 1) // chunk_size):
        name = f"chunk-{k:03d}.tar.xz"
        if name in done_chunks:
            continue
        members = manifest[k * chunk_size:(k + 1) * chunk_size]
        finished = [m for m in members if is_complete(dft / m["id"])]
        failed = [m for m in members if m not in finished and len(failures.get(m["id"], [])) >= 2]
        if len(finished) + len(failed) < len(members):
            log(f"{name}: {len(finished)} finished, {len(failed)} failed twice, "
                f"{len(members) - len(finished) - len(failed)} still to compute")
            continue
        with tempfile.TemporaryDirectory(prefix=".ship-", dir=out) as tmp:
            folders = []
            for m in finished:
                catalogue = {k: v for k, v in m.items() if k != "file"}
                measured = compact(dft / m["id"], Path(tmp) / m["id"], catalogue)
                info = json.loads((dft / m["id"] / "info.json").read_text())
                record["structures"][m["id"]] = {
                    **{k: m[k] for k in ("family", "prototype", "group", "kind", "formula", "n_atoms", "elements",
                                         "dims", "index")},
                    "timings_s": info["timings_s"], "scf_cycles": info.get("scf_cycles"), **measured}
                folders.append(Path(tmp) / m["id"])
            _tar(folders, out / name)
        record["chunks"].append({
            "file": name, "sha256": sha256(out / name), "ids": [m["id"] for m in finished],
            "failures": [{"id": m["id"], "errors": failures[m["id"]]} for m in failed]})
        record["chunks"].sort(key=lambda c: c["file"])
        new.append(name)
        _write_record(record_path, record)
        log(f"{name}: shipped {len(finished)} structures, {len(failed)} failures "
            f"({(out / name).stat().st_size / 1e6:.2f} MB)")
    return new


def record_fidelity(check_json: Path, out: Path = OUT) -> int:
    """Merge ``deeph-prep check --json`` results (keyed by folder) into ``dataset.json["fidelity"]`` by id."""
    record_path = out / "dataset.json"
    record = json.loads(record_path.read_text())
    fidelity = record.setdefault("fidelity", {})
    for folder, r in json.loads(check_json.read_text()).items():
        fidelity[Path(folder).name] = {k: r[k] for k in ("max_mev", "mean_mev") if k in r} | {"window_ev": r.get("window_ev")}
    _write_record(record_path, record)
    return len(fidelity)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--structures", required=True, help="the catalogue folder (manifest.jsonl)")
    p.add_argument("--dft", required=True, help="the deeph-prep dft output folder")
    p.add_argument("--chunk-size", type=int, default=CHUNK_SIZE)
    p.add_argument("--check-json", help="`deeph-prep check --json` results to record as the DFT fidelity sample")
    args = p.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    new = ship(Path(args.structures), Path(args.dft), args.chunk_size, OUT)
    if args.check_json:
        print(f"fidelity recorded for {record_fidelity(Path(args.check_json), OUT)} structures")
    counts = Counter(len(c["ids"]) for c in json.loads((OUT / "dataset.json").read_text())["chunks"])
    print(f"{len(new)} new chunk(s); shipped chunks by size: {dict(counts)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
