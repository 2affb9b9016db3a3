"""Ship a trained checkpoint in the repository, loadable by name: ``python -m deeph_lightning.ship_model``.

    python -m deeph_lightning.ship_model --ckpt runs/.../best.ckpt --name universal-mini \
        --summary "..." --report "held-out compositions=report_comp.json" --check universal-mini:<structure id> \
        --notes notes.md

Writes ``deeph_lightning/models/shipped/<name>.ckpt`` (inference weights and metadata only), its index entry
(sha256, summary, and a *check*: the test MAE of one shipped structure, which the test suite reproduces
from a fresh clone) and the card ``<name>.md``: training data, DFT recipe, cutoff, network, budget, and the
metrics of each ``deeph-eval test`` report, overall and per element.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from .models.checkpoint import read_checkpoint
from .models.pretrained import SHIPPED, ship_checkpoint, update_index


def check_mae(ckpt: str, dataset: str, structure_id: str) -> float:
    """``deeph-eval test`` MAE (meV) of ``ckpt`` on one structure of a shipped dataset."""
    from data_prep.embedded import dataset_path
    from deeph_eval.cli import main as deeph_eval

    source = Path(dataset_path(dataset)) / structure_id
    if not source.is_dir():
        raise FileNotFoundError(f"{source}: no structure {structure_id!r} in the shipped dataset {dataset!r}")
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(source, Path(tmp) / "data" / structure_id)
        out = Path(tmp) / "report.json"
        if deeph_eval(["test", "--ckpt", ckpt, "--data", str(Path(tmp) / "data"), "--out", str(out)]) != 0:
            raise RuntimeError(f"deeph-eval test failed on {source}")
        report = json.loads(out.read_text())
    if report["n_structures"] != 1:
        raise RuntimeError(f"{source}: skipped by deeph-eval test ({report['structures'][0].get('reason')})")
    return float(report["mae_meV"])


def fine_tuned_from(provenance: dict) -> str:
    """The model card's "fine-tuned from" entry: the source, its steps, the elements fine-tuning added."""
    from .finetune import started_as

    added, init = provenance.get("added_elements"), provenance.get("element_init") or {}
    started = f" ({started_as(init)})" if init else ""
    return (f"{provenance.get('source')} (trained {provenance.get('global_step')} steps)"
            + (f", adding {', '.join(added)}{started}" if added else ""))


def _f(x, digits: int = 1) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def report_section(label: str, report: dict) -> list[str]:
    """Markdown of one ``deeph-eval test`` report: headline numbers and the per-element table."""
    g = report.get("gauge_invariant", {})
    lines = [f"### {label}", "",
             f"{report['n_structures']} structures ({report.get('split_set', '')} split, `{report.get('split', '')}`): "
             f"MAE **{_f(report['mae_meV'], 2)} meV** (on-site {_f(report['onsite']['mae_meV'])}, hopping "
             f"{_f(report['hopping']['mae_meV'], 2)}); gauge-invariant {_f(g.get('mae_meV'), 2)} meV (on-site "
             f"{_f(g.get('onsite', {}).get('mae_meV'))}, hopping {_f(g.get('hopping', {}).get('mae_meV'), 2)})."]
    if report.get("first_shell"):
        f = report["first_shell"]
        lines[-1] += (f" First-shell hoppings (nearest-neighbour bonds, the largest blocks): MAE {_f(f['mae_meV'])} meV, "
                      f"{_f(100 * f['relative'])} % of their mean |H|.")
        for key, what in (("pairs_never_bonded_in_training", "never bonded in training"),
                          ("pairs_bonded_in_training", "bonded in training")):
            if f.get(key):
                lines[-1] += (f" Of element pairs {what} ({', '.join(f[key]['pairs'])}): {_f(f[key]['mae_meV'])} meV, "
                              f"{_f(100 * f[key]['relative'])} %.")
    if report.get("band_errors"):
        b = report["band_errors"]
        lines[-1] += (f" Band error within E_F ± window: median {_f(b['median_of_mae_meV'])}, worst "
                      f"{_f(b['worst_mae_meV'])} meV over {b['n_structures']} structures.")
    rows = report.get("per_element_all_blocks", {})
    if rows:
        lines += ["", "| element | MAE, all its blocks (meV) | on-site (meV) | values |", "|---|---|---|---|"]
        onsite = report.get("per_element", {})
        for el, v in sorted(rows.items(), key=lambda kv: -(kv[1]["mae_meV"] or 0)):
            lines.append(f"| {el} | {_f(v['mae_meV'], 2)} | {_f(onsite.get(el, {}).get('mae_meV'))} | {v['n_values']} |")
    return lines + [""]


