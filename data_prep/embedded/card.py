"""The universal-mini dataset card, from ``dataset.json``: ``python -m data_prep.embedded.card``.

Prints markdown (elements and counts, prototypes and groups, sizes, DFT cost, shipping fidelity, failures)
for docs/data.md and universal-mini/README.md, so the card always matches what is shipped.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from ..kspace import OVERLAP_CHECK_KSPACING
from .datasets import CHUNKED, current_structures, dataset_record, given_up


FIDELITY_TARGET_MEV = 5.0  # band error of the stored blocks the dataset is built for (near the band edges)


def _stats(values, digits: int = 0) -> str:
    v = np.asarray(values, dtype=float)
    if not len(v):
        return "-"
    return f"median {np.median(v):.{digits}f}, p90 {np.percentile(v, 90):.{digits}f}, max {v.max():.{digits}f}"


def card(name: str = "universal-mini", folder: Path | None = None) -> str:
    """The card of a shipped dataset, or of the chunks folder ``folder`` (its ``dataset.json``)."""
    folder = CHUNKED[name] if folder is None else folder
    record = dataset_record(name) if folder == CHUNKED.get(name) else json.loads((folder / "dataset.json").read_text())
    shipped = sorted(current_structures(record))
    retired = record.get("retired", {})
    failures = given_up(record)
    unshippable = record.get("unshippable", {})
    retrying = len(record.get("failures", {})) - len(failures)
    meta = [record["structures"][s] for s in shipped]
    elements = Counter(e for m in meta for e in m["elements"])
    protos = Counter(m["prototype"] if m["group"] == "regular" else f"{m['kind']} ({m['prototype']})" for m in meta)
    groups = Counter(m["group"] for m in meta)
    total_s = [sum(m["timings_s"].values()) for m in meta]
    size = sum((folder / c["file"]).stat().st_size for c in record["chunks"])
    lines = [
        "Structures are computed in coverage order (each element's cheapest structures first), so the costs "
        "below understate those still to come.",
        "",
        f"**{len(shipped)} structures shipped** of {record.get('planned')} planned, in {len(record['chunks'])} chunks "
        f"({size / 1e6:.1f} MB); {len(failures)} failed twice and {len(unshippable)} computed but not shippable (listed "
        f"below), {retrying} failed once (retried by the next run); "
        f"{groups['complicated']} complicated ({100 * groups['complicated'] / max(len(meta), 1):.0f} %).",
        "",
        f"Elements ({len(elements)}), structures containing each: "
        + ", ".join(f"{e} {n}" for e, n in sorted(elements.items(), key=lambda kv: (-kv[1], kv[0]))) + ".",
        "",
        *_bond_lines(meta),
        "Prototypes: " + ", ".join(f"{p} {n}" for p, n in sorted(protos.items(), key=lambda kv: (-kv[1], kv[0]))) + ".",
        "",
        f"Atoms per structure: {_stats([m['n_atoms'] for m in meta])}.",
        "",
        "DFT program (one recipe across its releases): " + ", ".join(
            f"{c} ({n} structures)" for c, n in sorted(Counter(m.get("code") or "not recorded" for m in meta).items())) + ".",
        "",
        f"DFT wall time per structure (s, 1 thread, 2 shared cores): {_stats(total_s)}; "
        f"SCF cycles {_stats([m['scf_cycles'] for m in meta if m.get('scf_cycles')])}.",
        "",
        "Shipping fidelity: H stored in float32 changes bands within 2 eV of the band edges (E_F ± 2 eV before "
        "2026-12-06) by at most "
        f"{max((m['float32_band_change_meV'] for m in meta), default=0):.4f} meV; recomputed S differs from the "
        f"DFT run's by at most {max((m['overlap_recompute_max_dev'] for m in meta), default=0):.1e}.",
    ]
    families = sorted({m["family"] for m in meta})
    lines += ["", "| family | structures | atoms | DFT wall time (s) |", "|---|---|---|---|"]
    for fam in families:
        rows = [(m, t) for m, t in zip(meta, total_s) if m["family"] == fam]
        lines.append(f"| {fam} | {len(rows)} | {_stats([m['n_atoms'] for m, _ in rows])} | "
                     f"{_stats([t for _, t in rows])} |")
    full = sorted(s for s, m in zip(shipped, meta) if "n_orbitals" in m and m["n_electrons"] >= 2 * m["n_orbitals"])
    if full:
        lines += ["", f"No empty band in the basis ({len(full)}: every band occupied, as for alkaline-earth metals "
                  "with semicore pseudopotentials in a single-ζ basis): their H is the recipe's, their bands at E_F "
                  "are not physical: " + ", ".join(full) + "."]
    indefinite = sorted(s for s, m in zip(shipped, meta) if m.get("overlap_min_eigenvalue", 1.0) <= 0)
    if indefinite:
        lines += ["", f"S(k) of the stored blocks indefinite ({len(indefinite)}; smallest eigenvalue on a "
                  f"{OVERLAP_CHECK_KSPACING:g} Å⁻¹ mesh "
                  "and the zone-boundary points): diffuse orbitals overlap beyond the storage radius, so these "
                  "structures train the model (their blocks are exact) but bands cannot be computed from their "
                  "stored H(R), S(R) "
                  "(`deeph-eval` skips them with that reason): " + ", ".join(
                      f"{s} {record['structures'][s]['overlap_min_eigenvalue']:.3f}" for s in indefinite) + "."]
    fidelity = record.get("fidelity", {})
    tested = {s: f for s, f in fidelity.items() if f.get("n_values", 1) > 0}
    if tested:
        worst = max(tested.items(), key=lambda kv: kv[1]["max_mev"])
        window = next(iter(tested.values())).get("window_ev")
        lines += ["", f"DFT fidelity (`deeph-prep check` on {len(tested)} structures: bands of the stored H(R), S(R) "
                  f"vs PySCF's own at random off-mesh k-points, within {window} eV of the band edges): max error per "
                  f"structure {_stats([f['max_mev'] for f in tested.values()], 2)} meV (worst: {worst[0]}); mean "
                  f"error {_stats([f['mean_mev'] for f in tested.values()], 2)} meV."]
        over = sorted((s for s, f in tested.items() if f["max_mev"] > FIDELITY_TARGET_MEV),
                      key=lambda s: -tested[s]["max_mev"])
        if over:
            lines += ["", f"Over the {FIDELITY_TARGET_MEV:g} meV target: "
                      + ", ".join(f"{s} {tested[s]['max_mev']:.0f} meV" for s in over) + "."]
    if retired:
        reasons = sorted(set(r.split(": ", 1)[-1] for r in retired.values()))
        lines += ["", f"Retired ({len(retired)}, not in the data until recomputed by the next runs): "
                  + "; ".join(reasons) + "."]
    if failures or unshippable:
        lines += ["", "| failed structure | errors |", "|---|---|"]
        lines += [f"| {sid} | {'; '.join(e[:120] for e in errors)} |" for sid, errors in sorted(failures.items())]
        lines += [f"| {sid} | not shippable: {why.split(': ', 1)[-1][:160]} |" for sid, why in sorted(unshippable.items())]
    return "\n".join(lines)


def _bond_lines(meta: list[dict]) -> list[str]:
    """The nearest-neighbour element pairs the structures bond (``dft_facts`` "bonds"), and per element how many
    different elements it is bonded to: a model learns a pair's hoppings from these bonds (docs/evaluation.md)."""
    pairs = Counter(p for m in meta for p in m.get("bonds", {}))
    if not pairs:
        return []
    partners: dict[str, set] = {}
    for pair in pairs:
        a, b = pair.split("-")
        partners.setdefault(a, set()).add(b)
        partners.setdefault(b, set()).add(a)
    return [f"Nearest-neighbour bonds: {len(pairs)} different element pairs (homonuclear ones included); elements "
            "each element is bonded to: " + ", ".join(
                f"{e} {len(p)}" for e, p in sorted(partners.items(), key=lambda kv: (-len(kv[1]), kv[0]))) + ".", ""]


START, END = "<!-- card:start -->", "<!-- card:end -->"


def write_into(doc: Path, name: str = "universal-mini") -> None:
    """Replace the text between the card markers of ``doc`` with the current card."""
    text = doc.read_text()
    if START not in text or END not in text:
        raise ValueError(f"{doc}: no {START} ... {END} markers to write the card between")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    doc.write_text(f"{head}{START}\n{card(name)}\n{END}{tail}")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--write":
        write_into(Path(sys.argv[2]), *sys.argv[3:])
    else:
        print(card(*sys.argv[1:]))
