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


MAX_REDRAWS = 50


def bad_patch(img: np.ndarray, nodata: float | None, check_nan: bool = True) -> str | None:
    """Why a patch is unusable for training (NaN pixels, or nodata in every pixel of every band), else None."""
    if check_nan and np.isnan(img).any():
        return f"{int(np.isnan(img).sum())} NaN value(s)"
    if nodata is not None and (not img.any() if nodata == 0 else bool((img == nodata).all())):
        return f"every pixel is nodata ({nodata:g})"
    return None


class BadReadCounter:
    """Bad patches replaced under --skip-bad, summed over DataLoader workers (shared memory, a slot each)."""

    def __init__(self, slots: int = 257):
        self._n = torch.zeros(slots, dtype=torch.int64).share_memory_()

    def add(self) -> None:
        info = torch.utils.data.get_worker_info()
        slot = 0 if info is None else 1 + info.id % (len(self._n) - 1)
        self._n[slot] += 1

    @property
    def total(self) -> int:
        return int(self._n.sum())


class RandomPatchDataset(Dataset):
    """`length` square patches at seeded random positions over one or more rasters.

    Patch `i` of epoch `e` is a pure function of (seed, e, i), so a resumed run that restores
    the epoch and position reads exactly the patches the interrupted run would have read.
    Rasters are picked with probability proportional to their number of patch positions.
    `allowed[k]` optionally restricts raster k's top-left corners to a boolean (rows, cols) mask
    (used for --region). With `align`, corners of rasters that have a `chunk_shape` (zarr stores)
    are multiples of it, so a chunk-sized patch is one chunk read and decompression instead of up
    to four (the default for zarr in `pretrain_dataset`; crops and flips in augmentation still
    vary the views).

    A patch with NaN values, or nodata (`nodata`, e.g. 0 DN for Sentinel-2) in every pixel of every
    band, stops training with a DataError naming the raster and window; with `skip_bad` it is
    replaced by another seeded draw (still a pure function of seed, epoch, index) and counted in
    `bad_reads`.
    """

    def __init__(
        self,
        rasters: Sequence[WindowedRaster],
        patch: int,
        length: int,
        seed: int = 0,
        allowed: Sequence[np.ndarray] | None = None,
        align: bool = False,
        nodata: float | None = None,
        skip_bad: bool = False,
    ):
        self.rasters = list(rasters)
        self.nodata, self.skip_bad = nodata, skip_bad
        self.bad_reads = BadReadCounter()
        # Integer pixels cannot hold NaN: skip that scan (Sentinel2Scene is uint16 DN read as float).
        self._nan = [str(getattr(r, "dtype", "float32")).startswith("float") for r in self.rasters]
        self.patch = patch
        self.length = length
        self.seed = seed
        self.epoch = 0
        # Corner step (rows, cols) per raster: 1 px, or the chunk shape when aligning.
        self.steps = [
            tuple(getattr(r, "chunk_shape", (1, 1))) if align else (1, 1) for r in self.rasters
        ]
        for r in self.rasters:
            if r.grid.width < patch or r.grid.height < patch:
                raise DataError(
                    f"{r}: {r.grid.width}x{r.grid.height} px is smaller than the {patch} px patch; lower --size"
                )
        # allowed[k] is a boolean (rows, cols) mask of valid top-left corners for raster k.
        self.allowed = (
            [m[::sy, ::sx] for m, (sy, sx) in zip(allowed, self.steps, strict=True)]
            if allowed is not None
            else None
        )
        if self.allowed is not None:
            # Allowed corners counted up to the end of each row: the j-th corner (row-major, as
            # np.nonzero orders them) is then found with one binary search and one row scan per
            # item instead of a scan of the whole mask.
            self._row_cdf = [np.cumsum(m.sum(axis=1, dtype=np.int64)) for m in self.allowed]
            weights = np.array([c[-1] if len(c) else 0 for c in self._row_cdf], dtype=np.float64)
        else:
            weights = np.array(
                [
                    ((r.grid.width - patch) // sx + 1) * ((r.grid.height - patch) // sy + 1)
                    for r, (sy, sx) in zip(self.rasters, self.steps, strict=True)
                ],
                dtype=np.float64,
            )
        if weights.sum() == 0:
            raise DataError("no patch position is available (is the region outside the data?)")
        self.weights = weights / weights.sum()
        self._cdf = np.cumsum(self.weights)
        self._cdf /= self._cdf[-1]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def position(self, index: int, attempt: int = 0) -> tuple[int, int, int]:
        """(raster, row, col) of patch `index` in this epoch; `attempt` > 0: its replacements under skip_bad."""
        rng = np.random.default_rng([self.seed, self.epoch, index] + ([attempt] if attempt else []))
        # The draw of rng.choice(len(rasters), p=weights), without its per-call validation cost.
        k = int(np.searchsorted(self._cdf, rng.random(), side="right"))
        g = self.rasters[k].grid
        sy, sx = self.steps[k]
        if self.allowed is not None:
            row_cdf = self._row_cdf[k]
            j = int(rng.integers(int(row_cdf[-1])))
            r = int(np.searchsorted(row_cdf, j, side="right"))
            c = int(np.flatnonzero(self.allowed[k][r])[j - (int(row_cdf[r - 1]) if r else 0)])
            return k, r * sy, c * sx
        row = int(rng.integers((g.height - self.patch) // sy + 1)) * sy
        return k, row, int(rng.integers((g.width - self.patch) // sx + 1)) * sx

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        from rs_ssl.data.readers import MIN_VALID

        transparent = 0
        for attempt in range(MAX_REDRAWS + 1):
            k, row, col = self.position(index, attempt)
            window = Window(col, row, self.patch, self.patch)
            try:
                if getattr(self.rasters[k], "alpha", None) is not None:
                    img, valid = self.rasters[k].read_masked(window)
                    if valid.mean() < MIN_VALID:  # edge of the imaged area: redrawn, not an error
                        transparent += 1
                        problem = f"{100 * (1 - valid.mean()):.0f}% of its pixels transparent"
                        where = f"{self.rasters[k].name}: patch at row {row}, col {col} ({self.patch} px)"
                        continue
                else:
                    img = self.rasters[k].read(window)
                problem = bad_patch(img, self.nodata, self._nan[k])
            except (
                DataError
            ) as e:  # truncated or corrupt pixels: with skip_bad, redrawn like a bad patch
                if not self.skip_bad:
                    raise
                problem = str(e)
            if problem is None:
                return {"image": torch.from_numpy(np.ascontiguousarray(img))}
            where = f"{self.rasters[k].name}: patch at row {row}, col {col} ({self.patch} px)"
            if not self.skip_bad:
                raise DataError(
                    f"{where}: {problem}; pass --skip-bad to draw another patch instead (counted in metrics.json)"
                )
            self.bad_reads.add()
        if transparent == MAX_REDRAWS + 1:
            raise DataError(
                f"{where}: {problem} (alpha 0, or a missing tile), and so were {MAX_REDRAWS} "
                f"redraws: less than {MIN_VALID:.0%} of almost every patch is imaged. Choose "
                "--region (or --zoom) over the imaged area, or check the tiles"
            )
        raise DataError(
            f"{where}: {problem}, and so were {MAX_REDRAWS} redraws; is the data mostly nodata? "
            "Restrict it with --region or check the files with `rs-ssl manifest --check`"
        )


class GridPatchDataset(Dataset):
    """Every patch of a regular grid (stride in pixels) over one or more rasters, in order; or, with
    `positions`, just those `(raster, row, col)` patches (e.g. the labelled cells of a polygon layer)."""

    def __init__(
        self,
        rasters: Sequence[WindowedRaster],
        patch: int,
        stride: int | None = None,
        positions: Sequence[tuple[int, int, int]] | None = None,
    ):
        self.rasters = list(rasters)
        self.patch = patch
        stride = stride or patch
        self.index = (
            list(positions)
            if positions is not None
            else [
                (k, row, col)
                for k, r in enumerate(self.rasters)
                for row in range(0, r.grid.height - patch + 1, stride)
                for col in range(0, r.grid.width - patch + 1, stride)
            ]
        )

    def __len__(self) -> int:
        return len(self.index)

    def read(self, index: int) -> np.ndarray:
        """The (C, patch, patch) pixels of patch `index`, in the raster's dtype."""
        k, row, col = self.index[index]
        return self.rasters[k].read(Window(col, row, self.patch, self.patch))

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {
            "image": torch.from_numpy(np.ascontiguousarray(self.read(index))),
            "position": torch.tensor(self.index[index]),
        }
