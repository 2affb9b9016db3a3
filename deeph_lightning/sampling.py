"""Size-balanced, DDP-aware, resumable batching of structures by a budget of matrix elements.

Every rank builds the same *global* batches (seeded by ``seed`` and the epoch), packing shuffled
structures until the global budget of matrix elements is reached (and at least
``max(min_structures, world_size)`` structures are in the batch); each global batch is then split into
``world_size`` parts of nearly equal size, and rank r takes part r. So one optimizer step sees the same structures whatever the
number of ranks, and the per-rank batch size is the global budget divided by the world size.

The sampler is stateful: ``state_dict()`` records the epoch and how many batches were consumed, and
after ``load_state_dict`` the next iteration of that epoch skips them (exact mid-epoch resume).
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np


def pack_global_batches(
    sizes: Sequence[int], budget: int, order: np.ndarray, min_structures: int = 1, max_structures: int | None = None
) -> list[list[int]]:
    """Greedy packing of positions ``order`` (into ``sizes``) into batches of total size <= budget.

    A batch always takes at least ``min_structures`` structures (a single structure larger than the
    budget forms a batch of its own); a trailing batch with fewer than ``min_structures`` is dropped.
    """
    batches: list[list[int]] = []
    cur: list[int] = []
    total = 0
    for i in order:
        s = int(sizes[i])
        full = cur and total + s > budget and len(cur) >= min_structures
        if full or (max_structures and len(cur) >= max_structures):
            batches.append(cur)
            cur, total = [], 0
        cur.append(int(i))
        total += s
    if len(cur) >= min_structures:
        batches.append(cur)
    return batches


def split_for_ranks(batch: list[int], sizes: Sequence[int], world_size: int) -> list[list[int]]:
    """Split one global batch into ``world_size`` non-empty parts of balanced total size (greedy LPT)."""
    if len(batch) < world_size:
        raise ValueError(f"a global batch of {len(batch)} structures cannot be split over {world_size} ranks")
    parts: list[list[int]] = [[] for _ in range(world_size)]
    loads = np.zeros(world_size)
    by_size = sorted(batch, key=lambda i: (-int(sizes[i]), i))
    # first give every rank one structure (largest first), then always fill the lightest rank
    for r, i in enumerate(by_size[:world_size]):
        parts[r].append(i)
        loads[r] += sizes[i]
    for i in by_size[world_size:]:
        r = int(np.argmin(loads))
        parts[r].append(i)
        loads[r] += sizes[i]
    return [sorted(p) for p in parts]


class BudgetBatchSampler:
    """Batch sampler over dataset positions 0..len(sizes)-1 (yields lists of positions for this rank)."""

    def __init__(
        self,
        sizes: Sequence[int],
        budget: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        max_structures: int | None = None,
        min_structures: int = 1,
    ):
        if budget <= 0:
            raise ValueError(f"batch budget must be positive, got {budget}")
        if len(sizes) < world_size:
            raise ValueError(f"{len(sizes)} structures cannot feed {world_size} ranks (need at least one each)")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world of size {world_size}")
        self.sizes = np.asarray(sizes, dtype=np.int64)
        self.budget = int(budget)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.max_structures = max_structures
        # every global batch must feed every rank; set min_structures >= world size on all runs that
        # should see identical global batches (e.g. comparing DDP with one process)
        self.min_structures = max(int(min_structures), self.world_size)
        self.epoch = 0
        self.consumed = 0  # batches of the current epoch already handed to the training loop
        self._skip: tuple[int, int] | None = None  # (epoch, batches) to skip after a resume

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    @property
    def sampler(self) -> "BudgetBatchSampler":
        # Lightning calls set_epoch on ``dataloader.batch_sampler.sampler`` (not on the batch sampler).
        return self

    def global_batches(self, epoch: int | None = None) -> list[list[int]]:
        epoch = self.epoch if epoch is None else epoch
        n = len(self.sizes)
        order = np.random.default_rng([self.seed, epoch]).permutation(n) if self.shuffle else np.arange(n)
        return pack_global_batches(self.sizes, self.budget, order, self.min_structures, self.max_structures)

    def __len__(self) -> int:
        return len(self.global_batches())

    def __iter__(self) -> Iterator[list[int]]:
        batches = self.global_batches()
        start = 0
        if self._skip is not None:
            if self._skip[0] == self.epoch:
                # every iterator of the resumed epoch skips (Lightning may create one it then discards)
                start = self._skip[1]
            elif self.epoch > self._skip[0]:
                self._skip = None
        self.consumed = start
        for b in batches[start:]:
            yield split_for_ranks(b, self.sizes, self.world_size)[self.rank]

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "consumed": self.consumed, "seed": self.seed, "world_size": self.world_size}

    def load_state_dict(self, state: dict) -> None:
        # Global batches do not depend on the world size, so a run may resume on another number of ranks.
        self._skip = (int(state["epoch"]), int(state["consumed"]))
