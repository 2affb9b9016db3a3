"""Train a DeepH model: ``python train.py +experiment=quickstart`` (see conf/README.md)."""

import sys

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig):
    from deeph_lightning.training import SetupError, run

    try:
        result = run(cfg)
    except SetupError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        sys.exit(2)
    return result.get("val", {}).get("val/mae_meV")


if __name__ == "__main__":
    main()
