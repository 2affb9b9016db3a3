"""The universal-mini dataset card, from ``dataset.json``: ``python -m data_prep.embedded.card``.

Prints markdown (elements and counts, prototypes and groups, sizes, DFT cost, shipping fidelity, failures)
for docs/data.md and universal-mini/README.md, so the card always matches what is shipped.
"""

from __future__ import annotations

import sys
from collections import Counter

import numpy as np

from .datasets import CHUNKED, dataset_record


def _stats(values) -> str:
    v = np.asarray(values, dtype=float)
    if not len(v):
        return "-"
    return f"median {np.median(v):.0f}, p90 {np.percentile(v, 90):.0f}, max {v.max():.0f}"


def card(name: str = "universal-mini") -> str:
    record = dataset_record(name)
    shipped = [s for c in record["chunks"] for s in c["ids"]]
    failures = [f for c in record["chunks"] for f in c.get("failures", [])]
    meta = [record["structures"][s] for s in shipped]
    elements = Counter(e for m in meta for e in m["elements"])
    protos = Counter(m["prototype"] if m["group"] == "regular" else f"{m['kind']} ({m['prototype']})" for m in meta)
    groups = Counter(m["group"] for m in meta)
    total_s = [sum(m["timings_s"].values()) for m in meta]
    size = sum((CHUNKED[name] / c["file"]).stat().st_size for c in record["chunks"])
    lines = [
        f"**{len(shipped)} structures shipped** of {record.get('planned')} planned, in {len(record['chunks'])} chunks "
        f"({size / 1e6:.1f} MB); {len(failures)} failed twice (listed below); "
        f"{groups['complicated']} complicated ({100 * groups['complicated'] / max(len(meta), 1):.0f} %).",
        "",
        f"Elements ({len(elements)}), structures containing each: "
        + ", ".join(f"{e} {n}" for e, n in sorted(elements.items(), key=lambda kv: (-kv[1], kv[0]))) + ".",
        "",
        "Prototypes: " + ", ".join(f"{p} {n}" for p, n in sorted(protos.items(), key=lambda kv: (-kv[1], kv[0]))) + ".",
        "",
        f"Atoms per structure: {_stats([m['n_atoms'] for m in meta])}.",
        "",
        f"DFT wall time per structure (s, 1 thread, 2 shared cores): {_stats(total_s)}; "
        f"SCF cycles {_stats([m['scf_cycles'] for m in meta if m.get('scf_cycles')])}.",
        "",
        "Shipping fidelity: H stored in float32 changes bands within E_F ± 2 eV by at most "
        f"{max((m['float32_band_change_meV'] for m in meta), default=0):.4f} meV; recomputed S differs from the "
        f"DFT run's by at most {max((m['overlap_recompute_max_dev'] for m in meta), default=0):.1e}.",
    ]
    if failures:
        lines += ["", "| failed structure | errors |", "|---|---|"]
        lines += [f"| {f['id']} | {'; '.join(e[:120] for e in f['errors'])} |" for f in failures]
    return "\n".join(lines)


if __name__ == "__main__":
    print(card(*sys.argv[1:]))
