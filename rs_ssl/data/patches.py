"""Map-style patch datasets over large rasters: random (seeded) or grid windows, read lazily."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import torch
from rasterio.windows import Window
from torch.utils.data import Dataset

from rs_ssl.errors import DataError


class WindowedRaster(Protocol):
    """Anything with a pixel grid that can read `(C, h, w)` float32 windows (e.g. Sentinel2Scene)."""

    grid: object

    def read(self, window: Window | None = None) -> np.ndarray: ...


class RandomPatchDataset(Dataset):
    """`length` square patches at seeded random positions over one or more rasters.

    Patch `i` of epoch `e` is a pure function of (seed, e, i), so a resumed run that restores
    the epoch and position reads exactly the patches the interrupted run would have read.
    Rasters are picked with probability proportional to their area. `windows_ok` optionally
    restricts positions to those for which it returns True (used for --region).
    """

    def __init__(self, rasters: Sequence[WindowedRaster], patch: int, length: int, seed: int = 0,
                 allowed: Sequence[np.ndarray] | None = None):
        self.rasters = list(rasters)
        self.patch = patch
        self.length = length
        self.seed = seed
        self.epoch = 0
        for r in self.rasters:
            if r.grid.width < patch or r.grid.height < patch:
                raise DataError(f"{r}: {r.grid.width}x{r.grid.height} px is smaller than the {patch} px patch; lower --size")
        # allowed[k] is a boolean (rows, cols) mask of valid top-left corners for raster k.
        self.allowed = list(allowed) if allowed is not None else None
        if self.allowed is not None:
            weights = np.array([m.sum() for m in self.allowed], dtype=np.float64)
        else:
            weights = np.array([(r.grid.width - patch + 1) * (r.grid.height - patch + 1) for r in self.rasters], dtype=np.float64)
        if weights.sum() == 0:
            raise DataError("no patch position is available (is the region outside the data?)")
        self.weights = weights / weights.sum()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def position(self, index: int) -> tuple[int, int, int]:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        k = int(rng.choice(len(self.rasters), p=self.weights))
        g = self.rasters[k].grid
        if self.allowed is not None:
            rows, cols = np.nonzero(self.allowed[k])
            j = int(rng.integers(len(rows)))
            return k, int(rows[j]), int(cols[j])
        return k, int(rng.integers(g.height - self.patch + 1)), int(rng.integers(g.width - self.patch + 1))

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        k, row, col = self.position(index)
        img = self.rasters[k].read(Window(col, row, self.patch, self.patch))
        return {"image": torch.from_numpy(np.ascontiguousarray(img))}


class GridPatchDataset(Dataset):
    """Every patch of a regular grid (stride in pixels) over one or more rasters, in order."""

    def __init__(self, rasters: Sequence[WindowedRaster], patch: int, stride: int | None = None):
        self.rasters = list(rasters)
        self.patch = patch
        stride = stride or patch
        self.index = [
            (k, row, col)
            for k, r in enumerate(self.rasters)
            for row in range(0, r.grid.height - patch + 1, stride)
            for col in range(0, r.grid.width - patch + 1, stride)
        ]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        k, row, col = self.index[index]
        img = self.rasters[k].read(Window(col, row, self.patch, self.patch))
        return {"image": torch.from_numpy(np.ascontiguousarray(img)), "position": torch.tensor([k, row, col])}
