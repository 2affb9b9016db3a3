"""Make and ship the universal-mini DFT data in session-sized steps: ``python -m data_prep.embedded.build_universal``.

The DFT takes days on a laptop, far longer than one working session, and only what is committed survives a
session. So the work is split in two commands that a session repeats:

* ``todo``: writes a ``manifest.jsonl`` of the catalogue structures not yet shipped and not failed twice for
  ``deeph-prep dft`` to compute, in coverage order: the least covered element takes its cheapest remaining
  structure (cost estimated from the basis size, halved for each element pair it bonds that no structure before
  it does), then the next, so each session adds every element and new bonds;
* ``ship``: packs finished structures that are not yet shipped into new chunks of ``CHUNK_SIZE`` (``--flush``
  also packs a last, smaller chunk: use it before a session ends) and records failures in ``dataset.json``;
* ``supplement``: adds structures from a second draw of the catalogue for elements that would end with fewer
  than 12 structures (plus a margin for failures; open-shell structures count by their chance of finishing),
  cheapest first, then ordered alloys and G2 molecules so that fewer element pairs are bonded in one chemical
  system only;
* ``retry MATCH --reason R``: after a new fallback, structures whose failures all contain MATCH are tried again,
  in coverage order (their old errors are kept under ``superseded_failures``).

Chunks never change after they are shipped. A structure that failed once is retried by the next run (the batch
run's documented fallbacks apply); after two failures it is recorded, with its errors, and not tried again.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tarfile
import tempfile
import time
from collections import Counter
from pathlib import Path

from .datasets import CHUNKED, current_structures, given_up, sha256

NAME = "universal-mini"
OUT = CHUNKED[NAME]
CHUNK_SIZE = 10
GENERATE = ["generate", "--mode", "materials", "--n", "440", "--seed", "0", "--out", "{structures}"]
# then, in each session, before todo (python -m data_prep.embedded.build_universal ...)
SUPPLEMENT = ["supplement", "--structures", "{structures}"]
DFT = ["dft", "{structures}", "--out", "{out}", "--alias-radius", "13", "--workers", "2", "--threads", "1",
       "--timeout", "2400"]  # compute seconds; a timed-out SCF resumes from its checkpoint


def _manifest(structures: Path) -> list[dict]:
    return [json.loads(line) for line in (structures / "manifest.jsonl").read_text().splitlines() if line.strip()]


def _failures(dft: Path, record: dict | None = None) -> dict[str, list[str]]:
    """Failures in the run folder ``dft``, without those ``retry`` superseded in ``record``."""
    superseded = {sid: set(s["errors"]) for sid, s in (record or {}).get("superseded_failures", {}).items()}
    out: dict[str, list[str]] = {}
    for path in sorted(dft.glob("failures*.jsonl")):
        for line in path.read_text().splitlines():
            if line.strip():
                rec = json.loads(line)  # one line per attempt; its time tells two equal errors apart
                error = f"{rec.get('time', '?')}: {rec['error']}"
                if error not in superseded.get(rec["id"], ()):
                    out.setdefault(rec["id"], []).append(error)
    return out


def estimated_cost(entry: dict, atoms) -> float:
    """Relative DFT cost of a catalogue entry (its structure ``atoms``): basis functions squared, doubled for
    cells with vacuum."""
    from ..dft.structure import element_basis
    from ..dft.settings import DFTSettings

    basis = DFTSettings().basis
    nbf = sum(sum(2 * shell[0] + 1 for shell in element_basis(basis, s)) for s in atoms.get_chemical_symbols())
    return nbf ** 2 * (2.0 if entry.get("dims", 3) < 3 else 1.0)


def coverage_order(entries: list[dict], cost: dict[str, float], have: Counter,
                   bonds: dict[str, set] | None = None, have_bonds: set | None = None) -> list[dict]:
    """Round robin over the elements, least covered first (``have``: shipped structures per element): each
    takes its cheapest remaining structure in turn, so every element gains data from the first hours on.
    With ``bonds`` (id -> its nearest-neighbour element pairs) "cheapest" is per new pair: cost / (1 + pairs
    not yet bonded, ``have_bonds`` and the picks before), so a structure that bonds a new pair may cost twice
    as much: held-out errors are largest on pairs no training structure bonds (docs/evaluation.md)."""
    bonds = bonds or {}
    bonded = set(have_bonds or ())
    left = sorted(entries, key=lambda m: (cost[m["id"]], m["index"]))
    have = Counter(have)
    out: list[dict] = []
    while left:
        element = min({e for m in left for e in m["elements"]}, key=lambda e: (have[e], e))
        pick = min((m for m in left if element in m["elements"]),
                   key=lambda m: (cost[m["id"]] / (1 + len(bonds.get(m["id"], set()) - bonded)), m["index"]))
        left.remove(pick)
        out.append(pick)
        have.update(pick["elements"])
        bonded |= bonds.get(pick["id"], set())
    return out


COMPLICATED_SHARE = 10  # one structure in this many handed out is a complicated case (while any are left)


def with_complicated_share(order: list[dict], every: int = COMPLICATED_SHARE) -> list[dict]:
    """``order`` with its complicated cases (defects, slabs, bilayers, strained cells: the issue's ~10 %) moved
    up to every ``every``-th place, in their own order: they are the dearest, so coverage order alone would leave
    them to the last sessions and the complicated test group empty until then."""
    regular = [m for m in order if m.get("group") != "complicated"]
    complicated = [m for m in order if m.get("group") == "complicated"]
    out: list[dict] = []
    while regular or complicated:
        take_complicated = complicated and (len(out) % every == every - 1 or not regular)
        out.append((complicated if take_complicated else regular).pop(0))
    return out


def todo(structures: Path, folder: Path, out: Path = OUT, dft: Path | None = None) -> int:
    """Write ``folder/manifest.jsonl``: unshipped structures not failed twice, in coverage order (costs divided by
    the chance of finishing, ``finish_chances``) with a share of
    complicated cases (``with_complicated_share``), SCFs with a checkpoint in ``dft`` first, the retries of
    once-failed ones last. Returns their count.
    ``dft``: the run's output folder, whose failures not yet shipped count too (a restarted run does not redo
    what failed in it an hour ago)."""
    record = _read_record(out)
    failures = {sid: list(errors) for sid, errors in record.get("failures", {}).items()}
    for sid, errors in (_failures(dft, record) if dft is not None else {}).items():
        known = failures.setdefault(sid, [])
        known.extend(e for e in errors if e not in known)
    shipped = set(current_structures(record))
    twice = {sid for sid, errors in failures.items() if len(errors) >= 2}
    done_with = shipped | twice | set(record.get("unshippable", {}))
    manifest = _manifest(structures)
    entries = [m for m in manifest if m["id"] not in done_with]
    from ase.io import read

    from ..bonds import structure_bonds

    atoms = {m["id"]: read(structures / m["file"]) for m in entries}  # each catalogue file read once
    # cost per finished structure: an open-shell Heusler that fails 4 times in 5 costs 5 tries
    chances = finish_chances(manifest, {sid: record["structures"][sid] for sid in shipped}, record)
    entries = with_complicated_share(coverage_order(
        entries, {m["id"]: estimated_cost(m, atoms[m["id"]]) / finish_chance(m, chances) for m in entries},
        Counter(e for sid in shipped for e in record["structures"][sid]["elements"]),
        {sid: set(structure_bonds(a.numbers, a.positions, a.cell[:], a.pbc)) for sid, a in atoms.items()},
        {p for sid in shipped for p in record["structures"][sid].get("bonds", {})}))
    # SCFs interrupted by the last stop first (their checkpoints resume them), retries last: they fail again
    # most often (stable sort)
    from ..dft.batch import scf_checkpoint

    resumable = {m["id"] for m in entries if dft is not None and scf_checkpoint(dft, m["id"]).is_file()}
    entries.sort(key=lambda m: 2 if m["id"] in failures else 0 if m["id"] in resumable else 1)
    folder.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({**m, "file": os.path.relpath(structures / m["file"], folder)}) for m in entries]
    tmp = folder / "manifest.jsonl.tmp"
    tmp.write_text("".join(line + "\n" for line in lines))
    os.replace(tmp, folder / "manifest.jsonl")
    return len(entries)


def _catalogue_state(structures: Path, out: Path) -> tuple[list[dict], dict[str, dict], list[dict]]:
    """(catalogue manifest, shipped structures' records by id, the structures that count: shipped, or still to
    compute and neither failed twice nor unshippable). Shipped ones count even when the catalogue folder was
    regenerated without an earlier supplement."""
    record = _read_record(out)
    manifest = _manifest(structures)
    dropped = ({sid for sid, errors in record.get("failures", {}).items() if len(errors) >= 2}
               | set(record.get("unshippable", {})))
    shipped = {sid: record["structures"][sid] for sid in current_structures(record)}
    live = ([m for m in manifest if m["id"] not in shipped and m["id"] not in dropped]
            + [{**m, "id": sid} for sid, m in shipped.items()])
    return manifest, shipped, live


MIN_PER_ELEMENT = 12  # issue 12: every element in at least this many structures
COVERAGE_MARGIN = 3  # catalogue structures beyond that per element, for failures
SUPPLEMENT_SEED, SUPPLEMENT_DRAW = 1, 600


def open_3d_shell(elements) -> bool:
    """Whether a structure of ``elements`` (symbols) has an element whose SCF starts damped (Sc-Ni)."""
    from ase.data import atomic_numbers

    from ..dft.runner import DAMPED_FIRST_Z

    return any(atomic_numbers[e] in DAMPED_FIRST_Z for e in elements)


def finish_chances(manifest: list[dict], shipped: dict[str, dict], record: dict) -> dict[str, float]:
    """Prototype -> the chance that a structure with an open-3d-shell element (Sc-Ni) of that prototype finishes,
    from the record: (shipped + 1) / (shipped + failed + 1), failed counting structures whose failures are not
    superseded. Restricted SCFs of open-shell intermetallics fail most (Heusler, NiAs; docs/data.md); with no
    record a prototype counts as finishing."""
    prototype = {m["id"]: m["prototype"] for m in manifest if open_3d_shell(m["elements"])}
    ok = Counter(m["prototype"] for m in shipped.values() if open_3d_shell(m["elements"]))
    failed = Counter(prototype[sid] for sid in record.get("failures", {}) if sid in prototype and sid not in shipped)
    return {p: (ok[p] + 1) / (ok[p] + failed[p] + 1) for p in set(ok) | set(failed)}


def finish_chance(m: dict, chances: dict[str, float]) -> float:
    return chances.get(m["prototype"], 1.0) if open_3d_shell(m["elements"]) else 1.0


def supplement(structures: Path, out: Path = OUT) -> list[str]:
    """Add catalogue structures for elements that would end short of ``MIN_PER_ELEMENT``.

    Counts each element's structures shipped or still to compute (not failed twice, not unshippable), the ones
    still to compute weighted by their chance of finishing (``finish_chances``). Where that is under
    ``MIN_PER_ELEMENT + COVERAGE_MARGIN``, it takes the missing number from a second draw of the catalogue
    (``SUPPLEMENT_DRAW`` structures, seed ``SUPPLEMENT_SEED``, ids ``..._s1_...``). It picks the cheapest ones per
    chance of finishing (``estimated_cost``) containing the element whose formula and prototype the catalogue
    lacks, and appends them to ``structures`` (extxyz and manifest lines). Deterministic, and running it again
    adds nothing until the record changes. Returns the ids added."""
    from ..materials import generate_materials

    manifest, shipped, live = _catalogue_state(structures, out)
    chances = finish_chances(manifest, shipped, _read_record(out))
    have: Counter = Counter()
    for m in live:
        for e in m["elements"]:
            have[e] += 1.0 if m["id"] in shipped else finish_chance(m, chances)
    target = MIN_PER_ELEMENT + COVERAGE_MARGIN
    short = {e: target - n for e, n in have.items() if n < target - 1e-9}
    if not short:
        return []
    known = ({(m["formula"], m["prototype"]) for m in manifest + list(shipped.values())}
             | {m["id"] for m in manifest} | set(shipped))
    drawn = generate_materials(SUPPLEMENT_DRAW, SUPPLEMENT_SEED)
    fresh = [(sid, atoms, meta) for sid, atoms, meta in drawn
             if sid not in known and (meta["formula"], meta["prototype"]) not in known]
    chance = {sid: finish_chance(meta, chances) for sid, _, meta in fresh}
    cost = {sid: estimated_cost(meta, atoms) / chance[sid] for sid, atoms, meta in fresh}
    picked: dict[str, tuple] = {}
    for element in sorted(short):
        with_it = sorted((x for x in fresh if element in x[2]["elements"] and x[0] not in picked),
                         key=lambda x: (cost[x[0]], x[0]))
        seen_formulas: set = set()
        for x in with_it:
            if short[element] <= 1e-9:
                break
            if (x[2]["formula"], x[2]["prototype"]) in seen_formulas:
                continue
            seen_formulas.add((x[2]["formula"], x[2]["prototype"]))
            picked[x[0]] = x
            for e in x[2]["elements"]:
                if e in short:
                    short[e] -= chance[x[0]]
    if picked:
        _append_to_catalogue(structures, list(picked.values()))
    return list(picked)


ALLOY_SEED, MOLECULE_SEED = 2, 3  # ids ..._alloy_s2_..., ..._molecule-<name>_s3_...
MAX_BOND_STRUCTURES = 80  # in all runs together


def bond_supplement(structures: Path, out: Path = OUT, max_total: int = MAX_BOND_STRUCTURES) -> list[str]:
    """Add ordered alloys (``data_prep.materials.alloys``) and closed-shell G2 molecules
    (``candidates.bond_molecule_candidates``) so that fewer element pairs are bonded in one chemical system only;
    the composition split then holds out a system without holding out its bonds.

    Counts the catalogue's (and the shipped) structures that are not failed twice or unshippable; greedily takes
    the structure that bonds the most pairs still bonded in one system only (cheapest first among equals), until
    ``max_total`` such structures are in the catalogue, and appends it to ``structures``. Structures with an
    open-3d-shell element (the SCF's slowest and most failing cells) are not added. Deterministic; running it
    again adds nothing."""
    from ase.io import read

    from ..bonds import structure_bonds
    from ..materials import UNIVERSAL_MINI_ELEMENTS
    from ..materials.alloys import alloy_pairs, alloy_structures
    from ..materials.candidates import bond_molecule_candidates
    from ..materials.catalogue import molecule_structures

    manifest, shipped, live = _catalogue_state(structures, out)
    systems: dict[str, set] = {}
    for m in live:
        if m["id"] in shipped:
            continue
        a = read(structures / m["file"])
        for pair in structure_bonds(a.numbers, a.positions, a.cell[:], a.pbc):
            systems.setdefault(pair, set()).add(frozenset(m["elements"]))
    for m in shipped.values():
        for pair in m.get("bonds", {}):
            systems.setdefault(pair, set()).add(frozenset(m["elements"]))
    known = {m["id"] for m in manifest} | set(shipped)
    added_before = sum(1 for sid in known if re.search(rf"_s({ALLOY_SEED}|{MOLECULE_SEED})_\d+$", sid))
    pool = [x for x in (alloy_structures(alloy_pairs(UNIVERSAL_MINI_ELEMENTS), ALLOY_SEED)
                        + molecule_structures(bond_molecule_candidates(UNIVERSAL_MINI_ELEMENTS), MOLECULE_SEED))
            if x[0] not in known and not open_3d_shell(x[2]["elements"])]
    bonds = {sid: set(structure_bonds(a.numbers, a.positions, a.cell[:], a.pbc)) for sid, a, _ in pool}
    cost = {sid: estimated_cost(meta, a) for sid, a, meta in pool}
    picked = []
    while added_before + len(picked) < max_total:
        def gain(x):
            system = frozenset(x[2]["elements"])
            return sum(1 for p in bonds[x[0]] if len(systems.get(p, ())) == 1 and system not in systems[p])
        best = max(pool, key=lambda x: (gain(x), -cost[x[0]], x[0]), default=None)
        if best is None or gain(best) == 0:
            break
        pool.remove(best)
        picked.append(best)
        for p in bonds[best[0]]:
            systems.setdefault(p, set()).add(frozenset(best[2]["elements"]))
    if picked:
        _append_to_catalogue(structures, picked)
    return [sid for sid, _, _ in picked]


def _append_to_catalogue(structures: Path, entries: list[tuple]) -> None:
    """Write (id, Atoms, metadata) entries into the catalogue folder and append them to its manifest."""
    from ..catalogue import write_catalogue

    with tempfile.TemporaryDirectory(prefix=".supplement-", dir=structures) as tmp:
        write_catalogue(entries, tmp)
        for sid, _, _ in entries:
            os.replace(Path(tmp) / f"{sid}.extxyz", structures / f"{sid}.extxyz")
        lines = (Path(tmp) / "manifest.jsonl").read_text()
    path = structures / "manifest.jsonl"
    staged = path.with_name("manifest.jsonl.tmp")
    staged.write_text(path.read_text() + lines)
    os.replace(staged, path)


def _read_record(out: Path) -> dict:
    path = out / "dataset.json"
    return json.loads(path.read_text()) if path.is_file() else {}


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


def ship(structures: Path, dft: Path, chunk_size: int = CHUNK_SIZE, out: Path = OUT, flush: bool = False,
         log=print) -> list[str]:
    """Pack finished, unshipped structures into new chunks in ``out``; record failures. Returns the new chunk files."""
    from ..dft.batch import is_complete
    from .shipping import compact

    manifest = {m["id"]: m for m in _manifest(structures)}
    record = _read_record(out)
    record.setdefault("name", NAME)
    record["recipe"] = json.loads((dft / "settings.json").read_text())
    record["commands"] = {"generate": GENERATE, "supplement": SUPPLEMENT, "dft": DFT, "chunk_size": chunk_size}
    record["planned"] = len(manifest)
    record.setdefault("chunks", [])
    record.setdefault("structures", {})
    failures = record.setdefault("failures", {})
    for sid, errors in _failures(dft, record).items():
        known = failures.setdefault(sid, [])
        known.extend(e for e in errors if e not in known)  # a failure file is read again by every later ship
    held = current_structures(record)
    finished = [sid for sid in manifest if sid not in held and is_complete(dft / sid)]
    unshippable = record.setdefault("unshippable", {})
    for sid in finished:
        failures.pop(sid, None)  # computed on a retry
    new = []
    with tempfile.TemporaryDirectory(prefix=".ship-", dir=out) as tmp:
        staged: dict[str, dict] = {}
        for sid in finished:
            m = manifest[sid]
            try:
                measured = compact(dft / sid, Path(tmp) / sid, {k: v for k, v in m.items() if k != "file"})
            except ValueError as err:  # computed, but its blocks fail a shipping check: recomputing won't help
                unshippable[sid] = str(err)
                log(f"{sid}: not shipped: {err}")
                continue
            unshippable.pop(sid, None)
            staged[sid] = {**{k: m[k] for k in ("family", "prototype", "group", "kind", "formula", "n_atoms",
                                                "elements", "dims", "index")}, **dft_facts(dft / sid), **measured}
        ready = list(staged)
        groups = [ready[i:i + chunk_size] for i in range(0, len(ready), chunk_size)]
        if groups and len(groups[-1]) < chunk_size and not flush:
            log(f"{len(groups.pop())} finished structure(s) wait for a full chunk (ship with --flush to pack them now)")
        for ids in groups:
            name = f"chunk-{len(record['chunks']):03d}.tar.xz"
            _tar([Path(tmp) / sid for sid in ids], out / name)
            record["chunks"].append({"file": name, "sha256": sha256(out / name), "ids": ids})
            for sid in ids:
                record["structures"][sid] = staged[sid]
                record.get("retired", {}).pop(sid, None)  # recomputed: this chunk's copy is the current one
            new.append(name)
            _write_record(out / "dataset.json", record)
            log(f"{name}: shipped {len(ids)} structures ({(out / name).stat().st_size / 1e6:.2f} MB)")
    _write_record(out / "dataset.json", record)
    n_given_up = len(given_up(record))
    log(f"shipped {len(current_structures(record))} of {len(manifest)}; failed twice (not retried): {n_given_up}; "
        f"failed once (retried next run): {len(failures) - n_given_up}; computed but not shippable: {len(unshippable)}")
    return new


def retire(ids: list[str], reason: str, out: Path = OUT) -> int:
    """Retire shipped structures (an outdated recipe): the loader drops them, ``todo`` hands them out again and
    ``ship`` packs the recomputed ones into new chunks. Returns how many are retired now."""
    record_path = out / "dataset.json"
    record = _read_record(out)
    held = current_structures(record)
    unknown = [sid for sid in ids if sid not in held and sid not in record.get("retired", {})]
    if unknown:
        raise KeyError(f"{record_path}: not shipped: {', '.join(unknown)}")
    retired = record.setdefault("retired", {})
    for sid in ids:
        retired.setdefault(sid, f"{time.strftime('%Y-%m-%d')}: {reason}")
        record.get("fidelity", {}).pop(sid, None)  # measured on the retired copy
    _write_record(record_path, record)
    return len(retired)


def retry(match: str, reason: str, out: Path = OUT) -> int:
    """Hand structures whose recorded failures all contain ``match`` to the next runs again as if never tried
    (a new fallback for that failure): their errors move to ``superseded_failures`` with ``reason``, and failure
    files that still list them are read without them. Returns how many structures are retried."""
    record = _read_record(out)
    failures = record.get("failures", {})
    ids = [sid for sid, errors in failures.items() if errors and all(match in e for e in errors)]
    superseded = record.setdefault("superseded_failures", {})
    for sid in ids:
        earlier = superseded.get(sid, {"errors": []})["errors"]
        superseded[sid] = {"reason": f"{time.strftime('%Y-%m-%d')}: {reason}", "errors": earlier + failures.pop(sid)}
    _write_record(out / "dataset.json", record)
    return len(ids)


def dft_facts(folder: Path) -> dict:
    """What the card reports of one finished DFT folder: the program that computed it, cost, SCF cycles,
    electrons, basis size and its nearest-neighbour bonds per element pair ({pair: [bonds, shortest Å]},
    ``data_prep.bonds``)."""
    from ..deeph_format import read_deeph

    info = json.loads((folder / "info.json").read_text())
    st = read_deeph(folder, hamiltonian=False, overlap=False)
    return {"code": (info.get("dft") or {}).get("code"), "timings_s": info["timings_s"], "scf_cycles": info.get("scf_cycles"),
            "n_electrons": info["n_electrons"], "n_orbitals": int(st.n_orbitals().sum()), "bonds": shipped_bonds(st)}


def shipped_bonds(st) -> dict[str, list]:
    from ..bonds import structure_bonds

    return {k: [n, round(lo, 4)] for k, (n, lo, _) in structure_bonds(st.numbers, st.positions, st.cell, st.pbc).items()}


def record_fidelity(check_json: Path, out: Path = OUT) -> int:
    """Merge ``deeph-prep check --json`` results (keyed by folder) into ``dataset.json["fidelity"]`` by id."""
    record_path = out / "dataset.json"
    record = _read_record(out)
    fidelity = record.setdefault("fidelity", {})
    held = current_structures(record)
    for folder, r in json.loads(check_json.read_text()).items():
        if Path(folder).name in held:  # not a retired copy
            keep = ("max_mev", "mean_mev", "n_values", "window_ev", "empty_bands")
            fidelity[Path(folder).name] = {k: r[k] for k in keep if k in r}
    _write_record(record_path, record)
    return len(fidelity)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("todo", help="write the manifest of structures still to compute, in coverage order")
    t.add_argument("--structures", required=True, help="the catalogue folder (manifest.jsonl)")
    t.add_argument("--out", required=True, help="folder for the todo manifest.jsonl (give it to deeph-prep dft)")
    t.add_argument("--dft", help="the deeph-prep dft output folder: its unshipped failures count too")
    u = sub.add_parser("supplement", help="add catalogue structures for elements that would end short of "
                       f"{MIN_PER_ELEMENT} structures (a second, seeded draw), then ordered alloys and molecules for "
                       "element pairs bonded in one chemical system only; idempotent")
    u.add_argument("--structures", required=True, help="the catalogue folder (manifest.jsonl), appended to")
    r = sub.add_parser("retire", help="retire shipped structures computed with an outdated recipe (recomputed later)")
    r.add_argument("ids", nargs="+")
    r.add_argument("--reason", required=True)
    y = sub.add_parser("retry", help="try structures again whose failures all contain MATCH (after a new fallback)")
    y.add_argument("match", help="text every recorded error of the structure contains, e.g. SCFNotConvergedError")
    y.add_argument("--reason", required=True)
    s = sub.add_parser("ship", help="pack finished structures into chunks, record failures and fidelity")
    s.add_argument("--structures", required=True, help="the catalogue folder (manifest.jsonl)")
    s.add_argument("--dft", required=True, help="the deeph-prep dft output folder")
    s.add_argument("--chunk-size", type=int, default=CHUNK_SIZE)
    s.add_argument("--flush", action="store_true", help="also pack a last chunk smaller than --chunk-size")
    s.add_argument("--check-json", nargs="+", default=[],
                   help="`deeph-prep check --json` result files to record as the DFT fidelity sample")
    args = p.parse_args(argv)
    if args.command == "todo":
        n = todo(Path(args.structures), Path(args.out), OUT, Path(args.dft) if args.dft else None)
        print(f"{n} structures to compute -> {Path(args.out) / 'manifest.jsonl'}")
        return 0
    if args.command == "supplement":
        steps = (("for elements short of structures", supplement),
                 ("ordered alloys and molecules for bonds", bond_supplement))
        for what, step in steps:
            added = step(Path(args.structures), OUT)
            print(f"{len(added)} structures {what} added to {Path(args.structures) / 'manifest.jsonl'}"
                  + (f": {', '.join(added)}" if added else ""))
        return 0
    if args.command == "retry":
        print(f"{retry(args.match, args.reason, OUT)} structures handed out again")
        return 0
    if args.command == "retire":
        print(f"{retire(args.ids, args.reason, OUT)} structures retired (recomputed by the next runs)")
        return 0
    OUT.mkdir(parents=True, exist_ok=True)
    new = ship(Path(args.structures), Path(args.dft), args.chunk_size, OUT, flush=args.flush)
    for path in args.check_json:
        n = record_fidelity(Path(path), OUT)
    if args.check_json:
        print(f"fidelity recorded for {n} structures")
    counts = Counter(len(c["ids"]) for c in _read_record(OUT).get("chunks", []))
    print(f"{len(new)} new chunk(s); shipped chunks by size: {dict(counts)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
