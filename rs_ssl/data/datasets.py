"""Map-style datasets over catalog records: one item per patch/image, optionally labelled."""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset

from rs_ssl.bands import BandSelection
from rs_ssl.data.base import SPLIT_ALIASES, Catalog, Record, record_labels
from rs_ssl.data.patches import MAX_REDRAWS, BadReadCounter, bad_patch
from rs_ssl.data.readers import StackedRaster, fit_to, open_scene
from rs_ssl.data.registry import get_format
from rs_ssl.errors import DataError, UsageError

__all__ = [
    "SPLIT_ALIASES",
    "LabelledDataset",
    "RecordSource",
    "SampleDataset",
    "TemporalPairDataset",
    "check_records",
    "open_record",
    "open_rasters",
    "select_split",
    "subset",
]


def open_record(
    catalog: Catalog, record: Record, selection: BandSelection, read_once: bool = False
):
    """A reader (`.grid`, `.read(window)`) for one record of the catalog.

    `read_once`: read in this process, then closed (see `StackedRaster`)."""
    fmt = get_format(catalog.format)
    if fmt.open is not None:
        return fmt.open(catalog, record, selection)
    if fmt.band_folders:
        return open_scene(Path(record.path), selection, fmt.files_of(Path(record.path)))
    return StackedRaster(record.path, selection, layout=catalog.layout, read_once=read_once)


def open_rasters(
    catalog: Catalog, selection: BandSelection, skip_bad: bool = False
) -> tuple[list, list[str]]:
    """The windowed rasters of a raster-format catalog (tile folders become one VRT mosaic)."""
    mosaic = get_format(catalog.format).mosaic
    if mosaic is not None:
        m, skipped = mosaic(catalog, selection, skip_bad)
        return [m], skipped
    rasters, skipped = [], []
    for r in catalog.records:
        try:
            rasters.append(open_record(catalog, r, selection))
        except DataError as e:
            if not skip_bad:
                raise
            skipped.append(str(e))
    # Digital numbers of files with another dtype (uint8 quicklooks among uint16 bands) are on
    # another scale: refuse them like `rs-ssl manifest` does (the majority dtype wins).
    dtypes = Counter(str(getattr(r, "dtype", "")) for r in rasters)
    common = dtypes.most_common(1)[0][0] if dtypes else ""
    for r in [r for r in rasters if str(getattr(r, "dtype", "")) != common]:
        msg = f"{r.name}: dtype {r.dtype} while most files are {common} (mixed dtypes)"
        if not skip_bad:
            raise DataError(f"{msg}; convert it to {common} or pass --skip-bad")
        skipped.append(msg)
        rasters.remove(r)
    return rasters, skipped


def check_records(
    catalog: Catalog, records: list[Record], selection: BandSelection, skip_bad: bool
) -> tuple[list[Record], list[str]]:
    """Open (headers only) every record with skip_bad, else the first; returns (kept, skip reasons)."""
    if not skip_bad:
        if records:
            open_record(catalog, records[0], selection)
        return records, []
    kept, skipped = [], []
    for r in records:
        try:
            open_record(catalog, r, selection)
            kept.append(r)
        except DataError as e:
            skipped.append(str(e))
    return kept, skipped


def select_split(records: list[Record], split: str | None) -> list[Record]:
    """Records of one split; trees without splits get a fixed 60/20/20 split by a hash of the file name."""
    if split is None:
        return records
    want = SPLIT_ALIASES.get(split)
    if want is None:
        raise UsageError(f"split {split!r}: use train, val/validation or test")
    if any(r.splits for r in records):
        return [r for r in records if want in r.splits]
    return [r for r in records if hash_split(r) == want]


def hash_split(r: Record) -> str:
    """train/validation/test (60/20/20) from a CRC32 of `<label>/<file name>`: stable across machines."""
    key = f"{'/'.join(r.labels)}/{Path(r.path).name}" if r.index is None else f"{r.path}[{r.index}]"
    k = zlib.crc32(key.encode("utf-8")) % 10
    return "train" if k < 6 else "validation" if k < 8 else "test"


def subset(records: list[Record], n: int | None, seed: int) -> list[Record]:
    """A seeded random subset of `n` records, in their original order (all when n is None)."""
    if n is None or n >= len(records):
        return records
    if n <= 0:
        raise UsageError(f"--subset {n}: must be positive")
    keep = np.sort(np.random.default_rng(seed).choice(len(records), size=n, replace=False))
    return [records[i] for i in keep]


