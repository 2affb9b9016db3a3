"""Predict time and peak memory against the edge-chunk size of the DeepH-2 forward pass.

``deeph_eval.predict.predict_blocks`` on n×n×n Si supercells with a given checkpoint, once per chunk size
(0 = all edges in one pass), each in its own process. Peak MiB = peak RSS during the prediction minus the
RSS before it. Every chunk size must give the same blocks: the table shows the largest difference from
the unchunked prediction. Used to choose ``deeph_eval.predict.EDGE_CHUNK``.

    python bench/predict_chunks.py --ckpt CKPT [--sizes 4 8] [--chunks 0 512 1024 2048 8192]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from inference_scaling import _reset_peak_rss, _status_mib


def one_run(ckpt: str, n: int, chunk: int, out: Path) -> dict:
    from ase.build import bulk

    from deeph_eval import predict
    from deeph_eval.model_io import load_checkpoint

    loaded = load_checkpoint(ckpt)
    si = bulk("Si", "diamond", a=5.43)
    predict.predict_blocks(loaded, si)  # warm-up
    predict.EDGE_CHUNK = chunk or None
    atoms = si.repeat((n, n, n))
    base = _reset_peak_rss()
    t0 = time.perf_counter()
    blocks = predict.predict_blocks(loaded, atoms)
    seconds = time.perf_counter() - t0
    peak = _status_mib("VmHWM") - base
    keys = sorted(blocks)
    np.save(out, np.concatenate([blocks[k].ravel() for k in keys]))
    return {"atoms": len(atoms), "blocks": len(keys), "seconds": seconds, "peak_MiB": peak}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--sizes", type=int, nargs="*", default=[4, 8])
    ap.add_argument("--chunks", type=int, nargs="*", default=[0, 512, 1024, 2048, 8192])
    ap.add_argument("--one", nargs=3, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        n, chunk, out = args.one
        print(json.dumps(one_run(args.ckpt, int(n), int(chunk), Path(out))))
        return
    print(f"predict_blocks on Si supercells, {args.ckpt}; one process per row")
    print(f"{'atoms':>6} {'chunk':>7} {'seconds':>8} {'peak MiB':>9} {'max |Δ| vs 0':>13}")
    for n in args.sizes:
        ref = None
        for chunk in args.chunks:
            out = Path(f"/tmp/deeph_predict_chunks_{n}_{chunk}.npy")
            res = subprocess.run([sys.executable, __file__, "--ckpt", args.ckpt, "--one", str(n), str(chunk), str(out)],
                                 capture_output=True, text=True, check=True)
            r = json.loads(res.stdout.strip().splitlines()[-1])
            values = np.load(out)
            out.unlink()
            ref = values if ref is None else ref
            diff = float(np.abs(values - ref).max()) if chunk else 0.0
            print(f"{r['atoms']:>6} {chunk or 'all':>7} {r['seconds']:>8.1f} {r['peak_MiB']:>9.0f} {diff:>13.1e}", flush=True)


if __name__ == "__main__":
    main()
