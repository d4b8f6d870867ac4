"""Windowed readers of one raster or one sample, with the file's bands mapped to the selected bands.

Every reader has `.name` (for messages), `.grid` (a `Grid`; its CRS is None for images without
georeference) and `.read(window=None) -> float32 (C, h, w)` in the file's digital numbers, bands in
`selection.names` order.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import rasterio
import torch
import torch.nn.functional as F
from rasterio.enums import ColorInterp
from rasterio.windows import Window

from rs_ssl.bands import BandSelection, canonical_band_name, sensors
from rs_ssl.data.handles import OPEN
from rs_ssl.data.sentinel2 import Grid, Sentinel2Scene, band_files
from rs_ssl.errors import DataError

# Bands that may be absent from a product and are then filled with zeros: Sentinel-2 L2A products
# (BigEarthNet, SSL4EO-S12 s2a, 12-band stacks) have no B10 (cirrus, top of atmosphere only), so a
# 13-band L1C model reads them with B10 = 0 DN, i.e. zero reflectance (documented in README).
FILLABLE = frozenset({"B10"})

# EuroSAT-MS stores B8A last (torchgeo's EuroSAT.all_band_names; on the bundled sample the band at
# index 9 has the smallest DN, as the cirrus band B10 must).
EUROSAT_ORDER = (
    "B01",
    "B02",
    "B03",
    "B04",
    "B05",
    "B06",
    "B07",
    "B08",
    "B09",
    "B10",
    "B11",
    "B12",
    "B8A",
)
LAYOUTS = {"eurosat": EUROSAT_ORDER}

# JPEGs are decoded by PIL, not GDAL: with 4:2:0 chroma subsampling the two decoders upsample chroma
# differently (up to 9 DN apart on AID's scenes), and PIL's pixels are what timm, torchvision and
# TorchGeo users train on (tests/test_data_roots.py compares them).
JPEG_SUFFIXES = (".jpg", ".jpeg")


def _known_names() -> set[str]:
    return {n for s in sensors().values() for n in s.names}


def file_band_names(
    name: str, count: int, descriptions, colorinterp, layout: str | None = None
) -> tuple[str, ...]:
    """Names of the bands stored in a multi-band file, in file order.

    From the band descriptions when they are band names; else the RGB colour interpretation
    (R, G, B); else a known `layout`; else the sensor registered for the count. A last band of
    colour interpretation alpha is no band: readers use it as the validity mask (`alpha_index`).
    """
    if alpha_index(colorinterp) is not None:  # a validity mask (XYZ PNG tiles), not a band
        count, descriptions, colorinterp = count - 1, descriptions[:-1], colorinterp[:-1]
    known = _known_names()
    desc = [canonical_band_name(d) if d else "" for d in descriptions]
    if desc and all(d in known for d in desc):
        return tuple(desc)
    ci = tuple(colorinterp)
    if ci[:3] == (ColorInterp.red, ColorInterp.green, ColorInterp.blue):
        return ("R", "G", "B", *(f"extra{i}" for i in range(3, count)))
    if layout is not None:
        order = LAYOUTS[layout]
        if len(order) != count:
            raise DataError(
                f"{name}: {count} bands, but the {layout} layout has {len(order)} ({','.join(order)})"
            )
        return order
    from rs_ssl.manifests import load_yaml

    by_count = {int(k): v for k, v in load_yaml("bands.yaml")["band_counts"].items()}
    if count in by_count:
        return sensors()[by_count[count]].names
    raise DataError(
        f"{name}: {count} bands without band names in its metadata; only {', '.join(map(str, sorted(by_count)))}-band "
        "files are read without names. Set the band descriptions (e.g. gdal_edit.py -mo / rasterio "
        "set_band_description) to names such as B02"
    )


def alpha_index(colorinterp) -> int | None:
    """1-based index of an alpha band when it is the last of several (RGBA, gray+alpha), else None."""
    ci = tuple(colorinterp)
    return len(ci) if len(ci) >= 2 and ci[-1] == ColorInterp.alpha else None


# A random patch with less than this fraction of opaque pixels is redrawn (XYZ tiles at the edge
# of the imaged area, missing tiles): mostly transparent patches teach the model the background.
MIN_VALID = 0.5


def band_indexes(name: str, have: tuple[str, ...], selection: BandSelection) -> list[int | None]:
    """1-based file band index per selected band (None: zero-filled); DataError naming what the file has."""
    missing = [n for n in selection.names if n not in have and n not in FILLABLE]
    if missing:
        raise DataError(
            f"{name}: band(s) {', '.join(missing)} not found (this file has: {', '.join(have)}); "
            "choose --bands among those"
        )
    return [have.index(n) + 1 if n in have else None for n in selection.names]


def open_raster(path: str):
    """rasterio.open without the not-georeferenced warning; DataError naming the file on failure."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        try:
            return rasterio.open(path)
        except rasterio.errors.RasterioIOError as e:
            label = "VRT mosaic" if path.lstrip().startswith("<") else path
            raise DataError(f"{label}: cannot be opened as a raster ({e})") from None
        except UnicodeEncodeError:  # GDAL takes UTF-8 paths; Linux file names may be any bytes
            raise DataError(
                f"{printable(path)}: file name is not valid UTF-8; rename the file"
            ) from None


