"""Base types of the data layer: `Record`, `Catalog`, `Grid`, `Source` and `Format`.

This module imports nothing else of `rs_ssl.data`, so that every format module, the registry and
the datasets can depend on it without a cycle (see tests/test_data_layering.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rs_ssl.errors import UsageError

# Split names live in one torch-free table shared with the CLI; re-exported for the data layer.
from rs_ssl.split_names import (  # noqa: F401
    SPLIT_ALIASES,
    SPLIT_ORDER,
    canonical_split,
    split_sort_key,
)

IMAGE_SUFFIXES = (".tif", ".tiff", ".jpg", ".jpeg", ".png", ".jp2")


@dataclass(frozen=True)
class Record:
    """One raster, image or patch (a file, or a folder of per-band files) and what is known about it."""

    path: str
    labels: tuple[str, ...] = ()  # class(es): one for single-label data, several for multi-label
    splits: tuple[
        str, ...
    ] = ()  # every split the sample belongs to (TorchGeo's fixtures list some in several)
    group: str | None = None  # samples of one place (SSL4EO-S12 location): dates of a positive pair
    hierarchy: tuple[str, ...] = ()  # MillionAID: (level-1, level-2, leaf) class names
    fine: tuple[str, ...] = ()  # BigEarthNet v1: the original 43-class labels
    index: int | None = None  # sample index inside a zarr store

    @property
    def split(self) -> str | None:
        """The split when the sample belongs to exactly one, else None."""
        return self.splits[0] if len(self.splits) == 1 else None


@dataclass
class Catalog:
    """The records of one dataset and how to read them."""

    root: Path
    format: str
    records: list[Record]
    multilabel: bool = False
    classes: list[str] | None = None  # a fixed nomenclature (BigEarthNet); else the labels found
    layout: str | None = None  # band order of files without band names (e.g. "eurosat")
    notes: dict = field(default_factory=dict)
    kind: str = "samples"  # "samples" (one item each) or "rasters" (patches cut by a sampler)
    levels: dict[int, list[str]] | None = (
        None  # fixed class names per label level (BigEarthNet 19 / 43)
    )
    sensor: str | None = None  # band registry key when the dataset fixes it (BigEarthNet: s2_l2a)

    def label_names(self, level: int = 1) -> list[str]:
        """Class names at `level` (MillionAID hierarchy level; BigEarthNet: 1 = 19 classes, 2 = 43)."""
        if self.levels is not None:
            if level not in self.levels:
                raise UsageError(
                    f"--level {level}: {self.format} data {self.root} has label level(s) "
                    f"{', '.join(map(str, sorted(self.levels)))}" + self.notes.get("level_hint", "")
                )
            return list(self.levels[level])
        return sorted({lab for r in self.records for lab in record_labels(r, level)})

    def split_counts(self) -> dict[str, int]:
        """Samples per split (a sample listed in several splits counts in each)."""
        out: dict[str, int] = {}
        for r in self.records:
            for s in r.splits:
                out[s] = out.get(s, 0) + 1
        return dict(sorted(out.items(), key=lambda kv: split_sort_key(kv[0])))


def scan_problems(catalog: Catalog) -> list[str]:
    """What the scan left out under --skip-bad (empty split folders, incomplete scenes)."""
    return list(catalog.notes.get("split_problems", [])) + list(
        catalog.notes.get("scan_problems", [])
    )


def record_labels(r: Record, level: int = 1) -> tuple[str, ...]:
    """The labels of a record at a hierarchy level (MillionAID leaves without level 2 keep the leaf)."""
    if r.hierarchy:
        if not 1 <= level <= 3:
            raise UsageError(f"--level {level}: MillionAID has levels 1, 2 and 3")
        l1, l2, leaf = r.hierarchy
        return ((l1, l2 or leaf, leaf)[level - 1],)
    if level == 2 and r.fine:
        return r.fine
    return r.labels


@dataclass(frozen=True)
class Grid:
    """A north-up pixel grid: CRS, affine transform and size."""

    crs: Any
    transform: Any
    width: int
    height: int

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        t = self.transform
        return (t.c, t.f + t.e * self.height, t.c + t.a * self.width, t.f)

    @property
    def res(self) -> float:
        return self.transform.a


@dataclass(frozen=True)
class Source:
    """What a user pointed `--data` at: the path as given, the data folder inside it, and options.

    `inner` is `root` with wrapper folders skipped (folders whose only data is one folder);
    `chain` lists the folders from `root` down to `inner`, where split lists are looked for.
    """

    root: Path
    inner: Path
    chain: tuple[Path, ...]
    sensor: str | None = None
    zoom: int | None = None
    skip_bad: bool = False


@dataclass(frozen=True)
class Format:
    """One input format: how to recognise it, list its records and what its records are.

    `detect(source)` looks at folder names and a few headers only; `scan(source)` returns the
    catalog. `band_folders`: each record is a folder of per-band files (read as a scene);
    `labelled`: records carry labels; `sensor`: the band registry key of the data when it is fixed
    (BigEarthNet: s2_l2a); `files_of`: the band files of a `band_folders` record; `open`: the reader of one record when not a multi-band file;
    `mosaic`: the one reader of a catalog of tiles.
    """

    name: str
    detect: Callable[[Source], bool]
    scan: Callable[[Source], Catalog]
    kind: str = "samples"
    labelled: bool = False
    band_folders: bool = False
    sensor: str | None = None
    describe: str = ""
    open: Callable[..., Any] | None = (
        None  # (catalog, record, selection) -> reader; default: a stacked raster
    )
    mosaic: Callable[..., Any] | None = (
        None  # (catalog, selection, skip_bad) -> (one reader of all records, skipped) (tile folders)
    )
    chunk_aligned: bool = (
        False  # random patches at chunk-aligned positions (zarr: one chunk decode each)
    )
    describe_record: Callable[..., dict] | None = (
        None  # manifest facts of a record not stored as files
    )
    decode_record: Callable[..., None] | None = None  # `manifest --check` of such a record
    georef: Callable[..., dict] | None = (
        None  # manifest `crs`/`bounds` of a record whose file has none (XYZ tiles: from z/x/y)
    )
    files_of: Callable[..., dict] | None = (
        None  # band_folders: scene path -> {band name: file} (Sentinel-2, Landsat)
    )
