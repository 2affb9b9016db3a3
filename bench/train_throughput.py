"""Training throughput on CPU: data loading alone, model step alone (forward+backward+AdamW), per batch.

    python bench/train_throughput.py --data data/quickstart_sic.lmdb [--steps 5] [--threads 2] [--models deeph2_small]

Prints structures/s and matrix elements/s (real, unpadded H entries) for the quickstart and universal
model sizes on the same batches (packed to the quickstart data config's budget).
"""

from __future__ import annotations

import argparse
import time

import torch


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="a packed dataset (deeph-prep pack)")
    ap.add_argument("--budget", type=int, default=60000, help="padded matrix elements per batch")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models", default="deeph2_small,deeph2_universal", help="model presets (conf/model), comma-separated")
    ap.add_argument("--repeats", type=int, default=1, help="time the steps this many times, report the fastest")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate
    from pathlib import Path

    from deeph_lightning.callbacks import batch_matrix_elements
    from deeph_lightning.datamodule import DeepHDataModule

    dm = DeepHDataModule(path=args.data, global_budget=args.budget, num_workers=0)
    dm.setup()
    loader = dm.train_dataloader()

    t0 = time.perf_counter()
    batches = []
    for b in loader:
        batches.append(b)
        if len(batches) == args.steps:
            break
    t_data = time.perf_counter() - t0
    n_struct = sum(b.num_graphs for b in batches)
    n_elem = sum(batch_matrix_elements(b, dm.basis) for b in batches)

    rows = [("data loading (LMDB -> padded Batch)", t_data, "-")]
    conf = str(Path(__file__).resolve().parents[1] / "conf")
    for size in args.models.split(","):
        with initialize_config_dir(config_dir=conf, version_base="1.3"):
            cfg = compose(config_name="train", overrides=[f"model={size}", "model.block_stats=null", "paths.output_dir=."])
        module = instantiate(cfg.model, basis=dm.basis.to_dict(), cutoff=dm.cutoff, ema_decay=None)
        net = module.net
        opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
        from deeph_lightning.models import losses

        def step(b):
            opt.zero_grad()
            loss = losses.mse_loss(net(b), b, dm.basis)
            loss.backward()
            opt.step()

        step(batches[0])  # warm-up
        times = []
        for _ in range(args.repeats):  # the fastest pass: the machine is shared
            t0 = time.perf_counter()
            for b in batches:
                step(b)
            times.append(time.perf_counter() - t0)
        dt = min(times)
        params = sum(p.numel() for p in net.parameters())
        rows.append((f"model step {size} ({params / 1e6:.2f} M params)", dt, f"{params}"))

    print(f"dataset {args.data}: {len(batches)} batches, {n_struct} structures, {n_elem:,} H matrix elements, "
          f"budget {args.budget:,} padded elements/batch, {args.threads} threads")
    print(f"{'what':<48} {'s/batch':>9} {'structures/s':>13} {'matrix elements/s':>18}")
    for name, dt, _ in rows:
        print(f"{name:<48} {dt / len(batches):>9.3f} {n_struct / dt:>13.1f} {n_elem / dt:>18.3g}")


if __name__ == "__main__":
    main()