def crs_name(crs) -> str | None:
    """`EPSG:32633`, or the WKT of a CRS without an EPSG code; None without a CRS."""
    if not crs:
        return None
    c = rasterio.crs.CRS.from_user_input(crs)
    epsg = c.to_epsg()
    return f"EPSG:{epsg}" if epsg else c.to_wkt()


def printable(path) -> str:
    """A path for messages: bytes that are not UTF-8 (os.fsdecode surrogates) shown as \\xNN escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


class StackedRaster:
    """A multi-band raster file (GeoTIFF, COG, VRT, PNG/JPG), read with windowed reads."""

    def __init__(
        self,
        path: str | Path,
        selection: BandSelection,
        *,
        layout: str | None = None,
        name: str | None = None,
        read_once: bool = False,
    ):
        """`read_once`: the caller reads in this process and closes the reader (a dataset item), so
        the handle that read the header is kept for that read instead of the file being opened
        twice. Off for readers that DataLoader workers inherit, which must open their own."""
        self.path = str(path)
        self.name = name or self.path
        self.selection = selection
        self._src = None
        src = open_raster(self.path)
        try:
            dtypes = set(src.dtypes)
            if len(dtypes) > 1:
                raise DataError(f"{self.name}: bands of mixed dtypes ({', '.join(sorted(dtypes))})")
            self.dtype = src.dtypes[0]
            self.nodata = src.nodata
            self.band_names = file_band_names(
                self.name, src.count, src.descriptions, src.colorinterp, layout
            )
            self.indexes = band_indexes(self.name, self.band_names, selection)
            self.alpha = alpha_index(src.colorinterp)
            georef = src.crs is not None and not src.transform.is_identity
            self._pil = (
                self.path.lower().endswith(JPEG_SUFFIXES)
                and src.count in (1, 3)
                and self.dtype == "uint8"
            )
            self.grid = Grid(
                crs=src.crs if georef else None,
                transform=src.transform,
                width=src.width,
                height=src.height,
            )
            if georef and (src.transform.b != 0 or src.transform.d != 0):
                raise DataError(f"{self.name}: rotated rasters are not supported")
        except BaseException:
            src.close()
            raise
        if read_once and not self._pil:
            self._src = src
            OPEN.used(self)
        else:
            src.close()

    def read(self, window: Window | None = None) -> np.ndarray:
        idx = [i for i in self.indexes if i is not None]
        if self._pil:  # PIL decodes the JPEG: no GDAL handle is needed
            return fill_zeros(pil_read(self.name, self.path, idx, window), self.indexes)
        if self._src is None:  # opened lazily and per process (DataLoader workers fork)
            self._src = open_raster(self.path)
        OPEN.used(self)  # bounds the files a process keeps open
        try:
            data = self._src.read(idx, window=window, out_dtype="float32")
        except rasterio.errors.RasterioIOError as e:
            raise DataError(
                f"{self.name}: read failed ({e}); the file may be truncated or corrupt"
            ) from None
        return fill_zeros(data, self.indexes)

    def read_masked(self, window: Window | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """`read(window)` and the validity mask of its pixels (alpha > 0), None without alpha;
        transparent pixels read as 0."""
        if self.alpha is None:
            return self.read(window), None
        data = self.read(window)
        try:
            valid = self._src.read(self.alpha, window=window) > 0
        except rasterio.errors.RasterioIOError as e:
            raise DataError(
                f"{self.name}: read failed ({e}); the file may be truncated or corrupt"
            ) from None
        data[:, ~valid] = 0
        return data, valid

    def close(self) -> None:
        if self._src is not None:
            self._src.close()
            self._src = None

    def __getstate__(self) -> dict:
        return self.__dict__ | {"_src": None}

    def __repr__(self) -> str:
        g = self.grid
        return f"StackedRaster({self.name}, bands={len(self.selection)}, {g.width}x{g.height}, {g.crs})"


def pil_read(name: str, path: str, indexes: list[int], window: Window | None = None) -> np.ndarray:
    """Bands `indexes` (1-based) of a JPEG decoded by PIL, as float32 `(C, h, w)` of `window`."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB") if im.mode not in ("L", "RGB") else im)
    except (OSError, UnidentifiedImageError) as e:
        raise DataError(
            f"{name}: JPEG decoding failed ({e}); the file may be truncated or corrupt"
        ) from None
    arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    if window is not None:
        r0, c0 = int(window.row_off), int(window.col_off)
        arr = arr[:, r0 : r0 + int(window.height), c0 : c0 + int(window.width)]
    return arr[[i - 1 for i in indexes]].astype(np.float32)


