#!/usr/bin/env bash
# Background DFT of the universal-mini catalogue, for a working session (see docs/data.md).
#   bash scripts/universal_dft.sh start [WORK]   regenerate the catalogue if missing, then loop todo -> dft
#   bash scripts/universal_dft.sh pause|resume   SIGSTOP/SIGCONT the DFT (benchmarks, the full test suite)
#   bash scripts/universal_dft.sh ship [WORK]    pack what finished into new chunks (--flush) and record failures
# WORK defaults to /work/dft-universal. The run resumes from WORK/dft-d120 if it survived the last session.
set -euo pipefail
cmd=${1:-}
work=${2:-/work/dft-universal}
repo=$(cd "$(dirname "$0")/.." && pwd)
# the project's environment, so the script works from a plain shell (scripts/setup.sh makes it)
if ! command -v deeph-prep >/dev/null && [ -f "$repo/.venv/bin/activate" ]; then
    source "$repo/.venv/bin/activate"
fi
command -v deeph-prep >/dev/null || { echo "universal_dft.sh: deeph-prep not found; run: source scripts/setup.sh" >&2; exit 2; }

signal_dft() {
    pkill "-$1" -f "deeph-prep dft|forkserver|multiprocessing.spawn" || true
}

case "$cmd" in
start)
    mkdir -p "$work"
    if [ ! -f "$work/structures/manifest.jsonl" ]; then
        deeph-prep generate --mode materials --n 440 --seed 0 --out "$work/structures"
    fi
    # elements that would end under 12 structures get more from a second draw (after the last ship's failures)
    (cd "$repo" && python -m data_prep.embedded.build_universal supplement --structures "$work/structures")
    cd "$work"
    # setsid opens a new autogroup, which the scheduler weighs against the whole login session regardless of
    # per-process nice; lowering the group's own nice is what lets training keep the CPU.
    nohup setsid bash -c "
        echo 19 > /proc/self/autogroup 2>/dev/null || true
        for pass in 1 2 3 4; do
            python -m data_prep.embedded.build_universal todo --structures '$work/structures' --out '$work/todo' \
                --dft '$work/dft-d120'
            nice -n 19 deeph-prep dft '$work/todo' --out '$work/dft-d120' --alias-radius 13 \
                --workers 2 --threads 1 --timeout 2400 >> '$work/dft-d120.log' 2>&1
        done" > "$work/run.out" 2>&1 &
    echo "started; log: $work/dft-d120.log"
    ;;
pause) signal_dft STOP ;;
resume) signal_dft CONT ;;
ship)
    cd "$repo"
    python -m data_prep.embedded.build_universal ship --structures "$work/structures" --dft "$work/dft-d120" --flush
    ;;
*)
    sed -n '2,6p' "$0"
    exit 2
    ;;
esac
