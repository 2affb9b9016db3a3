"""Block-error report of predicted vs reference Hamiltonians (meV), aggregated over a dataset.

Counted entries are the real orbitals of each block (no union-basis padding), compared on the blocks
present in the prediction (blocks missing from the reference are counted, not scored). Categories:
* overall: every entry of every block;
* per element: on-site blocks H_ii(0) of atoms of that element;
* per element, all blocks: every block with an atom of that element (its on-site blocks and its hoppings),
  the number to read for "how well does the model know this element";
* per element pair: every other block (hoppings, including an atom with its own periodic images),
  keyed "A-B" with A the lighter element;
* per structure: every entry of that structure, plus its band errors when computed;
* first shell (when positions and cell are given): the hoppings of each structure's nearest-neighbour bonds
  (within ``FIRST_SHELL`` of its shortest bond), as MAE and relative to the mean |H| of those entries. They are
  a few percent of all blocks within a 9 Å cutoff but hold the largest values, and with the on-site blocks they
  set the bands: an all-block MAE of ~10 meV can hide 20-40 % errors there (docs/evaluation.md).

Each category is also reported gauge-invariantly when the reference has overlaps (``gauge_invariant``): per
structure the least-squares rigid shift c·S of the error, c = <ΔH,S>/<S,S> over the compared blocks, is removed
before the MAE (H and H + c·S have the same physics), on-site and hopping separately. The raw MAEs are in the
model's gauge: a standardised model is compared with the reference standardised the same way.
"""

from __future__ import annotations

import csv
import io
import os
from collections import defaultdict
from pathlib import Path

import numpy as np

from data_prep.basis import element_symbol
from data_prep.bonds import pair_key
from data_prep.deeph_format import Blocks
from data_prep.gauge import gauge_mu
from data_prep.graph import FIRST_SHELL, block_bond_lengths, first_shell_mask


class _Acc:
    __slots__ = ("abs_sum", "count", "max_abs")

    def __init__(self):
        self.abs_sum, self.count, self.max_abs = 0.0, 0, 0.0

    def add(self, abs_err_meV: np.ndarray) -> None:
        self.abs_sum += float(abs_err_meV.sum())
        self.count += int(abs_err_meV.size)
        self.max_abs = max(self.max_abs, float(abs_err_meV.max(initial=0.0)))

    def add_acc(self, other: "_Acc") -> None:
        self.abs_sum += other.abs_sum
        self.count += other.count
        self.max_abs = max(self.max_abs, other.max_abs)

    def to_json(self) -> dict:
        return {"mae_meV": self.abs_sum / self.count if self.count else None, "n_values": self.count,
                "max_abs_meV": self.max_abs}


