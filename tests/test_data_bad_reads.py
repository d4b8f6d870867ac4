"""NaN and all-nodata patches during training reads: an error naming the file, or replaced and counted."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window
from torch.utils.data import DataLoader

from rs_ssl.bands import resolve_bands
from rs_ssl.data import open_rasters, pretrain_dataset
from rs_ssl.data import zarr_store as Z
from rs_ssl.errors import DataError

SEL = resolve_bands(12)


def _with_hole(shared_data, out, value, dtype=None):
    """A real 12-band tile with columns 0-159 of every band set to `value` (0: nodata; NaN)."""
    with rasterio.open(shared_data / "s2_tile_folder" / "patch_10.tif") as src:
        data = src.read().astype(dtype or src.dtypes[0])
        data[:, :, :160] = value
        profile = src.profile | {"dtype": data.dtype.name, "nodata": None}
        with rasterio.open(out, "w", **profile) as dst:
            dst.write(data)
            dst.descriptions = src.descriptions
    return out


def test_all_nodata_patches_stop_or_are_redrawn_and_counted(shared_data, tmp_path):
    tif = _with_hole(shared_data, tmp_path / "hole.tif", 0)
    strict, _ = pretrain_dataset(tif, "geotiff", SEL, patch=64, samples_per_epoch=30, seed=2)
    with pytest.raises(
        DataError, match=r"hole.tif: patch at row \d+, col \d+ .*every pixel is nodata.*--skip-bad"
    ):
        for i in range(len(strict)):
            strict[i]
    ds, _ = pretrain_dataset(
        tif, "geotiff", SEL, patch=64, samples_per_epoch=30, seed=2, skip_bad=True
    )
    expected = 0
    for i in range(len(ds)):
        img = ds[i]["image"].numpy()
        assert img.any()
        attempt = 0
        while ds.position(i, attempt)[2] + 64 <= 160:  # windows wholly inside the hole
            attempt += 1
        expected += attempt
        _, row, col = ds.position(i, attempt)
        np.testing.assert_array_equal(img, ds.rasters[0].read(Window(col, row, 64, 64)))
    assert 0 < expected == ds.bad_reads.total
    # DataLoader workers count into the same shared counter
    ds2, _ = pretrain_dataset(
        tif, "geotiff", SEL, patch=64, samples_per_epoch=30, seed=2, skip_bad=True
    )
    n = sum(len(b["image"]) for b in DataLoader(ds2, batch_size=5, num_workers=2))
    assert n == 30 and ds2.bad_reads.total == expected


def test_nan_patches_are_reported(shared_data, tmp_path):
    tif = _with_hole(shared_data, tmp_path / "nan.tif", np.nan, dtype="float32")
    strict, _ = pretrain_dataset(tif, "geotiff", SEL, patch=64, samples_per_epoch=20, seed=0)
    with pytest.raises(DataError, match="nan.tif.*NaN value"):
        for i in range(len(strict)):
            strict[i]
    ds, _ = pretrain_dataset(
        tif, "geotiff", SEL, patch=64, samples_per_epoch=20, seed=0, skip_bad=True
    )
    assert (
        all(np.isfinite(ds[i]["image"].numpy()).all() for i in range(len(ds)))
        and ds.bad_reads.total > 0
    )


def test_all_nodata_sample_of_a_patch_stack(tmp_path):
    sel = resolve_bands(13)
    (scene,), _ = open_rasters(None, "auto", sel)
    imgs = [scene.read(Window(64 * c, 0, 64, 64)) for c in range(4)]
    imgs[1][:] = 0  # an empty sample, as in scenes cut at the swath edge
    store = tmp_path / "p.zarr"
    Z.write_samples(
        store, ((im, {"path": f"s{i}"}) for i, im in enumerate(imgs)), 4, 13, 64, sel, "uint16"
    )
    strict, _ = pretrain_dataset(store, "zarr", sel, patch=64, samples_per_epoch=1)
    np.testing.assert_array_equal(strict[0]["image"].numpy(), imgs[0])
    with pytest.raises(DataError, match=r"p.zarr.*every pixel is nodata"):
        strict[1]
    ds, _ = pretrain_dataset(store, "zarr", sel, patch=64, samples_per_epoch=1, skip_bad=True)
    np.testing.assert_array_equal(ds[1]["image"].numpy(), imgs[2])  # replaced by the next sample
    assert ds.bad_reads.total == 1