def card(name: str, summary: str, meta: dict, reports: dict[str, dict], check: dict, notes: str = "") -> str:
    cfg = meta.get("config") or {}
    data, trainer, net = cfg.get("data") or {}, cfg.get("trainer") or {}, meta["net"]
    budget = next((f"{k} = {trainer[k]}" for k in ("max_time", "max_steps", "max_epochs")
                   if trainer.get(k) not in (None, -1)), "unknown")
    recipe = meta.get("dft_recipe") or {}
    from data_prep.basis import BasisTable, element_symbol

    basis = BasisTable.from_dict(meta["basis"])
    elements = [element_symbol(z) for z in basis.elements]
    slots = ", ".join("spdf"[l] for l in basis.union_shells)
    lines = [
        f"# Shipped model `{name}`", "", summary, "",
        f"Load it by name: `deeph-eval predict|bands|test --ckpt {name} ...`, `deeph_lightning.load_model({name!r})`.",
        f"Fine-tune it on DFT data of your own, packed with `deeph-prep pack ... --cutoff {meta['cutoff']:g}`: "
        f"`python train.py ... finetune_from={name}` (docs/training.md, \"Fine-tuning a trained model\"); elements "
        f"it does not know are added when their orbitals fit its readout (shells {slots}).",
        "",
        "| | |", "|---|---|",
        f"| training data | `{data.get('pack_from') or data.get('path')}`, split set `{data.get('split_set', 'random')}` |",
        f"| DFT recipe | {', '.join(f'{k} {v}' for k, v in recipe.items()) or 'unknown'} |",
        f"| elements ({len(elements)}) | {' '.join(elements)} |",
        f"| cutoff | {meta['cutoff']} Å |",
        f"| network | {net['_target_'].rsplit('.', 1)[-1]}: "
        + ", ".join(f"{k} {v}" for k, v in net.items() if k != "_target_" and not isinstance(v, (dict, list))) + " |",
        f"| target gauge | {meta.get('target_gauge', 'raw')} |",
        f"| budget | {budget}; trained {meta.get('global_step')} steps |",
        *([f"| fine-tuned from | {fine_tuned_from(meta['finetuned_from'])} |"] if meta.get("finetuned_from") else []),
        "| nearest-neighbour pairs in training | "
        + (f"{len(meta['training_bonds'])} (`checkpoint['deeph']['training_bonds']`; evaluation warns about others) |"
           if meta.get("training_bonds") is not None else "not recorded |"),
        f"| check (test suite) | {check['dataset']}:{check['id']}: MAE {check['mae_meV']:.3f} meV |",
        "",
    ]
    for label, report in reports.items():
        lines += report_section(label, report)
    return "\n".join(lines) + (("\n" + notes.strip() + "\n") if notes.strip() else "")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", required=True, help="checkpoint written by train.py")
    p.add_argument("--name", required=True, help="the name it is loaded by")
    p.add_argument("--summary", required=True, help="one line for the index and the card")
    p.add_argument("--report", action="append", default=[], metavar="LABEL=REPORT_JSON",
                   help="a deeph-eval test report for the card (repeatable)")
    p.add_argument("--check", required=True, metavar="DATASET:ID",
                   help="a shipped structure whose MAE the test suite reproduces")
    p.add_argument("--notes", help="markdown appended to the card (commands, band plots, caveats)")
    args = p.parse_args(argv)
    try:
        reports = {}
        for item in args.report:
            label, _, path = item.partition("=")
            reports[label] = json.loads(Path(path).read_text())
        dataset, _, sid = args.check.partition(":")
        meta = read_checkpoint(args.ckpt)["deeph"]
        notes = Path(args.notes).read_text() if args.notes else ""
        file = ship_checkpoint(args.ckpt, args.name, args.summary, "")
        check = {"dataset": dataset, "id": sid, "mae_meV": check_mae(args.name, dataset, sid)}  # the shipped file
    except (OSError, ValueError, RuntimeError, KeyError) as err:
        print(f"ship_model: {err}", file=sys.stderr)
        return 2
    (SHIPPED / f"{args.name}.md").write_text(card(args.name, args.summary, meta, reports, check, notes))
    update_index(args.name, {"check": check})
    print(f"shipped {file} ({file.stat().st_size / 1e6:.1f} MB); check MAE {check['mae_meV']:.3f} meV")
    return 0


if __name__ == "__main__":
    sys.exit(main())
