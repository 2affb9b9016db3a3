#!/usr/bin/env bash
# Install (first run) and run the whole test suite. Extra arguments go to pytest, e.g. `bash scripts/test.sh -k lmdb`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup.sh"
cd "$ROOT"
exec python -m pytest "$@"