class BlockErrorReport:
    def __init__(self):
        self.overall = _Acc()
        self.kinds = {k: _Acc() for k in ("onsite", "hopping", "gauge_onsite", "gauge_hopping", "gauge",
                                          "first_shell", "gauge_first_shell")}
        self.first_shell_size = 0.0  # sum of |H_ref| over the first-shell entries, for the relative error
        self.first_shell_pairs: dict[str, list] = defaultdict(lambda: [_Acc(), 0.0])  # per pair: errors, sum |H_ref|
        self.training_bonds: dict | None = None  # the checkpoint's (data_prep.bonds.bond_table), when it has one
        self.per_element: dict[str, _Acc] = defaultdict(_Acc)
        self.per_pair: dict[str, _Acc] = defaultdict(_Acc)
        self.per_element_all: dict[str, _Acc] = defaultdict(_Acc)
        self.structures: list[dict] = []
        self.meta: dict = {}  # run description (checkpoint, data, split, ...) stored at the top of report.json

    def add_structure(self, structure_id: str, numbers, predicted: Blocks, reference: Blocks,
                      band_errors: dict | None = None, overlaps: Blocks | None = None,
                      positions: np.ndarray | None = None, cell: np.ndarray | None = None, **extra) -> dict:
        numbers = np.asarray(numbers, dtype=int)
        acc, missing = _Acc(), 0
        compared = {}
        shell = first_shell(predicted, positions, cell) if positions is not None and cell is not None else set()
        shell_acc, shell_size = _Acc(), 0.0
        for key, pred in predicted.items():
            ref = reference.get(key)
            if ref is None:
                missing += 1
                continue
            if ref.shape != pred.shape:
                raise ValueError(f"{structure_id}: block {key} has shape {pred.shape} predicted, {ref.shape} reference")
            diff = np.asarray(pred, dtype=np.float64) - np.asarray(ref, dtype=np.float64)
            compared[key] = diff
            err = np.abs(diff).ravel() * 1000.0
            rx, ry, rz, i, j = key
            zi, zj = int(numbers[i]), int(numbers[j])
            if _onsite(key):
                self.per_element[element_symbol(zi)].add(err)
            else:
                self.per_pair[pair_key(zi, zj)].add(err)
            for z in {zi, zj}:
                self.per_element_all[element_symbol(z)].add(err)
            self.kinds["onsite" if _onsite(key) else "hopping"].add(err)
            if key in shell:
                size = float(np.abs(ref).sum()) * 1000.0
                shell_acc.add(err)
                shell_size += size
                pair = self.first_shell_pairs[pair_key(zi, zj)]
                pair[0].add(err)
                pair[1] += size
            acc.add(err)
            self.overall.add(err)
        if acc.count == 0:
            raise ValueError(f"{structure_id}: no predicted block has a reference block to compare with")
        entry = {"id": structure_id, "status": "ok", "n_atoms": int(len(numbers)), "mae_meV": acc.abs_sum / acc.count,
                 "max_abs_meV": acc.max_abs, "n_values": acc.count, "n_blocks_without_reference": missing}
        if shell_acc.count:
            self.kinds["first_shell"].add_acc(shell_acc)
            self.first_shell_size += shell_size
            entry["first_shell"] = {"mae_meV": shell_acc.abs_sum / shell_acc.count,
                                    "relative": shell_acc.abs_sum / shell_size, "n_values": shell_acc.count}
        if overlaps is not None:
            entry.update(self._add_gauge_invariant(compared, overlaps, shell))
        entry.update(extra)
        if band_errors is not None:
            entry["band_errors"] = band_errors
        self.structures.append(entry)
        return entry

    def _add_gauge_invariant(self, diffs: Blocks, overlaps: Blocks, shell: set = frozenset()) -> dict:
        """|ΔH - c·S| with c = <ΔH,S>/<S,S> over the compared blocks (a block without S: S = 0 there)."""
        try:
            c = gauge_mu(diffs, overlaps)
        except ValueError:
            return {}
        acc = _Acc()
        for key, diff in diffs.items():
            s = overlaps.get(key)
            err = np.abs(diff - c * s if s is not None else diff).ravel() * 1000.0
            self.kinds["gauge_onsite" if _onsite(key) else "gauge_hopping"].add(err)
            self.kinds["gauge"].add(err)
            if key in shell:
                self.kinds["gauge_first_shell"].add(err)
            acc.add(err)
        return {"gauge_invariant_mae_meV": acc.abs_sum / acc.count, "gauge_shift_meV": c * 1000.0}

    def skip(self, structure_id: str, reason: str) -> None:
        self.structures.append({"id": structure_id, "status": "skipped", "reason": reason})

    def to_json(self) -> dict:
        ok = [s for s in self.structures if s["status"] == "ok"]
        bands = [s["band_errors"]["mae_meV"] for s in ok if "band_errors" in s]
        out = {
            **self.meta,
            "mae_meV": self.overall.to_json()["mae_meV"],
            "max_abs_meV": self.overall.max_abs,
            "n_values": self.overall.count,
            "n_structures": len(ok),
            "n_skipped": len(self.structures) - len(ok),
            "onsite": self.kinds["onsite"].to_json(),
            "hopping": self.kinds["hopping"].to_json(),
            "per_element": {k: v.to_json() for k, v in sorted(self.per_element.items())},
            "per_element_pair": {k: v.to_json() for k, v in sorted(self.per_pair.items())},
            "per_element_all_blocks": {k: v.to_json() for k, v in sorted(self.per_element_all.items())},
            "structures": self.structures,
        }
        if self.kinds["first_shell"].count:
            out["first_shell"] = self._first_shell_json()
        if self.kinds["gauge"].count:
            out["gauge_invariant"] = {
                "definition": "MAE of dH - c*S, c = <dH,S>/<S,S> per structure (the best rigid shift removed)",
                "mae_meV": self.kinds["gauge"].to_json()["mae_meV"],
                "onsite": self.kinds["gauge_onsite"].to_json(), "hopping": self.kinds["gauge_hopping"].to_json()}
            if self.kinds["gauge_first_shell"].count:
                out["gauge_invariant"]["first_shell"] = self.kinds["gauge_first_shell"].to_json()
        floors = [s["truncation_floor"]["mae_meV"] for s in ok if "truncation_floor" in s]
        if floors:
            out["truncation_floor"] = {"n_structures": len(floors), "mean_of_mae_meV": float(np.mean(floors)),
                                       "worst_mae_meV": float(np.max(floors))}
        if bands:
            out["band_errors"] = {"n_structures": len(bands), "mean_of_mae_meV": float(np.mean(bands)),
                                  "median_of_mae_meV": float(np.median(bands)), "worst_mae_meV": float(np.max(bands))}
        return out

    def _first_shell_json(self) -> dict:
        out = {**self.kinds["first_shell"].to_json(), "relative": self.kinds["first_shell"].abs_sum / self.first_shell_size,
               "definition": f"hoppings of bonds up to {FIRST_SHELL} x each structure's shortest"}
        per_pair = {}
        for key, (acc, size) in sorted(self.first_shell_pairs.items()):
            per_pair[key] = {**acc.to_json(), "relative": acc.abs_sum / size if size else None}
            if self.training_bonds is not None:
                per_pair[key]["training_bonds"] = (self.training_bonds.get(key) or [0])[0]
        out["per_pair"] = per_pair
        if self.training_bonds is not None:
            for name, trained in (("pairs_bonded_in_training", True), ("pairs_never_bonded_in_training", False)):
                acc, size = _Acc(), 0.0
                for key, (a, s) in self.first_shell_pairs.items():
                    if (key in self.training_bonds) == trained:
                        acc.add_acc(a)
                        size += s
                if acc.count:
                    out[name] = {**acc.to_json(), "relative": acc.abs_sum / size,
                                 "pairs": sorted(k for k in self.first_shell_pairs if (k in self.training_bonds) == trained)}
        return out

    def structures_csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["id", "status", "n_atoms", "mae_meV", "gauge_invariant_mae_meV", "max_abs_meV", "band_mae_meV",
                    "mu_reference_eV", "reason"])
        for s in self.structures:
            w.writerow([s["id"], s["status"], s.get("n_atoms", ""), _fmt(s.get("mae_meV")),
                        _fmt(s.get("gauge_invariant_mae_meV")), _fmt(s.get("max_abs_meV")),
                        _fmt(s.get("band_errors", {}).get("mae_meV")), _fmt(s.get("mu_reference_eV"), 6),
                        s.get("reason", "")])
        return buf.getvalue()

    def table(self) -> str:
        rows = [("overall", self.overall)] + [(f"on-site {k}", v) for k, v in sorted(self.per_element.items())] + [
            (f"hopping {k}", v) for k, v in sorted(self.per_pair.items())] + [
            (f"all blocks with {k}", v) for k, v in sorted(self.per_element_all.items())]
        width = max(len(r[0]) for r in rows)
        lines = [f"{'blocks':<{width}}  {'MAE (meV)':>10}  {'max (meV)':>10}  {'values':>10}"]
        for name, acc in rows:
            lines.append(f"{name:<{width}}  {_fmt(acc.to_json()['mae_meV']):>10}  {acc.max_abs:>10.3f}  {acc.count:>10d}")
        if self.kinds["gauge"].count:
            lines.append("gauge-invariant (best rigid shift c*S per structure removed): MAE "
                         + ", ".join(f"{name} {_fmt(self.kinds[k].to_json()['mae_meV'])}" for name, k in
                                     (("all", "gauge"), ("on-site", "gauge_onsite"), ("hopping", "gauge_hopping")))
                         + f" meV (raw: on-site {_fmt(self.kinds['onsite'].to_json()['mae_meV'])}, hopping "
                         + f"{_fmt(self.kinds['hopping'].to_json()['mae_meV'])} meV)")
        if self.kinds["first_shell"].count:
            shell = self._first_shell_json()
            lines.append(f"first-shell hoppings (bonds up to {FIRST_SHELL} x the shortest): MAE "
                         f"{_fmt(shell['mae_meV'])} meV, {100 * shell['relative']:.1f} % of their mean |H|")
            for name, what in (("pairs_bonded_in_training", "pairs bonded in training"),
                               ("pairs_never_bonded_in_training", "pairs never bonded in training")):
                if name in shell:
                    lines.append(f"  of {what} ({len(shell[name]['pairs'])}): MAE {_fmt(shell[name]['mae_meV'])} meV, "
                                 f"{100 * shell[name]['relative']:.1f} %")
        skipped = [s for s in self.structures if s["status"] == "skipped"]
        lines.append(f"{len(self.structures) - len(skipped)} structures evaluated, {len(skipped)} skipped")
        lines += [f"  skipped {s['id']}: {s['reason']}" for s in skipped]
        return "\n".join(lines)

    def write(self, report_path: str | os.PathLike) -> tuple[Path, Path]:
        """report.json and, next to it, <stem>.csv (one row per structure); each written atomically."""
        import json

        report_path = Path(report_path)
        report_path.parent.mkdir(parents=True, exist_ok=True)
        csv_path = report_path.with_suffix(".csv")
        for path, text in ((report_path, json.dumps(self.to_json(), indent=1) + "\n"), (csv_path, self.structures_csv())):
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(text)
            os.replace(tmp, path)
        return report_path, csv_path


def _fmt(x, digits: int = 3) -> str:
    return "" if x is None else f"{x:.{digits}f}"


def first_shell(blocks: Blocks, positions: np.ndarray, cell: np.ndarray) -> set:
    """Keys of the hoppings no longer than ``FIRST_SHELL`` times the shortest (Å, rows of ``cell`` are the
    lattice vectors, keys (Rx, Ry, Rz, i, j) with atom j in cell R)."""
    hoppings = [key for key in blocks if not _onsite(key)]
    if not hoppings:
        return set()
    lengths = block_bond_lengths(np.array(hoppings), positions, cell)
    return {key for key, near in zip(hoppings, first_shell_mask(lengths)) if near}


def _onsite(key) -> bool:
    rx, ry, rz, i, j = key
    return (rx, ry, rz) == (0, 0, 0) and i == j
