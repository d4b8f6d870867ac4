"""Readers and datasets. `open_rasters` turns `--data` into readable rasters of the selected bands."""

from __future__ import annotations

from pathlib import Path

from rs_ssl.bands import BandSelection
from rs_ssl.data.sentinel2 import Sentinel2Scene, is_band_folder
from rs_ssl.errors import DataError, UsageError

SAMPLE_DIR = Path(__file__).resolve().parent.parent / "sample_data"


def sample_path() -> Path:
    """The embedded 13-band Sentinel-2 L1C sample (used when no --data is given)."""
    return SAMPLE_DIR


def detect_format(path: Path) -> str:
    """Name the layout of `path` (only per-band Sentinel-2 scene folders so far)."""
    if is_band_folder(path):
        return "sentinel2"
    subdirs = [p for p in sorted(path.iterdir()) if p.is_dir()] if path.is_dir() else []
    if subdirs and all(is_band_folder(p) for p in subdirs):
        return "sentinel2"
    raise DataError(
        f"{path}: format not recognised. Supported here: a folder of per-band Sentinel-2 files "
        "(*_B01.tif ... *_B12.tif, B8A) or a folder of such folders. Name it with --format if detection fails"
    )


def open_rasters(data: str | Path | None, fmt: str, selection: BandSelection, skip_bad: bool = False) -> tuple[list, dict]:
    """Open `--data` as a list of windowed rasters; returns (rasters, info for metrics.json)."""
    path = Path(data) if data else sample_path()
    if not path.exists():
        raise UsageError(f"--data {path}: no such file or folder")
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt != "sentinel2":
        raise UsageError(f"--format {fmt}: not supported yet; supported: auto, sentinel2")
    folders = [path] if is_band_folder(path) else [p for p in sorted(path.iterdir()) if p.is_dir()]
    rasters, skipped = [], []
    for folder in folders:
        try:
            rasters.append(Sentinel2Scene(folder, selection))
        except DataError as e:
            if not skip_bad:
                raise
            skipped.append(str(e))
    if not rasters:
        raise DataError(f"{path}: no readable scene" + (f" ({len(skipped)} skipped)" if skipped else ""))
    info = {"data": str(path), "format": fmt, "rasters": len(rasters), "skipped": len(skipped), "skipped_reasons": skipped}
    return rasters, info


def pretrain_dataset(data: str | Path | None, fmt: str, selection: BandSelection, *, patch: int,
                     samples_per_epoch: int, seed: int = 0, region: str | None = None,
                     skip_bad: bool = False):
    """The unlabelled training set for `rs-ssl pretrain`: returns (dataset, info for metrics.json).

    Georeferenced rasters give `samples_per_epoch` seeded random patches (restricted to `region`);
    each item is `{"image": float32 (C, patch, patch)}` in digital numbers, bands in `selection` order.
    """
    from rs_ssl.data.patches import RandomPatchDataset
    from rs_ssl.data.regions import restrict_to_region

    rasters, info = open_rasters(data, fmt, selection, skip_bad=skip_bad)
    allowed = restrict_to_region(rasters, region, patch) if region else None
    dataset = RandomPatchDataset(rasters, patch, samples_per_epoch, seed=seed, allowed=allowed)
    return dataset, info
