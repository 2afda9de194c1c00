"""Deterministic training batches: what a resumed (or multi-process) run must see identically.

Each epoch's order is a seeded permutation of the training set (split across processes), and each
image's augmentation draws from a seed of (run seed, epoch, index). A run resumed from a mid-epoch
checkpoint therefore sees exactly the batches the uninterrupted run would have seen, whatever the
number of loader workers.
"""
from __future__ import annotations

import math

import torch
from torch.utils.data import Dataset


def _mix(*values: int) -> int:
    """A 63-bit seed from integers (splitmix-style, so nearby inputs give unrelated seeds)."""
    x = 0x9E3779B97F4A7C15
    for v in values:
        x ^= (int(v) + 0x9E3779B97F4A7C15 + (x << 6) + (x >> 2)) & 0xFFFFFFFFFFFFFFFF
        x = (x * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
        x ^= x >> 31
    return x & 0x7FFFFFFFFFFFFFFF


class SeededAugmentation(Dataset):
    """Wraps a dataset whose ``__getitem__`` draws random augmentations from torch's global RNG:
    item ``i`` of epoch ``e`` is produced under the seed (seed, e, i), leaving the caller's RNG as it was."""

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset = dataset
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, i: int):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_mix(self.seed, self.epoch, i))
            return self.dataset[i]


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int, rank: int = 0, world_size: int = 1,
                  fraction: float = 1.0, drop_last: bool = True) -> list[list[int]]:
    """This process's batches of one epoch (index lists).

    The permutation depends only on (seed, epoch). With several processes it is cut to a multiple
    of ``world_size`` and process ``rank`` takes every ``world_size``-th item, so all processes run
    the same number of steps. ``fraction`` < 1 keeps the first part of the epoch (the papers' 0.2).
    ``drop_last`` drops a final short batch when there is at least one full one.
    """
    if n < 1:
        return []
    g = torch.Generator().manual_seed(_mix(seed, epoch, 0xB47C4))
    order = torch.randperm(n, generator=g).tolist()
    if world_size > 1:
        per = n // world_size
        if per == 0:
            raise ValueError(f"{n} training images cannot be shared by {world_size} processes")
        order = order[:per * world_size][rank::world_size]
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if drop_last and len(batches) > 1 and len(batches[-1]) < batch_size:
        batches = batches[:-1]
    keep = max(1, math.ceil(len(batches) * fraction))
    return batches[:keep]
