"""Fine-tuning universal-mini on a few DFT calculations of one material, against training from scratch on them.

    python bench/finetune_example.py [--material alas|zro2] [--work /tmp/ft-alas] [--steps 300] [--threads 2]

``alas``: zincblende AlAs, a held-out composition of the shipped model (no Al-As bond in its training); its
shipped cell is itself slightly strained (the catalogue perturbs every cell). A user's small dataset: four
strained and rattled primitive cells and two rattled 8-atom cubic cells; the evaluation set: the shipped cell
and two more rattled cubic cells (other seeds), none of them trained on.
``zro2``: cubic zirconia, whose Zr the shipped model has never seen: fine-tuning adds it
(``deeph_lightning.finetune.add_elements``); the same cells as for AlAs (fluorite primitive and 12-atom cubic).
Every cell is computed here with the universal-mini recipe (``deeph-prep dft``, resumable), the training cells
are packed at the model's 9 Å, and the models are compared on the evaluation set (``deeph-eval test --bands``):
universal-mini as shipped (where it knows the elements), universal-mini fine-tuned
(``finetune_from=universal-mini``), and the same network trained from scratch, both for ``--steps`` steps.
Prints a Markdown table; the reports stay in WORK.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from ase import Atoms
from ase.build import bulk, make_supercell

from data_prep.catalogue import write_catalogue
from data_prep.deeph_format import read_deeph
from data_prep.embedded import dataset_path

REPO = Path(__file__).resolve().parents[1]
PRISTINE = "AlAs_zincblende_s0_00090"


def entry(name, atoms):
    return name, atoms, {"id": name, "formula": atoms.get_chemical_formula(), "n_atoms": len(atoms)}


def strained(base, strain, rattle, seed):
    atoms = base.copy()
    atoms.set_cell(atoms.cell[:] * (1 + strain), scale_atoms=True)
    atoms.rattle(rattle, seed=seed)
    return atoms


def alas_cells() -> tuple[list, list]:
    """(fine-tuning cells, evaluation cells) as catalogue entries (id, atoms, meta)."""
    st = read_deeph(dataset_path("universal-mini") / PRISTINE, hamiltonian=False, overlap=False)
    prim = Atoms(numbers=st.numbers, positions=st.positions, cell=st.cell, pbc=True)
    cubic = make_supercell(prim, [[-1, 1, 1], [1, -1, 1], [1, 1, -1]])  # fcc primitive -> 8-atom cube
    train = [entry(f"AlAs_prim_strain{s:+.2f}_r{seed}", strained(prim, s, 0.03, seed))
             for seed, s in enumerate((-0.02, -0.01, 0.01, 0.02))]
    train += [entry(f"AlAs_cubic_r{seed}", strained(cubic, 0.0, 0.05, seed)) for seed in (10, 11)]
    held = [entry(f"AlAs_cubic_r{seed}", strained(cubic, 0.0, 0.05, seed)) for seed in (20, 21)]
    return train, held


def zro2_cells() -> tuple[list, list]:
    """Cubic zirconia (fluorite ZrO2, a = 5.07 Å), whose Zr the shipped model has never seen: four strained and
    rattled primitive cells and two rattled 12-atom cubic cells to train on, two more rattled cubic cells to
    evaluate."""
    prim = bulk("ZrO2", "fluorite", a=5.07)
    cubic = make_supercell(prim, [[-1, 1, 1], [1, -1, 1], [1, 1, -1]])
    train = [entry(f"ZrO2_prim_strain{s:+.2f}_r{seed}", strained(prim, s, 0.03, seed))
             for seed, s in enumerate((-0.02, -0.01, 0.01, 0.02))]
    train += [entry(f"ZrO2_cubic_r{seed}", strained(cubic, 0.0, 0.05, seed)) for seed in (10, 11)]
    held = [entry(f"ZrO2_cubic_r{seed}", strained(cubic, 0.0, 0.05, seed)) for seed in (20, 21)]
    return train, held


MATERIALS = {"alas": alas_cells, "zro2": zro2_cells}


def sh(args: list[str], threads: int, log: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "WANDB_MODE": "offline"}
    with log.open("w") as f:
        proc = subprocess.run(args, cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode:
        sys.exit(f"{' '.join(args[:3])} failed (exit {proc.returncode}): see {log}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--material", choices=sorted(MATERIALS), default="alas")
    ap.add_argument("--work", type=Path, help="default /tmp/ft-MATERIAL")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--finetune-lr", type=float, default=1e-3)
    args = ap.parse_args()
    work = args.work or Path(f"/tmp/ft-{args.material}")
    work.mkdir(parents=True, exist_ok=True)
    train, held = MATERIALS[args.material]()
    for name, group in (("train", train), ("held", held)):
        write_catalogue(group, work / f"{name}-structures")
        sh(["deeph-prep", "dft", str(work / f"{name}-structures"), "--out", str(work / f"{name}-dft"),
            "--alias-radius", "13", "--workers", "1", "--threads", str(args.threads)], args.threads,
           work / f"dft-{name}.log")
    evaluation = work / "evaluation"
    if not evaluation.is_dir():
        for name, _, _ in held:
            shutil.copytree(work / "held-dft" / name, evaluation / name)
        if args.material == "alas":  # the shipped (catalogue) cell
            shutil.copytree(dataset_path("universal-mini") / PRISTINE, evaluation / PRISTINE)
    pack = work / "mine.lmdb"
    if not pack.is_dir():
        sh(["deeph-prep", "pack", str(work / "train-dft"), "--out", str(pack), "--cutoff", "9.0",
            "--split", "0.67", "0.33", "0.0"], args.threads, work / "pack.log")
    tune = ["finetune_from=universal-mini", f"model.optimizer.lr={args.finetune_lr}"]
    runs = {"fine-tuned": tune, "from scratch": []}
    if args.material == "zro2":  # Zr starts as Ti (the default) or as its untrained rows
        runs["fine-tuned, Zr untrained"] = [*tune, "finetune_element_init=untrained"]
    ckpts = {"universal-mini as shipped": "universal-mini"} if args.material == "alas" else {}
    for label, extra in runs.items():
        run_dir = work / slug(label)
        if not (run_dir / "checkpoints" / "last.ckpt").is_file():
            sh([sys.executable, "train.py", "+experiment=universal_mini", f"data.path={pack}", "data.pack_from=null",
                "data.split_set=random", f"trainer.max_steps={args.steps}", "model.scheduler.warmup_steps=20",
                "callbacks.val_bands=null", "test_after_training=false", "logger=csv", "seed=1",
                f"hydra.run.dir={run_dir}", *extra], args.threads, work / f"train-{run_dir.name}.log")
        ckpts[label] = str(run_dir / "checkpoints" / "last.ckpt")
    print(f"| model ({args.steps} steps on {args.material}) | H MAE | on-site | first shell | band MAE, E_F ± 2 eV |")
    print("|---|---|---|---|---|")
    for label, ckpt in ckpts.items():
        report = work / f"test-{slug(label)}.json"
        sh(["deeph-eval", "test", "--ckpt", ckpt, "--data", str(evaluation), "--bands", "--band-align", "fermi",
            "--out", str(report)], args.threads, work / f"{report.stem}.log")
        r = json.loads(report.read_text())
        print(f"| {label} | {summary(r)} |")


def slug(label: str) -> str:
    """A folder name Hydra's command line takes (no commas, brackets or spaces)."""
    return re.sub(r"[^A-Za-z0-9]+", "-", label).strip("-")


def summary(report: dict) -> str:
    first = report.get("first_shell") or {}
    bands = report.get("band_errors") or {}
    return (f"{report['mae_meV']:.2f} meV | {report['onsite']['mae_meV']:.1f} meV | "
            f"{first.get('mae_meV', float('nan')):.1f} meV | {bands.get('median_of_mae_meV', float('nan')):.0f} meV "
            f"(worst {bands.get('worst_mae_meV', float('nan')):.0f})")


if __name__ == "__main__":
    main()
