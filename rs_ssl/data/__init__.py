"""Readers and datasets: `--data PATH` (any supported format) -> torch datasets of DN patches.

Entry points: `pretrain_dataset` (unlabelled, for `rs-ssl pretrain`), `labelled_dataset` (for probe
and fine-tune), `open_rasters`, `detect_format`, `scan` (the records of a dataset).
"""

from __future__ import annotations

from pathlib import Path

from rs_ssl.bands import BandSelection
from rs_ssl.data.catalog import FORMATS, Catalog, Record, detect_format, scan
from rs_ssl.errors import DataError, UsageError

SAMPLE_DIR = Path(__file__).resolve().parent.parent / "sample_data"

__all__ = ["FORMATS", "Catalog", "Record", "detect_format", "labelled_dataset", "open_rasters",
           "pretrain_dataset", "sample_path", "scan"]


def sample_path() -> Path:
    """The embedded 13-band Sentinel-2 L1C sample (used when no --data is given)."""
    return SAMPLE_DIR


def _catalog(data: str | Path | None, fmt: str, selection: BandSelection, zoom: int | None) -> Catalog:
    path = data if data is not None and "://" in str(data) else Path(data) if data else sample_path()
    if isinstance(path, Path) and not path.exists():
        raise UsageError(f"--data {path}: no such file or folder")
    if fmt not in ("auto", *FORMATS):
        raise UsageError(f"--format {fmt}: unknown; choose auto or one of {', '.join(FORMATS)}")
    return scan(path, fmt, zoom=zoom, sensor=selection.sensor.key)


def _info(cat: Catalog, key: str, n: int, skipped: list[str]) -> dict:
    return {"data": str(cat.root), "format": cat.format, key: n, "skipped": len(skipped), "skipped_reasons": skipped}


def open_rasters(data: str | Path | None, fmt: str, selection: BandSelection, skip_bad: bool = False,
                 zoom: int | None = None) -> tuple[list, dict]:
    """Open `--data` (a georeferenced raster format) as windowed rasters; returns (rasters, info)."""
    from rs_ssl.data.datasets import open_rasters as _open

    cat = _catalog(data, fmt, selection, zoom)
    if cat.kind != "rasters":
        raise UsageError(f"--data {cat.root}: a {cat.format} dataset of patches, not large rasters")
    rasters, skipped = _open(cat, selection, skip_bad)
    if not rasters:
        raise DataError(f"{cat.root}: no readable raster" + (f" ({len(skipped)} skipped)" if skipped else ""))
    return rasters, _info(cat, "rasters", len(rasters), skipped)


def pretrain_dataset(data: str | Path | None, fmt: str, selection: BandSelection, *, patch: int,
                     samples_per_epoch: int, seed: int = 0, region: str | None = None,
                     skip_bad: bool = False, subset: int | None = None, zoom: int | None = None,
                     zarr_aligned: bool = True):
    """The unlabelled training set for `rs-ssl pretrain`: returns (dataset, info for metrics.json).

    Large georeferenced rasters give `samples_per_epoch` seeded random patches (restricted to
    `region`; from a zarr raster, at chunk-aligned positions unless `zarr_aligned` is False, so
    that a chunk-sized patch is one chunk decode); patch and image datasets give every sample (or a seeded `subset` of them), resized
    to `patch` when their native size differs. Each item is `{"image": float32 (C, patch, patch)}`
    in digital numbers, bands in `selection` order. A patch or sample with NaN values or nodata
    in every pixel stops training, or with `skip_bad` is replaced and counted in the dataset's
    `bad_reads.total`.
    """
    from rs_ssl.data import datasets as D
    from rs_ssl.data.patches import RandomPatchDataset
    from rs_ssl.data.regions import restrict_to_region

    cat = _catalog(data, fmt, selection, zoom)
    if cat.kind == "rasters":
        rasters, skipped = D.open_rasters(cat, selection, skip_bad)
        if not rasters:
            raise DataError(f"{cat.root}: no readable raster ({len(skipped)} skipped)")
        allowed = restrict_to_region(rasters, region, patch) if region else None
        dataset = RandomPatchDataset(rasters, patch, samples_per_epoch, seed=seed, allowed=allowed,
                                     align=zarr_aligned and cat.format == "zarr",
                                     nodata=selection.sensor.nodata, skip_bad=skip_bad)
        return dataset, _info(cat, "rasters", len(rasters), skipped)
    records = D.subset(cat.records, subset, seed)
    records, skipped = D.check_records(cat, records, selection, skip_bad)
    if region:
        from rs_ssl.data.regions import records_in_region

        records = records_in_region(cat, records, selection, region)
    if not records:
        raise DataError(f"{cat.root}: no readable sample ({len(skipped)} skipped)")
    info = _info(cat, "samples", len(records), skipped)
    return D.SampleDataset(cat, records, selection, patch, nodata=selection.sensor.nodata, skip_bad=skip_bad), info


def labelled_dataset(data: str | Path | None, fmt: str, selection: BandSelection, *, split: str | None,
                     patch: int, level: int = 1, skip_bad: bool = False, zoom: int | None = None):
    """A labelled dataset for probing/fine-tuning: returns (dataset, info).

    Items are `{"image": float32 (C, patch, patch) DN, "label": ...}`: a LongTensor class index
    (single-label) or a FloatTensor multi-hot vector (multi-label, BigEarthNet's 19 classes; v1's
    43 with `level=2`). The dataset has `classes` and `multilabel`. `split` is train, val or test
    (BigEarthNet: metadata.parquet or CSV lists; MillionAID: its train/test folders; trees without
    splits: a fixed 60/20/20 split by file name); None takes every labelled sample. `level` is the
    MillionAID hierarchy level (1: 8 classes, 2: 28, 3: 51 leaves).
    """
    from rs_ssl.data import datasets as D

    cat = _catalog(data, fmt, selection, zoom)
    if cat.kind != "samples":
        raise UsageError(f"--data {cat.root}: {cat.format} rasters carry no labels; use a labelled dataset "
                         "(BigEarthNet, MillionAID, a class-folder tree, a labelled zarr or manifest)")
    classes = cat.classes if cat.classes and level == 1 else cat.label_names(level)
    records = [r for r in D.select_split(cat.records, split) if r.labels or r.hierarchy]
    records, skipped = D.check_records(cat, records, selection, skip_bad)
    if not records:
        raise DataError(f"{cat.root}: no labelled sample in split {split!r}")
    ds = D.LabelledDataset(cat, records, selection, patch, classes, level)
    info = _info(cat, "samples", len(records), skipped) | {"split": split, "classes": len(classes), "multilabel": cat.multilabel}
    return ds, info
