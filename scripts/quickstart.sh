#!/usr/bin/env bash
# The README's first command: set up (first run only), train a small DeepH-2 on the embedded PySCF dataset
# (a few minutes on a laptop CPU), then show what it learned: test-set errors in meV and the band structure
# of a test structure predicted by the model against DFT. Extra arguments go to train.py as Hydra overrides,
# e.g. `bash scripts/quickstart.sh trainer.max_steps=100`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup.sh"
cd "$ROOT"

run="quickstart-$(date +%Y%m%d-%H%M%S)"
out="logs/quickstart/runs/$run"
python train.py +experiment=quickstart run_name="$run" "$@"
ckpt="$out/checkpoints/best.ckpt"
[ -f "$ckpt" ] || { echo "quickstart: no checkpoint at $ckpt" >&2; exit 1; }

echo
echo "== evaluating $ckpt on the test split of the embedded dataset =="
data="${DEEPH_DATA_DIR:-data}/quickstart_sic.lmdb"  # conf/data/quickstart.yaml: ${paths.data_dir}/quickstart_sic.lmdb
deeph-eval test --ckpt "$ckpt" --data "$data" --split test --out "$out/eval/report.json"

# The band structure of the first test structure, predicted vs its DFT reference.
ref="$(python - "$data" <<'PY'
import sys
from data_prep.lmdb_dataset import LmdbDataset
ds = LmdbDataset(sys.argv[1])
print(ds[ds.split("test")[0]]["source"])
PY
)"
deeph-eval bands --ckpt "$ckpt" --structure "$ref" --reference "$ref" --out "$out/eval/bands"
echo
echo "quickstart done:"
echo "  checkpoint      $ckpt"
echo "  test report     $out/eval/report.json (+ .csv)"
echo "  band structure  $out/eval/bands/bands.png (model vs DFT; errors in bands.json)"
echo "  W&B (offline)   $out/wandb  ->  wandb sync $out/wandb/offline-run-*"
