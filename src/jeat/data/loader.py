"""An in-memory batch stream whose order is a pure function of (seed, epoch, rank).

Because the permutation and augmentation of epoch e are derived from ``seed + e``, a run
resumed at (epoch, step) sees exactly the batches the uninterrupted run would have seen,
without saving iterator state. Under DDP each rank takes an equal strided share.

``replays = m > 1`` (Free AT, methods/free.py) yields each batch m times in a row, the same
augmented images each time, and counts epochs as Free AT's paper does: epoch e is slice e mod m
of data pass e // m, so an epoch has as many steps as a natural one (the batches of a pass that
do not fill m equal slices, at most m - 1, are left out of that pass).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from .augment import augment
from .sources import ImageSet


class BatchStream:
    def __init__(
        self,
        data: ImageSet,
        batch_size: int,
        shuffle: bool = True,
        augmentation: str = "none",
        seed: int = 0,
        drop_last: bool = True,
        rank: int = 0,
        world_size: int = 1,
        replays: int = 1,
    ):
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if replays < 1:
            raise ValueError(f"replays must be >= 1, got {replays}")
        self.replays = replays
        self.data, self.batch_size, self.shuffle = data, batch_size, shuffle
        self.augmentation, self.seed, self.drop_last = augmentation, seed, drop_last
        self.rank, self.world_size = rank, world_size
        per_rank = len(data) // world_size if drop_last else -(-len(data) // world_size)
        self._per_rank = per_rank
        if drop_last and per_rank < batch_size:
            raise ValueError(f"{len(data)} examples are fewer than one batch of {batch_size} per rank")
        if replays > 1 and self._batches() < replays:
            raise ValueError(f"{self._batches()} batches per pass cannot be split into {replays} replayed slices")

    def _batches(self) -> int:
        """Batches in one pass over the data (per rank)."""
        if self.drop_last:
            return self._per_rank // self.batch_size
        return -(-self._per_rank // self.batch_size)

    def __len__(self) -> int:
        if self.replays > 1:
            return self._batches() // self.replays * self.replays
        return self._batches()

    def epoch(self, epoch: int, start_step: int = 0) -> Iterator[tuple[Tensor, Tensor]]:
        """Batches of epoch ``epoch`` from ``start_step`` on: float images in [0, 1], labels."""
        m = self.replays
        data_pass, part = divmod(epoch, m)  # replays == 1: the pass is the epoch
        gen = torch.Generator().manual_seed(self.seed * 100_003 + data_pass)
        n = len(self.data)
        order = torch.randperm(n, generator=gen) if self.shuffle else torch.arange(n)
        order = order[self.rank :: self.world_size][: self._per_rank]
        per_slice = len(self) // m
        for step in range(len(self)):
            b = part * per_slice + step // m  # the batch of this pass (replays: m steps each)
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            # One generator per batch: resuming at step s reproduces batch s's augmentation, and a
            # replayed batch is the same images each time.
            bgen = torch.Generator().manual_seed(self.seed * 1_000_003 + data_pass * 10_007 + b * 131 + self.rank)
            if step < start_step:
                continue
            x = self.data.images[idx].float().div_(255)
            yield augment(x, self.augmentation, bgen), self.data.labels[idx]


def to_device(batches, device: torch.device, memory_format):
    """Move batches to the device; on CUDA copy from pinned memory one batch ahead."""
    if device.type != "cuda":
        for x, y in batches:
            yield x.to(device).contiguous(memory_format=memory_format), y.to(device)
        return

    def move(b):
        x, y = b
        x = x.pin_memory().to(device, non_blocking=True).contiguous(memory_format=memory_format)
        return x, y.pin_memory().to(device, non_blocking=True)

    it = iter(batches)
    nxt = next(it, None)
    nxt = move(nxt) if nxt is not None else None
    while nxt is not None:
        cur = nxt
        b = next(it, None)
        nxt = move(b) if b is not None else None
        yield cur
