"""Sentinel-2 scenes stored as one raster per band, resampled by bounds onto one 10 m grid.

Handles plain folders (`*_B01.tif` ... `*_B8A.tif`, `.tif/.tiff/.jp2`, also `B1.tif` as written by
SSL4EO-S12) and SAFE products (`GRANULE/*/IMG_DATA`, L2A's `R10m/R20m/R60m` subfolders, where the
finest copy of each band is used: an L2A product is one 12-band scene). A folder holding files of
several acquisitions gives one scene per acquisition (as TorchGeo's `Sentinel2` indexes them).
Files that are not bands (`preview.tif`, `TCI`, `SCL`, quicklooks) and Landsat files are ignored.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.transform import Affine
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from rs_ssl.bands import BandSelection, canonical_band_name
from rs_ssl.data.base import Catalog, Format, Grid, Record, Source
from rs_ssl.data.handles import OPEN
from rs_ssl.errors import DataError

RASTER_SUFFIXES = (".tif", ".tiff", ".jp2")
# `..._B8A.tif`, `s2_B01.tif`, `B1.tif`, `T33UUP_20200601T100031_B04_10m.jp2`; the band token must be
# preceded by start/`_` and followed by `.`/`_<res>m`, so `preview.tif` or `TCI` never match.
_BAND_FILE = re.compile(r"(?:^|_)(B(?:0?[1-9]|1[0-2]|8A))(?:_(\d+)m)?$", re.IGNORECASE)


# Landsat Collection 2 product IDs (`LC08_L2SP_023032_20210622_20210629_02_T1_SR_B1`): read by
# rs_ssl.data.landsat, never as Sentinel-2 (`SR_B1` would otherwise look like `B01`).
LANDSAT_ID = re.compile(r"^L[COTEM]0\d_L\d", re.IGNORECASE)
_RES_DIR = re.compile(r"^R\d+m$")


def is_safe(folder: Path) -> bool:
    """A SAFE product folder (`*.SAFE`, or one holding `manifest.safe`)."""
    folder = Path(folder)
    return folder.is_dir() and (
        folder.name.upper().endswith(".SAFE") or (folder / "manifest.safe").is_file()
    )


def image_roots(folder: Path) -> list[list[Path]]:
    """The folders holding band files, one list per granule: a SAFE product's
    `GRANULE/*/IMG_DATA` (with L2A's `R10m/R20m/R60m`), also when its `GRANULE` folder, a granule
    or an `IMG_DATA` is given, or `folder` itself.

    A SAFE product without a granule folder is a DataError naming it."""
    folder = Path(folder)
    granules = sorted(folder.glob("GRANULE/*/IMG_DATA"))
    if not granules and folder.name.upper() == "GRANULE":  # a SAFE's GRANULE folder given
        granules = sorted(folder.glob("*/IMG_DATA"))
    if not granules and (folder / "IMG_DATA").is_dir():  # one granule folder given
        granules = [folder / "IMG_DATA"]
    if not granules and is_safe(folder):
        raise DataError(
            f"{folder}: SAFE product without GRANULE/<granule>/IMG_DATA (the granule folder is "
            "missing: an incomplete download or extraction); re-extract the product, or pass "
            "--skip-bad to leave it out"
        )
    tops = granules or [folder]
    return [
        [top] + sorted(p for p in top.iterdir() if p.is_dir() and _RES_DIR.match(p.name))
        for top in tops
    ]


def _band_entries(roots: list[Path]) -> list[tuple[str, str, float, Path]]:
    """(acquisition prefix, band, resolution, file) of every Sentinel-2 band file in `roots`."""
    out = []
    for root in roots:
        for path in sorted(root.iterdir()):
            if path.suffix.lower() not in RASTER_SUFFIXES or not path.is_file():
                continue
            if LANDSAT_ID.match(path.name):
                continue
            m = _BAND_FILE.search(path.stem)
            if not m:
                continue
            res = float(m.group(2)) if m.group(2) else 0.0
            out.append((path.stem[: m.start()], canonical_band_name(m.group(1)), res, path))
    return out


def _finest(entries) -> dict[str, Path]:
    # L2A SAFE stores e.g. B02 at 10, 20 and 60 m: keep the finest copy.
    found: dict[str, tuple[float, Path]] = {}
    for _, name, res, path in entries:
        if name not in found or res < found[name][0]:
            found[name] = (res, path)
    return {name: p for name, (_, p) in found.items()}


def acquisitions(folder: Path) -> dict[str, dict[str, Path]]:
    """The scenes of a band folder or SAFE product: `{scene path: {band: file}}`, one per acquisition.

    Files of one acquisition share the name before the band token (`T26EMU_20220414T110751`); a
    folder holding several (TorchGeo's SAFE fixtures, a granule downloaded twice) gives one scene
    each, named `<folder>/<prefix>`; a folder of one acquisition is its own scene path. Names that
    group into single bands are not acquisitions: such a folder is one scene, as before.
    """
    folder = Path(folder)
    out: dict[str, dict[str, Path]] = {}
    for roots in image_roots(folder):
        entries = _band_entries(roots)
        groups: dict[str, list] = {}
        for e in entries:
            groups.setdefault(e[0], []).append(e)
        by_prefix = {k: {e[1] for e in v} for k, v in groups.items()}
        if len(groups) > 1 and all(len(b) >= 2 for b in by_prefix.values()):
            for prefix, es in groups.items():
                out[str(roots[0] / prefix)] = _finest(es)
        elif entries:
            out[str(roots[0])] = _finest(entries)
    if len(out) == 1:
        return {str(folder): next(iter(out.values()))}
    return out


def band_files(path: Path) -> dict[str, Path]:
    """Map canonical Sentinel-2 band names to the files of one scene: a folder (or SAFE product)
    of one acquisition, or a scene path `<folder>/<prefix>` named by `acquisitions`."""
    path = Path(path)
    if not path.is_dir() and path.parent.is_dir():
        roots = [path.parent] + sorted(
            p for p in path.parent.iterdir() if p.is_dir() and _RES_DIR.match(p.name)
        )
        return _finest(e for e in _band_entries(roots) if e[0] == path.name)
    scenes = acquisitions(path)
    if len(scenes) > 1:
        raise DataError(
            f"{path}: holds {len(scenes)} acquisitions ({', '.join(Path(s).name for s in scenes)}); "
            "each is a scene: point --data at the folder above it to list them"
        )
    return next(iter(scenes.values()), {})


def is_band_folder(folder: Path) -> bool:
    """True when `folder` holds at least two Sentinel-2 band files of one acquisition."""
    try:
        return Path(folder).is_dir() and any(
            len(f) >= 2 for f in acquisitions(Path(folder)).values()
        )
    except (OSError, DataError):
        return False


def check_band_extents(bands: list[tuple[Path, Affine, tuple]]) -> None:
    """DataError naming a band file (path, transform, bounds) that covers another area than the others.

    The 10/20/60 m grids of one scene may be offset by part of a coarse pixel (as in the bundled
    scene), not more: a band covering another area would silently shrink the scene to the overlap.
    """
    tol = max(max(abs(t.a), abs(t.e)) for _, t, _ in bands)
    median = np.median([tuple(b) for _, _, b in bands], axis=0)
    for path, _, b in bands:
        if np.abs(np.subtract(tuple(b), median)).max() > tol:
            raise DataError(
                f"{path}: covers ({', '.join(f'{v:.10g}' for v in b)}) while the scene's other band files "
                f"cover ({', '.join(f'{v:.10g}' for v in median)}) (left, bottom, right, top); "
                "replace it with a band file of the same scene extent"
            )


class Sentinel2Scene:
    """One scene, one file per band, read as float32 `(C, H, W)` windows on the finest band's grid.

    The output grid is the grid of the finest-resolution selected band, clipped to the area covered
    by every selected band. Coarser bands are resampled onto it by their georeferenced bounds
    (bilinear), so sub-pixel offsets between the 10/20/60 m grids are honoured rather than ignored.
    Values are digital numbers as stored (uint16 for L1C/L2A), converted to float32.
    """

    def __init__(
        self, folder: str | Path, selection: BandSelection, files: dict[str, Path] | None = None
    ):
        self.folder = Path(folder)
        self.selection = selection
        files = band_files(self.folder) if files is None else files
        missing = [n for n in selection.names if n not in files]
        if missing:
            have = ", ".join(sorted(files)) or "none"
            raise DataError(
                f"{self.folder}: band(s) {', '.join(missing)} not found (this scene has: {have}); "
                f"choose --bands among those"
            )
        self.files = [files[n] for n in selection.names]
        self._datasets: list | None = None
        self._vrts: list | None = None
        self.grid = self._common_grid()

    def _common_grid(self) -> Grid:
        metas = []
        for name, path in zip(self.selection.names, self.files, strict=True):
            try:
                with rasterio.open(path) as src:
                    if src.count != 1:
                        raise DataError(f"{path}: expected 1 band for {name}, found {src.count}")
                    if src.crs is None:
                        raise DataError(
                            f"{path}: no CRS; per-band Sentinel-2 files must be georeferenced"
                        )
                    if src.transform.b != 0 or src.transform.d != 0:
                        raise DataError(f"{path}: rotated rasters are not supported")
                    metas.append((path, src.crs, src.transform, src.bounds))
            except rasterio.errors.RasterioIOError as e:
                raise DataError(f"{path}: cannot be read as a raster ({e})") from None
            except UnicodeEncodeError:  # GDAL takes UTF-8 paths; Linux file names may be any bytes
                shown = os.fsencode(path).decode("utf-8", "backslashreplace")
                raise DataError(f"{shown}: file name is not valid UTF-8; rename the file") from None
        crss = {m[1] for m in metas}
        if len(crss) > 1:
            raise DataError(
                f"{self.folder}: band files have different CRSs ({', '.join(map(str, crss))})"
            )
        check_band_extents([(m[0], m[2], m[3]) for m in metas])
        finest = min(metas, key=lambda m: m[2].a)
        # x and y pixel sizes differ in geographic CRSs (SSL4EO-S12 is stored in EPSG:4326).
        res, yres = finest[2].a, -finest[2].e
        left = max(m[3].left for m in metas)
        bottom = max(m[3].bottom for m in metas)
        right = min(m[3].right for m in metas)
        top = min(m[3].top for m in metas)
        # Snap the intersection inwards to the finest band's own pixel grid.
        x0, y0 = finest[2].c, finest[2].f
        col0 = int(np.ceil(round((left - x0) / res, 6)))
        col1 = int(np.floor(round((right - x0) / res, 6)))
        row0 = int(np.ceil(round((y0 - top) / yres, 6)))
        row1 = int(np.floor(round((y0 - bottom) / yres, 6)))
        if col1 <= col0 or row1 <= row0:
            raise DataError(f"{self.folder}: the band files do not overlap")
        transform = Affine(res, 0.0, x0 + col0 * res, 0.0, -yres, y0 - row0 * yres)
        return Grid(crs=finest[1], transform=transform, width=col1 - col0, height=row1 - row0)

    def _open(self) -> list:
        # Opened lazily and per process: rasterio handles must not cross DataLoader worker forks.
        if self._vrts is None:
            self._datasets = [rasterio.open(p) for p in self.files]
            self._vrts = [
                WarpedVRT(
                    src,
                    crs=self.grid.crs,
                    transform=self.grid.transform,
                    width=self.grid.width,
                    height=self.grid.height,
                    resampling=Resampling.nearest
                    if src.transform.a == self.grid.res and src.transform.e == self.grid.transform.e
                    else Resampling.bilinear,
                    src_nodata=src.nodata,
                    nodata=src.nodata,
                )
                for src in self._datasets
            ]
        return self._vrts

    def read(self, window: Window | None = None) -> np.ndarray:
        """Read a window of the common grid (all of it by default) as float32 `(C, h, w)`."""
        vrts = self._open()
        OPEN.used(self)  # bounds the files a process keeps open
        out = []
        for path, vrt in zip(self.files, vrts, strict=True):
            try:
                out.append(vrt.read(1, window=window).astype(np.float32, copy=False))
            except rasterio.errors.RasterioIOError as e:
                raise DataError(
                    f"{path}: read failed ({e}); the file may be truncated or corrupt"
                ) from None
        return np.stack(out)

    def close(self) -> None:
        for h in (self._vrts or []) + (self._datasets or []):
            h.close()
        self._vrts = self._datasets = None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_datasets"] = state["_vrts"] = None
        return state

    def __repr__(self) -> str:
        g = self.grid
        return f"Sentinel2Scene({self.folder}, bands={len(self.selection)}, {g.width}x{g.height} @ {g.res:g} m, {g.crs})"


def _scene_folders(path: Path) -> list[Path]:
    subdirs = [p for p in sorted(path.iterdir()) if p.is_dir() and not p.name.startswith(".")]
    ok = subdirs and all(is_band_folder(p) or is_safe(p) for p in subdirs)
    return subdirs if ok and any(is_band_folder(p) for p in subdirs) else []


def _detect(src: Source) -> bool:
    if not src.inner.is_dir():
        return False
    return is_safe(src.inner) or is_band_folder(src.inner) or bool(_scene_folders(src.inner))


def _product_sensor(paths: list[str]) -> str | None:
    """s2_l2a / s2_l1c when every scene lies in a SAFE product (or granule) of that level."""
    levels = set()
    for p in paths:
        m = re.search(r"MSI(L1C|L2A)|(?:^|/)(L1C|L2A)_T\d", p)
        levels.add((m.group(1) or m.group(2)) if m else None)
    return {"L2A": "s2_l2a", "L1C": "s2_l1c"}.get(levels.pop()) if len(levels) == 1 else None


def _scan(src: Source) -> Catalog:
    folders = (
        [src.inner]
        if is_band_folder(src.inner) or is_safe(src.inner)
        else _scene_folders(src.inner)
    )
    records, problems = [], []
    for folder in folders:
        try:
            scenes = acquisitions(folder)
        except DataError as e:
            if not src.skip_bad:
                raise
            problems.append(str(e))
            continue
        records += [Record(p) for p in scenes]
    notes = {"scan_problems": problems} if problems else {}
    return Catalog(
        src.root,
        "sentinel2",
        records,
        kind="rasters",
        notes=notes,
        sensor=_product_sensor([r.path for r in records]),
    )


FORMAT = Format(
    "sentinel2",
    _detect,
    _scan,
    kind="rasters",
    band_folders=True,
    files_of=band_files,
    describe="a Sentinel-2 scene (one file per band, or a SAFE product), or a folder of them",
)
