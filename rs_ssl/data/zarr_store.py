"""Chunked zarr stores: `(band, y, x)` rasters or `(sample, band, y, x)` patch stacks.

Layout written by `rs-ssl convert` (and read from any store that follows it): a group whose array
`data` carries the attributes `band_names`, `sensor`, and either `crs` (WKT) + `transform` (affine
a, b, c, d, e, f) for a raster, or per-sample lists `crs`, `transforms`, `paths`, `labels`, `split`
for a patch stack. A bare array with a `band_names` attribute is read the same way. Local paths and
fsspec URLs (`s3://...`, `gs://...`) are accepted. Chunks hold one patch with all its bands, so a
chunk-aligned patch is one decompression.

Reads of local stores bypass zarr's per-call async machinery (which costs more than decoding a
13 x 120 x 120 chunk): `ChunkReader` reads the chunk files and decodes them with numcodecs, then
cuts the window out of the (at most four, for a chunk-sized window) chunks that cover it. Stores it
cannot decode this way (remote, sharded, transposed, checksummed) are read through zarr. Arrays are
opened once per process and path. `rs-ssl convert` writes Blosc-LZ4 with byte shuffle, which
decodes several times faster than zarr's default Zstd at a similar size.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import Affine
from rasterio.windows import Window

from rs_ssl.bands import BandSelection
from rs_ssl.data.base import Catalog, Format, Grid, Record, canonical_split
from rs_ssl.data.readers import band_indexes, crs_name, fill_zeros
from rs_ssl.errors import DataError


def open_array(path: str | Path):
    """The data array of a store (group member `data`, the group's only array, or a bare array)."""
    import zarr

    try:
        node = zarr.open(str(path), mode="r")
    except Exception as e:  # noqa: BLE001 - zarr/fsspec raise many types for missing or bad stores
        raise DataError(
            f"{path}: cannot be opened as a zarr store ({type(e).__name__}: {e})"
        ) from None
    if isinstance(node, zarr.Array):
        return node
    arrays = dict(node.arrays())
    if "data" in arrays:
        return arrays["data"]
    if len(arrays) == 1:
        return next(iter(arrays.values()))
    raise DataError(
        f"{path}: zarr group without a `data` array (arrays: {', '.join(arrays) or 'none'})"
    )


def write_codecs() -> dict:
    """Compression for stores written by `convert`: Blosc-LZ4 with byte shuffle (fast to decode)."""
    from zarr.codecs import BloscCodec

    return {"compressors": BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")}


def _direct_decoder(arr):
    """(numcodecs codec or None, chunk dtype) when the chunks of `arr` are plain files we can decode; else None."""
    import numcodecs
    from zarr.codecs import BloscCodec, BytesCodec, GzipCodec, ZstdCodec
    from zarr.storage import LocalStore

    if not isinstance(arr.store_path.store, LocalStore):
        return None
    meta = arr.metadata
    if meta.zarr_format == 2:
        if meta.filters or meta.order != "C":
            return None
        return meta.compressor, meta.dtype.to_native_dtype()
    codecs = list(meta.codecs)
    if not codecs or not isinstance(codecs[0], BytesCodec) or len(codecs) > 2:
        return None
    dtype = np.dtype(arr.dtype)
    if codecs[0].endian is not None:
        dtype = dtype.newbyteorder("<" if codecs[0].endian.value == "little" else ">")
    if len(codecs) == 1:
        return None, dtype
    known = {BloscCodec: numcodecs.Blosc, ZstdCodec: numcodecs.Zstd, GzipCodec: numcodecs.GZip}
    make = known.get(type(codecs[1]))
    return (make(), dtype) if make else None


class ChunkReader:
    """Reads boxes of one zarr array chunk by chunk: local chunk files decoded directly, else via zarr."""

    def __init__(self, arr):
        self.arr = arr
        self.shape = tuple(arr.shape)
        self.chunks = tuple(arr.chunks)
        plan = _direct_decoder(arr)
        self.direct = plan is not None
        if plan is not None:
            self._codec, self._dtype = plan
            self._root = Path(arr.store_path.store.root) / arr.store_path.path
            fill = arr.metadata.fill_value
            self._fill = np.full(self.chunks, 0 if fill is None else fill, dtype=self._dtype)

    def chunk(self, coords: tuple[int, ...]) -> np.ndarray:
        """The decoded chunk at chunk-grid `coords` (full chunk shape; via zarr: cut at the array's edge)."""
        if not self.direct:
            box = tuple(
                slice(i * c, min((i + 1) * c, n))
                for i, c, n in zip(coords, self.chunks, self.shape, strict=True)
            )
            return np.asarray(self.arr[box])
        try:
            raw = (self._root / self.arr.metadata.encode_chunk_key(coords)).read_bytes()
        except FileNotFoundError:
            return self._fill  # never-written chunk: zarr's fill value
        if self._codec is not None:
            raw = self._codec.decode(raw)
        return np.frombuffer(raw, dtype=self._dtype).reshape(self.chunks)

    def read(self, box: tuple[slice, ...], dtype=np.float32) -> np.ndarray:
        """`arr[box]` (slices with start and stop, step 1) as a new `dtype` array."""
        starts = [s.start for s in box]
        stops = [s.stop for s in box]
        if not self.direct:
            return np.asarray(self.arr[box], dtype=dtype)
        out = np.empty([b - a for a, b in zip(starts, stops, strict=True)], dtype=dtype)
        ranges = [
            range(a // c, (b - 1) // c + 1)
            for a, b, c in zip(starts, stops, self.chunks, strict=True)
        ]
        for coords in itertools.product(*ranges):
            src, dst = [], []
            for i, a, b, c in zip(coords, starts, stops, self.chunks, strict=True):
                lo, hi = max(a, i * c), min(b, (i + 1) * c)
                src.append(slice(lo - i * c, hi - i * c))
                dst.append(slice(lo - a, hi - a))
            out[tuple(dst)] = self.chunk(coords)[tuple(src)]
        return out


_OPEN: dict[tuple[int, str], tuple] = {}


def forget(path: str | Path) -> None:
    """Drop a store from the per-process cache (it is being rewritten)."""
    _OPEN.pop((os.getpid(), str(path)), None)


def open_cached(path: str | Path) -> tuple:
    """(array, attributes, ChunkReader) of a store, opened once per process (DataLoader workers fork)."""
    key = (os.getpid(), str(path))
    if key not in _OPEN:
        arr = open_array(path)
        _OPEN[key] = (arr, _attrs(arr, path), ChunkReader(arr))
    return _OPEN[key]


@lru_cache(maxsize=256)
def _crs(wkt: str):
    return rasterio.crs.CRS.from_user_input(wkt)


def _attrs(arr, path) -> dict:
    attrs = dict(arr.attrs)
    if "band_names" not in attrs:
        raise DataError(
            f"{path}: zarr array has no `band_names` attribute; add one listing its {arr.shape[-3]} bands in order"
        )
    if arr.ndim not in (3, 4):
        raise DataError(
            f"{path}: zarr array of shape {arr.shape}; expected (band, y, x) or (sample, band, y, x)"
        )
    if len(attrs["band_names"]) != arr.shape[-3]:
        raise DataError(f"{path}: {len(attrs['band_names'])} band_names for {arr.shape[-3]} bands")
    return attrs


def scan_zarr(path: str | Path) -> Catalog:
    arr, attrs, _ = open_cached(path)
    if arr.ndim == 3:
        return Catalog(
            Path(str(path)), "zarr", [Record(str(path))], notes={"samples": False}, kind="rasters"
        )
    n = arr.shape[0]
    labels = attrs.get("labels") or [[] for _ in range(n)]
    split = attrs.get("split") or [None] * n
    recs = [
        Record(str(path), labels=tuple(labels[i]), splits=_splits(split[i]), index=i)
        for i in range(n)
    ]
    multilabel = bool(attrs.get("multilabel", False))
    return Catalog(
        Path(str(path)),
        "zarr",
        recs,
        multilabel=multilabel,
        classes=attrs.get("classes"),
        notes={"samples": True},
    )


def _splits(value) -> tuple[str, ...]:
    """A sample's `split` attribute: None, one name, or a list of names (written by `rs-ssl convert`)."""
    names = value if isinstance(value, list | tuple) else [value]
    return tuple(s for s in (canonical_split(v) for v in names) if s)


def is_zarr(path: Path) -> bool:
    return path.suffix == ".zarr" or (
        path.is_dir() and any((path / m).exists() for m in ("zarr.json", ".zgroup", ".zarray"))
    )


def open_zarr_record(catalog: Catalog, record: Record, selection: BandSelection):
    if record.index is not None:
        return ZarrSample(record.path, record.index, selection)
    return ZarrRaster(record.path, selection)


class ZarrRaster:
    """A `(band, y, x)` store as a windowed raster (the fast path of the training loader)."""

    def __init__(self, path: str | Path, selection: BandSelection):
        self.path = str(path)
        self.name = self.path
        arr, attrs, _ = open_cached(path)
        if arr.ndim != 3:
            raise DataError(
                f"{path}: a (sample, band, y, x) store, not a raster; it is read as samples"
            )
        self.band_names = tuple(attrs["band_names"])
        self.indexes = band_indexes(self.name, self.band_names, selection)
        self.dtype = str(arr.dtype)
        crs = _crs(attrs["crs"]) if attrs.get("crs") else None
        transform = Affine(*attrs["transform"][:6]) if attrs.get("transform") else Affine.identity()
        self.grid = Grid(crs=crs, transform=transform, width=arr.shape[2], height=arr.shape[1])
        self.chunk_shape = tuple(
            arr.chunks[1:]
        )  # (rows, cols) of a chunk: RandomPatchDataset aligns to it
        # Read the span of the used bands (a slice), then pick them when the selection has gaps.
        used = [i - 1 for i in self.indexes if i is not None]
        self._bands = slice(min(used), max(used) + 1)
        self._pick = (
            None if used == list(range(min(used), max(used) + 1)) else [u - min(used) for u in used]
        )

    def read(self, window: Window | None = None) -> np.ndarray:
        if window is None:
            rows, cols = slice(0, self.grid.height), slice(0, self.grid.width)
        else:
            (r0, r1), (c0, c1) = window.toranges()
            rows, cols = slice(int(r0), int(r1)), slice(int(c0), int(c1))
            if r0 < 0 or c0 < 0 or r1 > self.grid.height or c1 > self.grid.width:
                raise DataError(
                    f"{self.name}: window rows {r0}:{r1}, cols {c0}:{c1} outside the "
                    f"{self.grid.height} x {self.grid.width} px raster"
                )
        data = open_cached(self.path)[2].read((self._bands, rows, cols))
        if self._pick is not None:
            data = data[self._pick]
        return fill_zeros(data, self.indexes)

    def __repr__(self) -> str:
        return f"ZarrRaster({self.path}, {self.grid.width}x{self.grid.height}, {self.grid.crs})"


class ZarrSample:
    """Sample `index` of a `(sample, band, y, x)` store, with the same `read()` as a raster file."""

    def __init__(self, path: str, index: int, selection: BandSelection):
        arr, attrs, _ = open_cached(path)
        self.path, self.index, self.name = path, index, f"{path}[{index}]"
        self.indexes = band_indexes(self.name, tuple(attrs["band_names"]), selection)
        crss, transforms = attrs.get("crs") or [], attrs.get("transforms") or []
        crs = _crs(crss[index]) if index < len(crss) and crss[index] else None
        t = (
            Affine(*transforms[index][:6])
            if index < len(transforms) and transforms[index]
            else Affine.identity()
        )
        self.grid = Grid(crs=crs, transform=t, width=arr.shape[3], height=arr.shape[2])
        self.dtype = str(arr.dtype)

    def read(self, window: Window | None = None) -> np.ndarray:
        used = [i - 1 for i in self.indexes if i is not None]
        reader = open_cached(self.path)[2]
        _, bands, h, w = reader.shape
        rows, cols = slice(0, h), slice(0, w)
        if window is not None:
            (r0, r1), (c0, c1) = window.toranges()
            rows, cols = slice(int(r0), int(r1)), slice(int(c0), int(c1))
        data = reader.read((slice(self.index, self.index + 1), slice(0, bands), rows, cols))[0]
        return fill_zeros(data[used] if used != list(range(bands)) else data, self.indexes)


def write_raster(
    out: str | Path, image_reader, selection: BandSelection, chunk: int, dtype: str
) -> dict:
    """Write one raster as a `(band, y, x)` store, chunked `(bands, chunk, chunk)`, block by block."""
    import zarr

    g = image_reader.grid
    forget(out)
    root = zarr.open_group(str(out), mode="w")
    arr = root.create_array(
        "data",
        shape=(len(selection), g.height, g.width),
        chunks=(len(selection), chunk, chunk),
        dtype=dtype,
        **write_codecs(),
    )
    for row in range(0, g.height, chunk):
        for col in range(0, g.width, chunk):
            w = Window(col, row, min(chunk, g.width - col), min(chunk, g.height - row))
            arr[:, row : row + w.height, col : col + w.width] = image_reader.read(w).astype(dtype)
    arr.attrs.update(
        {
            "band_names": list(selection.names),
            "sensor": selection.sensor.key,
            "crs": g.crs.to_wkt() if g.crs else None,
            "transform": list(g.transform)[:6],
            "source": getattr(image_reader, "name", ""),
        }
    )
    root.attrs["rs_ssl_layout"] = "band,y,x"
    return {"shape": list(arr.shape), "chunks": list(arr.chunks)}


def write_samples(
    out: str | Path,
    samples: Iterable[tuple[np.ndarray, dict]],
    n: int,
    bands: int,
    size: int,
    selection: BandSelection,
    dtype: str,
    extra: dict | None = None,
) -> dict:
    """Write `n` same-size samples `(bands, size, size)` as a `(sample, band, y, x)` store, one chunk each."""
    import zarr

    forget(out)
    root = zarr.open_group(str(out), mode="w")
    arr = root.create_array(
        "data",
        shape=(n, bands, size, size),
        chunks=(1, bands, size, size),
        dtype=dtype,
        **write_codecs(),
    )
    meta: dict[str, list] = {"crs": [], "transforms": [], "paths": [], "labels": [], "split": []}
    for i, (img, m) in enumerate(samples):
        arr[i] = img.astype(dtype)
        meta["crs"].append(m.get("crs"))
        meta["transforms"].append(m.get("transform"))
        meta["paths"].append(m.get("path"))
        meta["labels"].append(list(m.get("labels", ())))
        meta["split"].append(m.get("split"))
    arr.attrs.update(
        {
            "band_names": list(selection.names),
            "sensor": selection.sensor.key,
            **meta,
            **(extra or {}),
        }
    )
    root.attrs["rs_ssl_layout"] = "sample,band,y,x"
    return {"shape": list(arr.shape), "chunks": list(arr.chunks)}


def describe_record(catalog: Catalog, r: Record) -> dict:
    """`rs-ssl manifest` facts of a store or one sample of it (the checksum is of the sample's values)."""
    arr, attrs, _ = open_cached(r.path)  # one handle for all the samples of a store
    crs = attrs["crs"][r.index] if r.index is not None and attrs.get("crs") else attrs.get("crs")
    data = arr[r.index] if r.index is not None else None
    digest = (
        hashlib.blake2b(np.ascontiguousarray(data).tobytes(), digest_size=16).hexdigest()
        if data is not None
        else None
    )
    return {
        "bands": list(attrs.get("band_names", [])),
        "dtype": str(arr.dtype),
        "width": arr.shape[-1],
        "height": arr.shape[-2],
        "crs": crs_name(crs),
        "bounds": None,
        "checksum": digest,
    }


def decode_record(catalog: Catalog, r: Record) -> None:
    """`rs-ssl manifest --check`: read every value of a store or sample; DataError on NaN or a lost chunk."""
    arr = open_array(r.path)
    data = np.asarray(arr[r.index] if r.index is not None else arr[:])
    if np.issubdtype(data.dtype, np.floating) and np.isnan(data).any():
        raise DataError(f"{r.path}: contains NaN")
    if r.index is not None:
        _check_sample_chunks(arr, r)


def _check_sample_chunks(arr, r: Record) -> None:
    """DataError when a chunk of sample `r.index` of a local store is missing (it reads as the fill value).

    `rs-ssl convert` writes one chunk per sample, so a missing chunk is a sample lost in a copy, read
    as all-nodata; in a `(band, y, x)` raster store missing chunks are areas without data, not checked.
    """
    reader = ChunkReader(arr)
    if not reader.direct:
        return
    per = [-(-n // c) for n, c in zip(arr.shape[1:], arr.chunks[1:], strict=True)]
    for rest in np.ndindex(*per):
        key = arr.metadata.encode_chunk_key((r.index // arr.chunks[0], *rest))
        if not (reader._root / key).is_file():
            raise DataError(
                f"{r.path}[{r.index}]: chunk file {key} is missing (the sample reads as the fill value "
                f"{arr.metadata.fill_value}); re-run `rs-ssl convert` or restore the store"
            )


FORMAT = Format(
    "zarr",
    lambda s: is_zarr(s.root),
    lambda s: scan_zarr(s.root),
    kind="rasters",
    describe="a zarr store: one (band, y, x) raster or a (sample, band, y, x) stack",
    open=open_zarr_record,
    chunk_aligned=True,
    describe_record=describe_record,
    decode_record=decode_record,
)
