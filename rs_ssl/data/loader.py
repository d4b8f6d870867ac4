"""A DataLoader whose data position survives checkpoints, so `--resume` continues mid-epoch."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Sampler


def _rank_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class EpochSampler(Sampler[int]):
    """Yields `0..n-1` in an order that is a pure function of (seed, epoch); can skip a prefix.

    Lightning calls `set_epoch` at every epoch start, before it creates the iterator; the epoch
    is passed on to `dataset.set_epoch` there, so that DataLoader workers (forked when the iterator
    is created, before any index is drawn) see it. `skip` drops the first samples of the resumed
    epoch, those whose optimiser steps the checkpoint already holds. Under DDP each rank takes every
    world-th index of the same permutation (and the same count on every rank).
    """

    def __init__(self, n: int, seed: int = 0, shuffle: bool = True, dataset=None):
        self.n, self.seed, self.shuffle = n, seed, shuffle
        self.dataset = dataset
        self.epoch = 0
        self._resume: tuple[int, int] | None = None  # (epoch, samples to skip)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def resume_at(self, epoch: int, skip: int) -> None:
        self._resume = (epoch, skip)

    def __iter__(self) -> Iterator[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        rank, world = _rank_world()
        order = order[rank : (self.n // world) * world : world]
        skip = 0
        if self._resume is not None and self._resume[0] == self.epoch:
            skip = self._resume[1]
            self._resume = None
        return iter(order[skip:])

    def __len__(self) -> int:
        return self.n // _rank_world()[1]


class ResumableLoader(DataLoader):
    """DataLoader with `state_dict`/`load_state_dict`, which Lightning saves in every checkpoint.

    `position` is set by the trainer's owner to return (epoch, optimiser-stepped batches in the
    epoch): the loader cannot count them itself because Lightning prefetches a batch ahead.
    """

    position: Callable[[], tuple[int, int]] | None = None

    def state_dict(self) -> dict[str, Any]:
        if self.position is None:
            return {}
        epoch, done = self.position()
        return {
            "epoch": int(epoch),
            "batches_done": int(done),
            "batch_size": int(self.batch_size or 1),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state and isinstance(self.sampler, EpochSampler):
            self.sampler.resume_at(state["epoch"], state["batches_done"] * state["batch_size"])
