"""TorchGeo's samplers driving our rasters: patches equal our own window reads of the same bounds."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import torch
from rasterio.windows import Window
from torchgeo.samplers import GridGeoSampler, RandomGeoSampler

from rs_ssl.bands import resolve_bands
from rs_ssl.data import open_rasters, sample_path
from rs_ssl.data.torchgeo_adapter import TorchGeoRasters, torchgeo_dataset
from rs_ssl.errors import DataError


def _own_read(raster, x: slice, y: slice) -> np.ndarray:
    """Our reader's window for the bounds of a TorchGeo query (the raster must contain them)."""
    t = raster.grid.transform
    col, row = round((x.start - t.c) / t.a), round((t.f - y.stop) / -t.e)
    return raster.read(
        Window(col, row, round((x.stop - x.start) / t.a), round((y.stop - y.start) / -t.e))
    )


def test_grid_and_random_samplers_on_the_embedded_sample():
    sel = resolve_bands(13)
    ds = torchgeo_dataset(None, sel)
    (scene,) = ds.rasters
    assert (
        str(scene.folder) == str(sample_path())
        and ds.crs == scene.grid.crs
        and ds.res == (10.0, 10.0)
    )
    queries = list(GridGeoSampler(ds, size=96, stride=96))
    assert len(queries) == (scene.grid.width // 96) * (scene.grid.height // 96) == 25
    for q in queries[::6]:
        item = ds[q]
        assert item["image"].dtype == torch.float32 and item["image"].shape == (13, 96, 96)
        np.testing.assert_array_equal(item["image"].numpy(), _own_read(scene, q[0], q[1]))
    for q in RandomGeoSampler(ds, size=64, length=5, generator=torch.Generator().manual_seed(0)):
        item = ds[q]
        assert item["image"].shape == (13, 64, 64) and item["crs"] == scene.grid.crs
        np.testing.assert_array_equal(item["image"].numpy(), _own_read(scene, q[0], q[1]))
    # bands in registry order, whatever order the selection lists them in
    sub = torchgeo_dataset(None, resolve_bands("B8A,B02"))
    np.testing.assert_array_equal(
        sub[queries[0]]["image"].numpy(),
        ds[queries[0]]["image"].numpy()[[sel.names.index("B8A"), 1]],
    )


def test_stacked_tiles_one_crs_per_dataset(shared_data):
    sel = resolve_bands(12)
    folder = shared_data / "s2_tile_folder"
    with pytest.raises(DataError, match="7 CRSs"):
        torchgeo_dataset(folder, sel)
    ds = torchgeo_dataset(folder, sel, crs="EPSG:32633")
    assert [r.name.rsplit("/", 1)[-1] for r in ds.rasters] == ["patch_10.tif"] and len(
        ds.skipped
    ) == 6
    (tile,) = ds.rasters
    for q in list(GridGeoSampler(ds, size=128, stride=128)):
        np.testing.assert_array_equal(ds[q]["image"].numpy(), _own_read(tile, q[0], q[1]))
    for q in RandomGeoSampler(ds, size=100, length=4):
        assert ds[q]["image"].shape == (12, 100, 100)
        np.testing.assert_array_equal(ds[q]["image"].numpy(), _own_read(tile, q[0], q[1]))


def test_query_across_two_tiles_is_mosaicked(shared_data, tmp_path):
    """A real tile cut into left and right halves: a query over the seam reads both, as the whole tile does."""
    src_path = shared_data / "s2_tile_folder" / "patch_10.tif"
    with rasterio.open(src_path) as src:
        profile, data = src.profile, src.read()
        for name, c0, c1 in (("left.tif", 0, 100), ("right.tif", 100, 256)):
            p = profile | {
                "width": c1 - c0,
                "transform": src.window_transform(Window(c0, 0, c1 - c0, 256)),
            }
            with rasterio.open(tmp_path / name, "w", **p) as dst:
                dst.write(data[:, :, c0:c1])
                dst.descriptions = src.descriptions
    sel = resolve_bands(12)
    halves = torchgeo_dataset(tmp_path, sel, fmt="geotiff")
    assert len(halves.rasters) == 2
    whole, _ = open_rasters(src_path, "geotiff", sel)
    t = whole[0].grid.transform
    x, y = slice(t.c + 40 * 10, t.c + 160 * 10, 10.0), slice(t.f - 200 * 10, t.f - 20 * 10, 10.0)
    np.testing.assert_array_equal(halves[x, y]["image"].numpy(), _own_read(whole[0], x, y))
    with pytest.raises(DataError, match="resolution"):
        halves[slice(x.start, x.stop, 20.0), slice(y.start, y.stop, 20.0)]
    with pytest.raises(IndexError):
        halves[slice(0.0, 100.0, 10.0), slice(0.0, 100.0, 10.0)]
    with pytest.raises(DataError, match="reproject"):
        halves.crs = "EPSG:4326"


def test_rasters_without_crs_are_refused(shared_data):
    rasters, _ = open_rasters(shared_data / "rgb_aerial" / "ucmerced", "geotiff", resolve_bands(3))
    with pytest.raises(DataError, match="no CRS"):
        TorchGeoRasters(rasters, ("R", "G", "B"))


def test_a_query_over_many_rasters_keeps_a_bounded_number_open(shared_data, tmp_path):
    """TorchGeo's mosaic reads every raster under a query; the readers' bound (not the dataset's)
    keeps at most MAX_OPEN of them open, and the mosaic is still the first raster's pixels."""
    import os

    from rs_ssl.data.handles import MAX_OPEN, OPEN

    tile = shared_data / "s2_tile_folder" / "patch_10.tif"
    n = MAX_OPEN + 8
    for i in range(n):
        (tmp_path / f"copy{i:03d}.tif").symlink_to(tile)
    ds = torchgeo_dataset(tmp_path, resolve_bands(12), fmt="geotiff")
    assert len(ds.rasters) == n

    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    before = open_fds()
    t = ds.rasters[0].grid.transform
    x, y = slice(t.c, t.c + 64 * 10, 10.0), slice(t.f - 64 * 10, t.f, 10.0)
    expected = _own_read(ds.rasters[0], x, y)
    per_raster = open_fds() - before
    assert per_raster >= 1
    np.testing.assert_array_equal(ds[x, y]["image"].numpy(), expected)  # reads all n rasters
    assert len(OPEN) == MAX_OPEN
    assert open_fds() - before <= MAX_OPEN * per_raster
