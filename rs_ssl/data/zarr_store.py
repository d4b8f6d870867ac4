"""Chunked zarr stores: `(band, y, x)` rasters or `(sample, band, y, x)` patch stacks.

Layout written by `rs-ssl convert` (and read from any store that follows it): a group whose array
`data` carries the attributes `band_names`, `sensor`, and either `crs` (WKT) + `transform` (affine
a, b, c, d, e, f) for a raster, or per-sample lists `crs`, `transforms`, `paths`, `labels`, `split`
for a patch stack. A bare array with a `band_names` attribute is read the same way. Local paths and
fsspec URLs (`s3://...`, `gs://...`) are accepted. Chunks hold one patch with all its bands, so a
chunk-aligned patch is one decompression.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import Affine
from rasterio.windows import Window

from rs_ssl.bands import BandSelection
from rs_ssl.data.catalog import Catalog, Record
from rs_ssl.data.readers import band_indexes, fill_zeros
from rs_ssl.data.sentinel2 import Grid
from rs_ssl.errors import DataError


def open_array(path: str | Path):
    """The data array of a store (group member `data`, the group's only array, or a bare array)."""
    import zarr

    try:
        node = zarr.open(str(path), mode="r")
    except Exception as e:  # noqa: BLE001 - zarr/fsspec raise many types for missing or bad stores
        raise DataError(f"{path}: cannot be opened as a zarr store ({type(e).__name__}: {e})") from None
    if isinstance(node, zarr.Array):
        return node
    arrays = dict(node.arrays())
    if "data" in arrays:
        return arrays["data"]
    if len(arrays) == 1:
        return next(iter(arrays.values()))
    raise DataError(f"{path}: zarr group without a `data` array (arrays: {', '.join(arrays) or 'none'})")


def _attrs(arr, path) -> dict:
    attrs = dict(arr.attrs)
    if "band_names" not in attrs:
        raise DataError(f"{path}: zarr array has no `band_names` attribute; add one listing its {arr.shape[-3]} bands in order")
    if arr.ndim not in (3, 4):
        raise DataError(f"{path}: zarr array of shape {arr.shape}; expected (band, y, x) or (sample, band, y, x)")
    if len(attrs["band_names"]) != arr.shape[-3]:
        raise DataError(f"{path}: {len(attrs['band_names'])} band_names for {arr.shape[-3]} bands")
    return attrs


def scan_zarr(path: str | Path) -> Catalog:
    arr = open_array(path)
    attrs = _attrs(arr, path)
    if arr.ndim == 3:
        return Catalog(Path(str(path)), "zarr", [Record(str(path))], notes={"samples": False})
    n = arr.shape[0]
    labels = attrs.get("labels") or [[] for _ in range(n)]
    split = attrs.get("split") or [None] * n
    recs = [Record(str(path), labels=tuple(labels[i]), split=split[i], index=i) for i in range(n)]
    multilabel = bool(attrs.get("multilabel", False))
    return Catalog(Path(str(path)), "zarr", recs, multilabel=multilabel, classes=attrs.get("classes"), notes={"samples": True})


class ZarrRaster:
    """A `(band, y, x)` store as a windowed raster (the fast path of the training loader)."""

    def __init__(self, path: str | Path, selection: BandSelection):
        self.path = str(path)
        self.name = self.path
        arr = open_array(path)
        attrs = _attrs(arr, path)
        if arr.ndim != 3:
            raise DataError(f"{path}: a (sample, band, y, x) store, not a raster; it is read as samples")
        self.band_names = tuple(attrs["band_names"])
        self.indexes = band_indexes(self.name, self.band_names, selection)
        self.dtype = str(arr.dtype)
        crs = rasterio.crs.CRS.from_user_input(attrs["crs"]) if attrs.get("crs") else None
        transform = Affine(*attrs["transform"][:6]) if attrs.get("transform") else Affine.identity()
        self.grid = Grid(crs=crs, transform=transform, width=arr.shape[2], height=arr.shape[1])
        self._arr = None
        # Read the bands as one contiguous slice when the selection allows it (no fancy indexing).
        used = [i - 1 for i in self.indexes if i is not None]
        self._slice = slice(used[0], used[-1] + 1) if used == list(range(used[0], used[-1] + 1)) else None
        self._used = used

    def read(self, window: Window | None = None) -> np.ndarray:
        if self._arr is None:
            self._arr = open_array(self.path)
        if window is None:
            rows, cols = slice(0, self.grid.height), slice(0, self.grid.width)
        else:
            (r0, r1), (c0, c1) = window.toranges()
            rows, cols = slice(int(r0), int(r1)), slice(int(c0), int(c1))
        if self._slice is not None:
            data = self._arr[self._slice, rows, cols]
        else:
            data = self._arr.oindex[self._used, rows, cols]
        return fill_zeros(np.asarray(data, dtype=np.float32), self.indexes)

    def __getstate__(self) -> dict:
        return self.__dict__ | {"_arr": None}

    def __repr__(self) -> str:
        return f"ZarrRaster({self.path}, {self.grid.width}x{self.grid.height}, {self.grid.crs})"


class ZarrSample:
    """Sample `index` of a `(sample, band, y, x)` store, with the same `read()` as a raster file."""

    def __init__(self, path: str, index: int, selection: BandSelection):
        arr = open_array(path)
        attrs = _attrs(arr, path)
        self.path, self.index, self.name = path, index, f"{path}[{index}]"
        self.indexes = band_indexes(self.name, tuple(attrs["band_names"]), selection)
        crss, transforms = attrs.get("crs") or [], attrs.get("transforms") or []
        crs = rasterio.crs.CRS.from_user_input(crss[index]) if index < len(crss) and crss[index] else None
        t = Affine(*transforms[index][:6]) if index < len(transforms) else Affine.identity()
        self.grid = Grid(crs=crs, transform=t, width=arr.shape[3], height=arr.shape[2])
        self.dtype = str(arr.dtype)
        self._arr = arr

    def read(self, window: Window | None = None) -> np.ndarray:
        used = [i - 1 for i in self.indexes if i is not None]
        data = np.asarray(self._arr[self.index], dtype=np.float32)[used]
        if window is not None:
            (r0, r1), (c0, c1) = window.toranges()
            data = data[:, int(r0):int(r1), int(c0):int(c1)]
        return fill_zeros(data, self.indexes)


def write_raster(out: str | Path, image_reader, selection: BandSelection, chunk: int, dtype: str) -> dict:
    """Write one raster as a `(band, y, x)` store, chunked `(bands, chunk, chunk)`, block by block."""
    import zarr

    g = image_reader.grid
    root = zarr.open_group(str(out), mode="w")
    arr = root.create_array("data", shape=(len(selection), g.height, g.width), chunks=(len(selection), chunk, chunk), dtype=dtype)
    for row in range(0, g.height, chunk):
        for col in range(0, g.width, chunk):
            w = Window(col, row, min(chunk, g.width - col), min(chunk, g.height - row))
            arr[:, row:row + w.height, col:col + w.width] = image_reader.read(w).astype(dtype)
    arr.attrs.update({
        "band_names": list(selection.names), "sensor": selection.sensor.key,
        "crs": g.crs.to_wkt() if g.crs else None, "transform": list(g.transform)[:6],
        "source": getattr(image_reader, "name", ""),
    })
    root.attrs["rs_ssl_layout"] = "band,y,x"
    return {"shape": list(arr.shape), "chunks": list(arr.chunks)}


def write_samples(out: str | Path, samples: Iterable[tuple[np.ndarray, dict]], n: int, bands: int, size: int,
                  selection: BandSelection, dtype: str, extra: dict | None = None) -> dict:
    """Write `n` same-size samples `(bands, size, size)` as a `(sample, band, y, x)` store, one chunk each."""
    import zarr

    root = zarr.open_group(str(out), mode="w")
    arr = root.create_array("data", shape=(n, bands, size, size), chunks=(1, bands, size, size), dtype=dtype)
    meta: dict[str, list] = {"crs": [], "transforms": [], "paths": [], "labels": [], "split": []}
    for i, (img, m) in enumerate(samples):
        arr[i] = img.astype(dtype)
        meta["crs"].append(m.get("crs"))
        meta["transforms"].append(m.get("transform"))
        meta["paths"].append(m.get("path"))
        meta["labels"].append(list(m.get("labels", ())))
        meta["split"].append(m.get("split"))
    arr.attrs.update({"band_names": list(selection.names), "sensor": selection.sensor.key, **meta, **(extra or {})})
    root.attrs["rs_ssl_layout"] = "sample,band,y,x"
    return {"shape": list(arr.shape), "chunks": list(arr.chunks)}
