"""Train a DeepH model: ``python train.py +experiment=quickstart`` (see conf/README.md)."""

import sys

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig):
    from data_prep.lmdb_dataset import DatasetError
    from data_prep.records import RecordError
    from deeph_lightning.training import SetupError, run

    try:
        result = run(cfg)
    except SetupError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        sys.exit(2)
    except (DatasetError, RecordError) as err:  # a corrupt or truncated shard met while training
        # re-raised from a DataLoader worker, the message carries the worker's traceback: keep its last line
        lines = [ln for ln in str(err).splitlines() if ln.strip()]
        print(f"error: {lines[-1].split('Error: ', 1)[-1] if len(lines) > 1 else lines[0]}", file=sys.stderr, flush=True)
        sys.exit(2)
    return result.get("val", {}).get("val/mae_meV")


if __name__ == "__main__":
    main()
