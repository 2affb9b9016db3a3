"""LightningDataModule over a packed LMDB dataset (``data_prep.lmdb_dataset``).

* The dataset's ``metadata.json`` is the single source of the basis table, the cutoff and the
  train/val/test splits (written by the pack step); nothing here re-derives them.
* Records are read lazily: each DataLoader worker opens the LMDB shards on first access.
* Batches are packed to a budget of matrix elements (``BudgetBatchSampler``): ``global_budget`` is
  the whole optimizer step's budget, each of the ``world_size`` ranks gets about 1/world_size of it.
* ``pack_from``: when ``path`` does not exist yet, pack these DeepH folders there first (once, on the
  first local rank). ``"embedded:quickstart"`` names the dataset shipped with the package; a pack of a
  shipped dataset that has changed since (new universal-mini chunks after a ``git pull``) is packed again.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader
from torch_geometric.data import Batch

from data_prep.basis import BasisTable
from data_prep.gauge import HUCKEL_K
from data_prep.lmdb_dataset import METADATA_FILE, LmdbDataset, LmdbGraphDataset, pack_folders

from .sampling import BudgetBatchSampler

EMBEDDED_PREFIX = "embedded:"


class DataConfigError(ValueError):
    """The data configuration points at something missing or inconsistent."""


def resolve_sources(pack_from) -> list[str]:
    if pack_from is None:
        return []
    items = [pack_from] if isinstance(pack_from, (str, os.PathLike)) else list(pack_from)
    out = []
    for item in items:
        item = str(item)
        if item.startswith(EMBEDDED_PREFIX):
            name = item[len(EMBEDDED_PREFIX) :]
            from data_prep.embedded import dataset_path

            try:
                out.append(str(dataset_path(name)))
            except (KeyError, FileNotFoundError) as err:
                raise DataConfigError(f"pack_from {item!r}: {err.args[0] if err.args else err}") from None
        else:
            out.append(item)
    return out


def collate(items: list) -> Batch:
    return Batch.from_data_list(items)


class ResumableDataLoader(DataLoader):
    """DataLoader whose position inside an epoch is saved in checkpoints (Lightning's stateful protocol).

    ``progress`` returns how many batches of the current epoch the training loop has processed; it is
    asked at save time, so batches prefetched by workers but not yet trained on are not counted.
    """

    def __init__(self, *args, progress=None, **kwargs):
        super().__init__(*args, **kwargs)
        self._progress = progress

    def state_dict(self) -> dict:
        sampler: BudgetBatchSampler = self.batch_sampler
        state = sampler.state_dict()
        if self._progress is not None:
            state["consumed"] = int(self._progress())
        return state

    def load_state_dict(self, state: dict) -> None:
        self.batch_sampler.load_state_dict(state)


class DeepHDataModule(pl.LightningDataModule):
    def __init__(
        self,
        path: str,
        pack_from: str | Sequence[str] | None = None,
        cutoff: float | None = None,
        split_seed: int = 0,
        split_fractions: Sequence[float] = (0.8, 0.1, 0.1),
        split_set: str = "random",
        global_budget: int = 200_000,
        val_budget: int | None = None,
        max_structures: int | None = None,
        min_structures: int = 1,
        num_workers: int = 0,
        pin_memory: bool = False,
        seed: int = 0,
        dtype: str = "float32",
        train_fraction: float = 1.0,
    ):
        super().__init__()
        self.path = Path(path).expanduser()
        self.pack_from = pack_from
        self.expected_cutoff = cutoff
        self.split_seed = split_seed
        self.split_fractions = tuple(split_fractions)
        self.split_set = split_set
        self.train_fraction = float(train_fraction)
        self._train_order: list[int] | None = None
        if not 0.0 < self.train_fraction <= 1.0:
            raise DataConfigError(f"data.train_fraction must be in (0, 1], got {train_fraction}")
        self.global_budget = int(global_budget)
        self.val_budget = int(val_budget or global_budget)
        self.max_structures = max_structures
        self.min_structures = int(min_structures)
        self.num_workers = int(num_workers)
        self.pin_memory = pin_memory
        self.seed = int(seed)
        self.dtype = dtype
        self._records: LmdbDataset | None = None
        self._model_basis: BasisTable | None = None
        self.datasets: dict[str, LmdbGraphDataset] = {}

    # --- dataset discovery ------------------------------------------------------------------------
    def check_available(self) -> None:
        """Fail fast, with what is missing and how to get it, before any heavy work starts."""
        if (self.path / METADATA_FILE).is_file():
            return
        if self.path.exists() and any(self.path.iterdir()):
            raise DataConfigError(f"{self.path} exists but is not a packed dataset (no {METADATA_FILE})")
        if not self.pack_from:
            raise DataConfigError(
                f"dataset not found: {self.path} does not exist. Pack DeepH folders into it with "
                f"`deeph-prep pack <folders> -o {self.path}`, or point data.path at a packed dataset "
                "(e.g. `python train.py ... data.path=/path/to/dataset.lmdb`)."
            )
        for src in resolve_sources(self.pack_from):
            if not Path(src).exists():
                raise DataConfigError(f"cannot pack {self.path}: source {src} does not exist")

    def prepare_data(self) -> None:
        self.check_available()
        repack = False
        if (self.path / METADATA_FILE).is_file():
            # decided once per run: trainer.test() after fit calls this again, and the data must not change
            # under a run (chunks shipped while it trained are for the next run)
            repack = not getattr(self, "_pack_checked", False) and self._outdated_embedded_pack()
            self._pack_checked = True
            if not repack:
                return
        sources = resolve_sources(self.pack_from)
        print(f"{'re' if repack else ''}packing {len(sources)} source(s) into {self.path} "
              f"({'the shipped data changed since it was packed' if repack else 'once; later runs reuse it'})",
              flush=True)
        pack_folders(
            sources,
            self.path,
            cutoff=self.expected_cutoff or 7.5,
            split_seed=self.split_seed,
            split_fractions=self.split_fractions,
            progress=False,
            overwrite=repack,  # replaces only a pack this code wrote (data_prep.outputs.check_ours)
        )
        self._pack_checked = True

    def _outdated_embedded_pack(self) -> bool:
        """Packed from shipped datasets whose extracted version (its folder carries the chunks' digest) changed."""
        items = [self.pack_from] if isinstance(self.pack_from, (str, os.PathLike)) else list(self.pack_from or [])
        if not items or not all(str(i).startswith(EMBEDDED_PREFIX) for i in items):
            return False
        import json

        packed = json.loads((self.path / METADATA_FILE).read_text()).get("sources")
        return packed != [str(Path(s).resolve()) for s in resolve_sources(self.pack_from)]

    @property
    def records(self) -> LmdbDataset:
        if self._records is None:
            self.check_available()
            if not (self.path / METADATA_FILE).is_file():
                raise DataConfigError(f"{self.path}: dataset is not packed yet (call prepare_data first)")
            self._records = LmdbDataset(self.path)
            cut = self._records.cutoff
            if self.expected_cutoff is not None and abs(cut - float(self.expected_cutoff)) > 1e-9:
                raise DataConfigError(
                    f"{self.path}: packed with cutoff {cut} Å but the config asks for {self.expected_cutoff} Å; "
                    "repack the dataset or set data.cutoff=null to use the dataset's cutoff"
                )
        return self._records

    @property
    def basis(self) -> BasisTable:
        """The element table the graphs are padded to: the dataset's, or a model's (``use_model_basis``)."""
        return self._model_basis if self._model_basis is not None else self.records.basis

    def use_model_basis(self, basis: BasisTable) -> None:
        """Pad to a trained model's element table (fine-tuning): a superset of the dataset's, the same shells."""
        self._model_basis = basis

    @property
    def cutoff(self) -> float:
        return self.records.cutoff

    @property
    def metadata(self) -> dict:
        return self.records.metadata

    @property
    def torch_dtype(self) -> torch.dtype:
        trainer = getattr(self, "trainer", None)
        if trainer is not None and str(trainer.precision).startswith("64"):
            return torch.float64
        return getattr(torch, self.dtype)

    # --- splits / loaders -------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        for name in ("train", "val", "test"):
            if name not in self.datasets:
                idx = self.split_indices(name)
                self.datasets[name] = LmdbGraphDataset(self.path, idx, dtype=self.torch_dtype, basis=self.basis)

    def split_indices(self, name: str) -> list[int]:
        """Record indices of split ``name``; for ``train`` with ``train_fraction`` < 1 the first
        round(fraction · n) of ``train_order``, validation and test unchanged."""
        idx = list(self.records.split(name, self.split_set))
        if name != "train" or self.train_fraction == 1.0:
            return idx
        if self._train_order is None:
            self._train_order = self.train_order(idx)
        keep = max(1, round(self.train_fraction * len(idx)))
        return sorted(self._train_order[:keep])

    def train_order(self, idx: list[int]) -> list[int]:
        """The order ``train_fraction`` takes training structures in: a permutation seeded by ``split_seed``,
        except that the structures that first bring in an element not yet taken go ahead (in that order), so
        any subset of at least that many structures has every element of the split (an element missing from
        training is an untrained embedding, not a smaller dataset), and smaller subsets are inside larger ones
        (learning curves)."""
        order = np.random.default_rng(self.split_seed).permutation(idx).tolist()
        seen: set[int] = set()
        first, rest = [], []
        for i in order:
            elements = set(self.records.fields(i, ("atomic_numbers",))["atomic_numbers"].tolist())
            (first if elements - seen else rest).append(i)
            seen |= elements
        return first + rest

    def atom_onsite_table(self, elements=None) -> dict[str, list]:
        """{"Z": isolated-atom on-site H (n_orb x n_orb, eV)} of ``elements`` (default: every element of the basis),
        for the dataset's DFT recipe (``data_prep.dft.atom_reference``): the reference of
        ``model.target_gauge=atoms|huckel``."""
        from data_prep.dft.atom_reference import onsite_table

        recipe = self.metadata.get("dft_recipe")
        if not recipe or not all(k in recipe for k in ("basis", "pseudo", "xc")):
            raise DataConfigError(f"{self.path}: model.target_gauge=atoms|huckel needs the dataset's DFT recipe "
                                  "(metadata.json dft_recipe: basis, pseudo, xc) and this dataset records none")
        elements = self.basis.elements if elements is None else elements
        return {str(z): block.tolist() for z, block in onsite_table(recipe, elements).items()}

    def block_statistics(self, max_structures: int = 2000, target_gauge: str = "raw", decay: bool = True,
                         atom_onsite: dict | None = None, huckel_k: float = HUCKEL_K, combine: bool = True) -> dict:
        """Output scale/shift tables of the training split (``models.block_scale.block_statistics``), from at
        most ``max_structures`` structures (a fixed, seeded subset when the split is larger), of the targets
        in ``target_gauge`` (``models.gauge.gauge_targets``: each gauge has its own on-site shifts; ``atoms`` and
        ``huckel`` need ``atom_onsite``, ``atom_onsite_table``); ``decay``: fit the hoppings' fall-off with bond
        length; ``combine``: fill the pairs the split does not bond by ``combine_unseen_pairs``."""
        from .models.block_scale import block_statistics
        from .models.gauge import ATOM_GAUGES, atom_reference_tensor, gauge_targets

        idx = self.split_indices("train")
        if not idx:
            raise DataConfigError(f"{self.path}: the train split is empty")
        if len(idx) > max_structures:
            rng = np.random.default_rng(self.split_seed)
            idx = sorted(rng.choice(idx, size=max_structures, replace=False).tolist())
        graphs = LmdbGraphDataset(self.path, idx, dtype=torch.float64, basis=self.basis)
        atoms = None
        if target_gauge in ATOM_GAUGES:
            atoms = atom_reference_tensor(atom_onsite or self.atom_onsite_table(), self.basis)

        def target(k):
            g = graphs[k]
            gauge_targets(g, self.basis, target_gauge, atoms, huckel_k)
            return g

        return block_statistics((target(k) for k in range(len(graphs))), self.basis, decay=decay, combine=combine)

    def training_bonds(self) -> dict:
        """The train split's nearest-neighbour bonds per element pair (``data_prep.bonds.bond_table``)."""
        from data_prep.bonds import RECORD_FIELDS, bond_table, record_bonds

        return bond_table(record_bonds(self.records.fields(i, RECORD_FIELDS)) for i in self.split_indices("train"))

    def padded_sizes(self, split: str) -> np.ndarray:
        """Matrix elements each structure occupies in the model ((atoms + edges) · M²)."""
        meta = self.metadata
        idx = np.asarray(self.split_indices(split), dtype=np.int64)
        blocks = np.asarray(meta["n_atoms"])[idx] + np.asarray(meta["n_edges"])[idx]
        return blocks * self.basis.n_union**2

    def _world(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 0, 1
        return trainer.global_rank, trainer.world_size

    def _progress(self) -> int:
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 0
        return trainer.fit_loop.epoch_loop.batch_progress.current.processed

    def train_sampler(self) -> BudgetBatchSampler:
        rank, world = self._world()
        return BudgetBatchSampler(
            self.padded_sizes("train"), self.global_budget, shuffle=True, seed=self.seed, rank=rank,
            world_size=world, max_structures=self.max_structures, min_structures=self.min_structures,
        )

    def num_train_batches(self) -> int:
        """Optimizer steps in the first epoch (packing varies slightly from epoch to epoch)."""
        return len(self.train_sampler())

    def _epoch(self) -> int:
        """The epoch the fit loop is starting (what Lightning passes to the sampler's ``set_epoch``)."""
        trainer = getattr(self, "trainer", None)
        return 0 if trainer is None else int(trainer.fit_loop.epoch_progress.current.processed)

    def _loader(self, split: str, budget: int, shuffle: bool) -> DataLoader:
        if split not in self.datasets:
            self.setup()
        ds = self.datasets[split]
        if len(ds) == 0:
            raise DataConfigError(f"{self.path}: the {split} split is empty")
        rank, world = self._world()
        sampler = BudgetBatchSampler(
            self.padded_sizes(split), budget, shuffle=shuffle, seed=self.seed, rank=rank, world_size=world,
            max_structures=self.max_structures, min_structures=self.min_structures,
        )
        if split == "train":
            # Packing varies by epoch and Lightning takes an epoch's length from len(loader) when the loader is
            # made, so the trainer rebuilds it every epoch (reload_dataloaders_every_n_epochs: 1) and its length
            # must be that of the epoch it serves; with a stale length Lightning skips or cuts batches.
            sampler.set_epoch(self._epoch())
        cls = ResumableDataLoader if split == "train" else DataLoader
        extra = {"progress": self._progress} if split == "train" else {}
        return cls(
            ds,
            batch_sampler=sampler,
            collate_fn=collate,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
            **extra,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.global_budget, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.val_budget, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.val_budget, shuffle=False)
