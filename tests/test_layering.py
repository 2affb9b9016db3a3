"""Imports flow one way: data_prep -> deeph_lightning.models (networks + checkpoint format) -> deeph_eval ->
training (LightningModule, DataModule, callbacks). Checked on the source (every import statement, also those
inside functions) and on a real checkpoint load in a fresh interpreter."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import torch

from data_prep.basis import BasisTable
from deeph_lightning.models.checkpoint import build_net, describe

REPO = Path(__file__).resolve().parents[1]
FRAMEWORKS = ("pytorch_lightning", "lightning", "lightning_fabric", "hydra", "omegaconf")


def imported_modules(path: Path) -> set[str]:
    """Absolute names of every module ``path`` imports (relative imports resolved)."""
    package = ".".join(path.relative_to(REPO).with_suffix("").parts)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([node.module] if node.module else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)  # "from pkg import module"
    return names


def violations(package: str, forbidden) -> list[str]:
    out = []
    for path in sorted((REPO / package).rglob("*.py")):
        for name in sorted(imported_modules(path)):
            if forbidden(name):
                out.append(f"{path.relative_to(REPO)} imports {name}")
    return out


def under(name: str, *prefixes: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_data_prep_imports_no_model_or_evaluation_code():
    assert violations("data_prep", lambda n: under(n, "deeph_lightning", "deeph_eval", *FRAMEWORKS)) == []


def test_models_and_checkpoint_format_import_no_training_or_evaluation_code():
    def forbidden(name):
        return under(name, "deeph_eval", *FRAMEWORKS) or (
            under(name, "deeph_lightning") and not under(name, "deeph_lightning.models") and name != "deeph_lightning")

    assert violations("deeph_lightning/models", forbidden) == []


def test_deeph_eval_imports_no_training_code():
    def forbidden(name):
        return under(name, *FRAMEWORKS) or (under(name, "deeph_lightning") and not under(name, "deeph_lightning.models"))

    assert violations("deeph_eval", forbidden) == []


def test_deeph_eval_modules_use_each_others_public_names_only():
    """The solvers (and every other module) talk through public names: no ``from .x import _private``."""
    private = []
    for path in sorted((REPO / "deeph_eval").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                private += [f"{path.relative_to(REPO)}: {alias.name}" for alias in node.names
                            if alias.name.startswith("_") and alias.name != "__future__"]
    assert private == []


def test_the_import_parser_sees_training_imports():
    """The rules above would catch the imports training code makes (the checker is not blind)."""
    names = imported_modules(REPO / "deeph_lightning" / "training.py")
    assert {"pytorch_lightning", "hydra.utils", "deeph_lightning.resume", "deeph_lightning.callbacks"} <= names
    band_plot = imported_modules(REPO / "deeph_lightning" / "callbacks" / "band_plot.py")
    assert {"deeph_eval.bands", "deeph_lightning.models.checkpoint.LoadedModel"} <= band_plot


def test_loading_a_checkpoint_for_evaluation_imports_no_lightning_or_hydra(tmp_path):
    basis, cutoff = BasisTable.from_mapping({14: [0, 0, 1, 1, 2]}), 3.0
    net = {"_target_": "deeph_lightning.models.deeph2.DeepH2", "channels": 4, "pseudo_channels": 4, "layers": 1,
           "heads": 2, "num_radial": 8, "hidden_radial": 16}
    ckpt = tmp_path / "tiny.ckpt"
    model = build_net(net, basis, cutoff)
    meta = describe(net, basis, cutoff, has_ema=False, dtype=torch.float32, config=None, dft_recipe=None,
                    wandb_run_id=None, global_step=0)
    torch.save({"state_dict": {f"net.{k}": v for k, v in model.state_dict().items()}, "deeph": meta}, ckpt)
    script = f"""
import json, sys
from ase.build import bulk
from deeph_eval.cli import build_parser
from deeph_eval.model_io import load_checkpoint
from deeph_eval.predict import predict_blocks

build_parser()
loaded = load_checkpoint({str(ckpt)!r})
si = bulk("Si", "diamond", a=5.43)
blocks = predict_blocks(loaded, si)
print(json.dumps({{"blocks": len(blocks), "modules": sorted(m.split(".")[0] for m in sys.modules)}}))
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=300,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "2"})
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["blocks"] > 0
    assert not set(FRAMEWORKS) & set(result["modules"]), set(FRAMEWORKS) & set(result["modules"])
