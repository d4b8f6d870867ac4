"""The registry of input formats, in detection order, and the two entry points `detect_format`/`scan`.

Adding a format is one module defining a `Format` (see `rs_ssl.data.base`), one line in `FORMATS`
below, and its tests. Detection looks at the data inside the root a user passes: wrapper folders,
archives, checksums, READMEs and split lists are skipped (`rs_ssl.data.roots`).
"""

from __future__ import annotations

from pathlib import Path

from rs_ssl.data import (
    bigearthnet,
    folders,
    geotiff,
    landsat,
    manifest_file,
    sentinel2,
    ssl4eo,
    tiles,
    zarr_store,
)
from rs_ssl.data.base import Catalog, Format, Source
from rs_ssl.data.roots import data_children, only_archives, source
from rs_ssl.errors import DataError, UsageError

# Detection order: the first format whose `detect` accepts the source wins. Specific layouts come
# before general ones (a folder of SSL4EO date folders is also a folder of Sentinel-2 scenes; a
# class-folder tree is also a nested tree of images).
FORMATS: tuple[Format, ...] = (
    manifest_file.FORMAT,
    zarr_store.FORMAT,
    bigearthnet.FORMAT,
    ssl4eo.FORMAT,
    landsat.FORMAT,
    sentinel2.FORMAT,
    tiles.XYZ,
    tiles.TMS,
    folders.MILLIONAID,
    tiles.TILES,
    folders.FOLDER,
    geotiff.FORMAT,
    folders.IMAGES,
)
NAMES = tuple(f.name for f in FORMATS)
_BY_NAME = {f.name: f for f in FORMATS}


def get_format(name: str) -> Format:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise UsageError(
            f"--format {name}: unknown; choose auto or one of {', '.join(NAMES)}"
        ) from None


def _source(path: Path, sensor: str | None, zoom: int | None, skip_bad: bool) -> Source:
    if not path.exists():
        raise UsageError(f"--data {path}: no such file or folder")
    return source(path, sensor=sensor, zoom=zoom, skip_bad=skip_bad)


def detect(src: Source) -> Format:
    """The format of a source; DataError saying what the folder holds when none fits."""
    if src.root.is_file() and not any(f.detect(src) for f in FORMATS):
        raise DataError(f"{src.root}: not a raster, a .vrt or a manifest.parquet")
    for f in FORMATS:
        if f.detect(src):
            return f
    archives = only_archives(src.inner)
    if archives:
        raise DataError(
            f"{src.inner}: holds only archives ({', '.join(p.name for p in archives[:4])}); "
            "extract them (e.g. unzip / tar xf, joining split parts first) and point --data at the result"
        )
    if not data_children(src.inner):
        raise DataError(
            f"{src.root}: empty folder"
            + (
                f" (its data folder {src.inner} holds nothing readable)"
                if src.inner != src.root
                else ""
            )
        )
    raise DataError(
        f"{src.root}: format not recognised. Supported: {', '.join(NAMES)} (see README, Data section); "
        "name it with --format if detection fails"
    )


def detect_format(path: Path) -> str:
    """Name the layout of `path` from its files and folder structure."""
    path = Path(path)
    if "://" in str(path):
        return "zarr"
    return detect(_source(path, None, None, False)).name


def scan(
    data: str | Path,
    fmt: str = "auto",
    *,
    zoom: int | None = None,
    sensor: str | None = None,
    skip_bad: bool = False,
) -> Catalog:
    """List the records of `data` in format `fmt` (`auto`: detected); `sensor` picks an SSL4EO-S12 modality."""
    if fmt != "auto":
        get_format(fmt)
    if "://" in str(data):  # a zarr store by URL (not a local Path)
        if fmt not in ("auto", "zarr"):
            raise UsageError(f"--data {data}: a URL is read as a zarr store, not --format {fmt}")
        return zarr_store.scan_zarr(data)
    src = _source(Path(data), sensor, zoom, skip_bad)
    f = detect(src) if fmt == "auto" else get_format(fmt)
    cat = f.scan(src)
    if not cat.records:
        raise DataError(
            f"{src.root}: no {f.name} data found: looked for {f.describe} in {src.inner}; "
            "check the folder, or leave --format auto to detect the layout"
        )
    return cat