def fill_zeros(data: np.ndarray, indexes: list) -> np.ndarray:
    """Insert zero bands where `indexes` is None (data holds the other bands in order)."""
    if all(i is not None for i in indexes):
        return data
    out = np.zeros((len(indexes), *data.shape[1:]), dtype=np.float32)
    k = 0
    for j, i in enumerate(indexes):
        if i is not None:
            out[j] = data[k]
            k += 1
    return out


class FilledScene:
    """A per-band scene lacking only fillable bands (B10 of L2A): the others read, the rest zeros."""

    def __init__(
        self,
        folder: Path,
        selection: BandSelection,
        present: tuple[str, ...],
        files: dict | None = None,
    ):
        self.inner = Sentinel2Scene(folder, BandSelection(selection.sensor, present), files)
        self.name = str(folder)
        self.selection = selection
        self.indexes = [1 if n in present else None for n in selection.names]
        self.grid = self.inner.grid
        self.files = self.inner.files

    def read(self, window: Window | None = None) -> np.ndarray:
        return fill_zeros(self.inner.read(window), self.indexes)

    def close(self) -> None:
        self.inner.close()


def open_scene(folder: str | Path, selection: BandSelection, files: dict | None = None):
    """A per-band scene (Sentinel-2 folder, or the band `files` of a Landsat scene) as a reader; a
    missing B10 is zero-filled (see `zero_filled`), other gaps are errors."""
    folder = Path(folder)
    files = band_files(folder) if files is None else files
    missing = [n for n in selection.names if n not in files]
    if missing and set(missing) <= FILLABLE:
        return FilledScene(
            folder, selection, tuple(n for n in selection.names if n in files), files
        )
    scene = Sentinel2Scene(folder, selection, files)
    scene.name = str(folder)
    return scene


def fit_to(img: np.ndarray, patch: int) -> torch.Tensor:
    """`(C, h, w)` -> float32 `(C, patch, patch)`: as is when it fits, else bilinear resize (antialiased)."""
    t = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32))
    if t.shape[-2:] == (patch, patch):
        return t
    return F.interpolate(
        t[None], size=(patch, patch), mode="bilinear", align_corners=False, antialias=True
    )[0]
