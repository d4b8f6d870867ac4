"""The zarr fast path: direct chunk decoding equals zarr's own reads; chunk-aligned training windows."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import zarr
from rasterio.windows import Window
from torch.utils.data import DataLoader
from zarr.codecs import BloscCodec, BytesCodec, GzipCodec, ZstdCodec

from rs_ssl.bands import resolve_bands
from rs_ssl.data import open_rasters, pretrain_dataset, sample_path
from rs_ssl.data import zarr_store as Z
from rs_ssl.data.convert import convert
from rs_ssl.data.patches import RandomPatchDataset


@pytest.fixture(scope="module")
def crop() -> np.ndarray:
    """A real 13-band crop (uint16 DN, every band distinct) of an odd size, so edge chunks are partial."""
    (scene,), _ = open_rasters(sample_path(), "sentinel2", resolve_bands(13))
    return scene.read(Window(17, 5, 203, 190)).astype(np.uint16)


STORES = {
    "v3 blosc-lz4 (convert)": {"compressors": BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")},
    "v3 zstd": {"compressors": ZstdCodec(level=1)},
    "v3 gzip": {"compressors": GzipCodec(level=1)},
    "v3 uncompressed big-endian": {"compressors": None, "serializer": BytesCodec(endian="big")},
    "v2 zstd": {"zarr_format": 2},
}


@pytest.mark.parametrize("kind", list(STORES))
def test_direct_chunk_reads_equal_zarr_reads(crop, tmp_path, kind):
    arr = zarr.create_array(
        str(tmp_path / "a.zarr"),
        shape=crop.shape,
        chunks=(13, 64, 48),
        dtype="uint16",
        fill_value=7,
        **STORES[kind],
    )
    arr[:, :128, :] = crop[
        :, :128, :
    ]  # rows 128+ are never written: their chunks are missing (fill value)
    arr = zarr.open_array(str(tmp_path / "a.zarr"), mode="r")
    reader = Z.ChunkReader(arr)
    assert reader.direct
    rng = np.random.default_rng(0)
    boxes = [(0, 13, 0, 190, 0, 203), (2, 9, 64, 128, 48, 96), (0, 13, 100, 190, 150, 203)]
    boxes += [
        (int(b), int(b) + 3, int(r), int(r) + 40, int(c), int(c) + 40)
        for b, r, c in zip(
            rng.integers(0, 10, 6), rng.integers(0, 150, 6), rng.integers(0, 163, 6), strict=True
        )
    ]
    for b0, b1, r0, r1, c0, c1 in boxes:
        box = (slice(b0, b1), slice(r0, r1), slice(c0, c1))
        got = reader.read(box)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, np.asarray(arr[box], dtype=np.float32))
    assert (reader.read((slice(0, 13), slice(130, 190), slice(0, 203))) == 7).all()


def test_stores_zarr_cannot_decode_directly_are_read_through_zarr(crop, tmp_path):
    arr = zarr.create_array(
        str(tmp_path / "s.zarr"),
        shape=crop.shape,
        chunks=(13, 32, 32),
        shards=(13, 64, 64),
        dtype="uint16",
    )
    arr[:] = crop
    reader = Z.ChunkReader(zarr.open_array(str(tmp_path / "s.zarr"), mode="r"))
    assert not reader.direct
    np.testing.assert_array_equal(
        reader.read((slice(0, 13), slice(10, 90), slice(5, 77))), crop[:, 10:90, 5:77]
    )


def test_convert_writes_lz4_and_training_windows_are_chunk_aligned(tmp_path):
    sel = resolve_bands(13)
    store = tmp_path / "s.zarr"
    info = convert(None, "auto", sel, store, 96)
    assert info["chunks"] == [13, 96, 96]
    arr = zarr.open_group(str(store), mode="r")["data"]
    assert isinstance(arr.compressors[0], BloscCodec) and arr.compressors[0].cname.value == "lz4"
    (scene,), _ = open_rasters(None, "auto", sel)
    ds, _ = pretrain_dataset(store, "auto", sel, patch=96, samples_per_epoch=20, seed=4)
    positions = [ds.position(i) for i in range(len(ds))]
    assert all(row % 96 == 0 and col % 96 == 0 for _, row, col in positions)
    assert len({p for p in positions}) > 5
    for i in (0, 7, 19):
        _, row, col = positions[i]
        np.testing.assert_array_equal(ds[i]["image"].numpy(), scene.read(Window(col, row, 96, 96)))
    # forked DataLoader workers open their own handle and read the same patches
    batches = list(DataLoader(ds, batch_size=5, num_workers=2))
    np.testing.assert_array_equal(
        torch.cat([b["image"] for b in batches]).numpy(),
        np.stack([ds[i]["image"].numpy() for i in range(len(ds))]),
    )
    # zarr_aligned=False: any position, the same sequence as over the GeoTIFFs with this seed
    anywhere, _ = pretrain_dataset(
        store, "auto", sel, patch=96, samples_per_epoch=20, seed=4, zarr_aligned=False
    )
    tif = RandomPatchDataset([scene], 96, 20, seed=4)
    assert [anywhere.position(i) for i in range(20)] == [tif.position(i) for i in range(20)]
    assert any(row % 96 or col % 96 for _, row, col in (anywhere.position(i) for i in range(20)))
    k, row, col = anywhere.position(3)
    np.testing.assert_array_equal(
        anywhere[3]["image"].numpy(), scene.read(Window(col, row, 96, 96))
    )


def test_aligned_positions_respect_the_region_mask(tmp_path):
    sel = resolve_bands(13)
    store = tmp_path / "s.zarr"
    convert(None, "auto", sel, store, 96)
    (zr,), _ = open_rasters(store, "zarr", sel)
    mask = np.zeros((480 - 96 + 1, 480 - 96 + 1), dtype=bool)
    mask[150:300, 0:200] = True  # aligned corners inside: rows 192, 288; cols 0, 96, 192
    ds = RandomPatchDataset([zr], 96, 50, seed=1, allowed=[mask], align=True)
    got = {ds.position(i)[1:] for i in range(50)}
    assert got == {(r, c) for r in (192, 288) for c in (0, 96, 192)}


def test_patch_stacks_open_the_store_once_per_process(tmp_path, monkeypatch):
    sel = resolve_bands(13)
    (scene,), _ = open_rasters(None, "auto", sel)
    imgs = [scene.read(Window(c, r, 64, 64)) for r in (0, 64) for c in (0, 64, 128)]
    store = tmp_path / "p.zarr"
    Z.write_samples(
        store, ((im, {}) for im in imgs), len(imgs), 13, 64, sel, "uint16"
    )  # no georeference
    calls = []
    real = Z.open_array
    monkeypatch.setattr(Z, "open_array", lambda p: calls.append(p) or real(p))
    ds, info = pretrain_dataset(store, "auto", sel, patch=64, samples_per_epoch=1)
    assert info["samples"] == 6
    for i in range(6):
        np.testing.assert_array_equal(ds[i]["image"].numpy(), imgs[i])
    assert len(calls) == 1  # scan, dataset and every read share one handle
    sub, _ = pretrain_dataset(
        store, "auto", resolve_bands("B12,B01"), patch=64, samples_per_epoch=1
    )
    np.testing.assert_array_equal(sub[4]["image"].numpy(), imgs[4][[12, 0]])