class RecordSource(NamedTuple):
    """What a dataset reads: records of one catalog, each read with one band selection."""

    catalog: Catalog
    records: Sequence[Record]
    selection: BandSelection


class SampleDataset(Dataset):
    """One item per record, `{"image": float32 (C, patch, patch)}` in DN (resized when the native size differs).

    With `nodata` set, `__getitem__` checks each sample like RandomPatchDataset: NaN values or
    nodata everywhere raise a DataError naming the file, or with `skip_bad` the next good sample
    (in index order) is returned instead and counted in `bad_reads`.
    """

    def __init__(
        self,
        source: RecordSource,
        patch: int,
        nodata: float | None = None,
        skip_bad: bool = False,
    ):
        self.catalog, self.selection = source.catalog, source.selection
        self.records = list(source.records)
        self.patch = patch
        self.nodata, self.skip_bad = nodata, skip_bad
        self.bad_reads = BadReadCounter()

    def __len__(self) -> int:
        return len(self.records)

    def read(self, index: int) -> np.ndarray:
        reader = open_record(self.catalog, self.records[index], self.selection, read_once=True)
        try:
            return reader.read()
        finally:
            if hasattr(reader, "close"):
                reader.close()

    def checked_read(self, index: int) -> np.ndarray:
        """`read(index)`, checked for NaN/all-nodata when `nodata` is set (see the class docstring)."""
        if self.nodata is None:
            return self.read(index)
        for attempt in range(min(MAX_REDRAWS, len(self)) + 1):
            j = (index + attempt) % len(self)
            img = self.read(j)
            problem = bad_patch(img, self.nodata)
            if problem is None:
                return img
            if not self.skip_bad:
                r = self.records[j]
                name = (
                    r.path if r.index is None else f"{r.path}[{r.index}]"
                )  # a sample of a zarr stack
                raise DataError(
                    f"{name}: {problem}; pass --skip-bad to replace it by the next sample"
                )
            self.bad_reads.add()
        raise DataError(
            f"{self.records[index].path} and the {attempt} samples after it are unusable ({problem})"
        )

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"image": fit_to(self.checked_read(index), self.patch)}


class LabelledDataset(SampleDataset):
    """Items `{"image", "label"}`: a class index (LongTensor scalar) or a multi-hot FloatTensor."""

    def __init__(self, source: RecordSource, patch: int, classes: list[str], level: int = 1):
        super().__init__(source, patch)
        self.classes = list(classes)
        self.multilabel = self.catalog.multilabel
        self.level = level
        index = {c: i for i, c in enumerate(self.classes)}
        self.targets = []
        for r in self.records:
            labs = record_labels(r, level)
            unknown = [lab for lab in labs if lab not in index]
            if unknown:
                raise DataError(
                    f"{r.path}: label(s) {unknown} are not in the nomenclature ({len(self.classes)} classes)"
                )
            if self.multilabel:
                t = torch.zeros(len(self.classes), dtype=torch.float32)
                t[[index[lab] for lab in labs]] = 1.0
            else:
                t = torch.tensor(index[labs[0]], dtype=torch.long)
            self.targets.append(t)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"image": fit_to(self.read(index), self.patch), "label": self.targets[index]}


class TemporalPairDataset(SampleDataset):
    """Two dates of one place per item (`image`, `image2`): SSL4EO-S12's seasonal positive pairs.

    The pair of location `i` in epoch `e` is a pure function of (seed, e, i).
    """

    def __init__(self, source: RecordSource, patch: int, seed: int = 0):
        super().__init__(source, patch)
        groups: dict[str, list[int]] = {}
        for i, r in enumerate(self.records):
            groups.setdefault(r.group or r.path, []).append(i)
        self.groups = [g for g in groups.values() if len(g) >= 2]
        if not self.groups:
            raise DataError(
                f"{self.catalog.root}: no location with two or more dates; pairs need at least two"
            )
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.groups)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        a, b = rng.choice(self.groups[index], size=2, replace=False)
        return {
            "image": fit_to(self.read(int(a)), self.patch),
            "image2": fit_to(self.read(int(b)), self.patch),
        }
