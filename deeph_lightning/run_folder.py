"""One run per run folder: a fresh start never writes into a folder that already holds another run's checkpoints.

``logs/<task>/runs/<run_name>`` belongs to the first run that checkpoints there. Starting again with the same
``run_name`` either resumes that run (``ckpt_path=auto``, or the path of one of its own checkpoints) or is
refused; otherwise the new run would overwrite ``best.ckpt``, leave the old ``last.ckpt`` beside Lightning's
``last-v1.ckpt``, and ``ckpt_path=auto`` would later resume the wrong run. Imports no Lightning, so the
check also runs as a Hydra callback (conf/hydra/default.yaml), before Hydra rewrites ``.hydra/`` there.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

_VERSIONED = re.compile(r".+-v\d+\.ckpt")  # Lightning's name for a second checkpoint of the same name


class RunFolderError(RuntimeError):
    """The run folder holds another run; the message says how to resume it or start elsewhere."""


def run_checkpoints(output_dir: Path, hpc_dir: Path | None = None) -> list[Path]:
    """Checkpoints a run left in its folder: ``checkpoints/*`` and pre-emption ``hpc_ckpt_*.ckpt``."""
    output_dir = Path(output_dir)
    found = sorted((output_dir / "checkpoints").glob("*.ckpt")) if (output_dir / "checkpoints").is_dir() else []
    for folder in {output_dir, Path(hpc_dir) if hpc_dir else output_dir}:
        found += sorted(folder.glob("hpc_ckpt_*.ckpt"))
    return found


def check_run_folder(output_dir, ckpt_path, hpc_dir=None) -> None:
    """Raise ``RunFolderError`` when this start would mix two runs in ``output_dir``."""
    output_dir = Path(output_dir)
    existing = run_checkpoints(output_dir, hpc_dir)
    if not existing:
        return
    mixed = [p.name for p in existing if _VERSIONED.fullmatch(p.name)]
    if mixed:
        raise RunFolderError(
            f"{output_dir}: holds checkpoints of more than one run ({', '.join(mixed)}); refusing to start or resume "
            "there: move the run you want to keep to its own folder, or choose another run_name")
    ckpt = None if ckpt_path in (None, "", "null") else str(ckpt_path)
    if ckpt == "auto":
        return
    if ckpt is not None and Path(ckpt).resolve() in {p.resolve() for p in existing}:
        return  # resuming one of this run's own checkpoints
    names = ", ".join(str(p.relative_to(output_dir)) for p in existing[:3])
    raise RunFolderError(
        f"{output_dir}: run folder already holds an earlier run ({names}); resume it with ckpt_path=auto, "
        "or start a new run with another run_name")


def _hydra_callback_base():
    from hydra.experimental.callback import Callback

    return Callback


class RefuseUsedRunFolder(_hydra_callback_base()):
    """Hydra callback: the run-folder check before Hydra writes ``.hydra/`` into the folder (train.py)."""

    def on_run_start(self, config, **kwargs) -> None:
        from omegaconf import OmegaConf

        def value(key):  # keys interpolating ${hydra:runtime...} resolve only once the job runs
            try:
                return OmegaConf.select(config, key, default=None)
            except Exception:
                return None

        output_dir = value("hydra.run.dir")
        if not output_dir:
            return
        try:
            check_run_folder(output_dir, value("ckpt_path"), value("trainer.default_root_dir"))
        except RunFolderError as err:
            print(f"error: {err}", file=sys.stderr, flush=True)
            sys.exit(2)
