#!/usr/bin/env bash
# Create ./.venv and install deeph-lightning with everything it needs (idempotent, offline-safe after the first run).
# Sourced by scripts/quickstart.sh and scripts/test.sh; run it directly to (re)install.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${DEEPH_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating virtual environment $VENV"
  "$PY" -m venv "$VENV"
fi
stamp="$VENV/.deeph-install-stamp"
want="$(cat "$ROOT/pyproject.toml" "$ROOT/scripts/setup.sh" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "[setup] installing dependencies into $VENV (first run takes a few minutes)"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  # CPU PyTorch first, pinned exactly: an unpinned torch would pull a multi-GB CUDA build.
  "$VENV/bin/python" -m pip install --quiet "torch==2.13.0" setuptools wheel
  # DeepSpeed builds against the torch above: no build isolation (it would fetch another torch), no C++ ops
  # (we use torch's AdamW, so nothing needs compiling).
  DS_BUILD_OPS=0 "$VENV/bin/python" -m pip install --quiet --no-build-isolation "deepspeed>=0.14"
  "$VENV/bin/python" -m pip install --quiet -e "$ROOT[dev]"
  echo "$want" > "$stamp"
fi
export PATH="$VENV/bin:$PATH"
export WANDB_MODE="${WANDB_MODE:-offline}"
