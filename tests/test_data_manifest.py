"""`rs-ssl manifest` and `rs-ssl convert` on the real samples: counts, labels, broken files, round trip."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
import rasterio

from rs_ssl import cli
from rs_ssl.bands import resolve_bands
from rs_ssl.data import labelled_dataset, open_rasters, pretrain_dataset
from rs_ssl.data.patches import GridPatchDataset

L1C = resolve_bands(13).names


def _manifest(path, out, *extra):
    assert cli.main(["manifest", str(path), "--out", str(out), *extra]) == 0
    summary = json.loads((out / "summary.json").read_text())
    for f in ("manifest.parquet", "config.yaml", "metrics.json"):
        assert (out / f).is_file(), f
    return summary, pd.read_parquet(out / "manifest.parquet")


@pytest.mark.parametrize(
    "rel, fmt, count, bands, crs, labels",
    [
        ("bigearthnet_v2", "bigearthnet", 21, 12, ["EPSG:32633"], None),
        (
            "eurosat_ms",
            "folder",
            4,
            13,
            None,
            {"AnnualCrop": 1, "Highway": 1, "Pasture": 1, "SeaLake": 1},
        ),
        ("rgb_aerial/ucmerced", "folder", 4, 3, [], {"airplane": 2, "forest": 2}),
        ("sentinel2_l1c_scene", "sentinel2", 1, 13, ["EPSG:32618"], {}),
        ("s2_tile_folder", "geotiff", 7, 12, None, {}),
    ],
)
def test_manifest_counts_and_labels(shared_data, tmp_path, rel, fmt, count, bands, crs, labels):
    summary, df = _manifest(shared_data / rel, tmp_path / "m")
    assert summary["format"] == fmt and summary["count"] == len(df) == count
    assert len(summary["bands"]) == bands and summary["skipped"] == 0
    if crs is not None:
        assert summary["crs"] == crs
    if rel == "bigearthnet_v2":
        meta = pd.read_parquet(shared_data / rel / "metadata.parquet")
        want = pd.Series([lab for ls in meta.labels for lab in ls]).value_counts().to_dict()
        assert summary["labels"] == want and summary["splits"] == {
            "train": 7,
            "validation": 7,
            "test": 7,
        }
        assert "B10" not in summary["bands"]
    elif labels is not None:
        assert summary["labels"] == labels
    if rel == "s2_tile_folder":
        assert len(summary["crs"]) == 7  # seven UTM zones
    assert df.checksum.str.len().eq(32).all() and df.checksum.nunique() == count


def test_manifest_as_input_skips_the_scan(shared_data, tmp_path):
    _manifest(shared_data / "bigearthnet_v2", tmp_path / "m")
    ds, info = labelled_dataset(
        tmp_path / "m" / "manifest.parquet", "auto", resolve_bands(12), split="test", patch=120
    )
    direct, _ = labelled_dataset(
        shared_data / "bigearthnet_v2", "auto", resolve_bands(12), split="test", patch=120
    )
    assert (
        info["format"] == "bigearthnet"
        and len(ds) == len(direct) == 7
        and ds.classes == direct.classes
    )
    assert [r.path for r in ds.records] == [r.path for r in direct.records]
    assert np.array_equal(ds[2]["image"].numpy(), direct[2]["image"].numpy()) and np.array_equal(
        ds[2]["label"], direct[2]["label"]
    )


def test_manifest_stats(shared_data, tmp_path):
    summary, _ = _manifest(shared_data / "eurosat_ms", tmp_path / "m", "--stats")
    st = summary["stats"]["bands"]
    assert list(st) == list(L1C) and (tmp_path / "m" / "stats.yaml").is_file()
    assert (
        st["B10"]["mean"] < 0.01 < st["B08"]["mean"] < 1
    )  # cirrus is dark, NIR is not; reflectance units


def _stack(path, size=16, bands=12):
    from rasterio.transform import from_origin

    data = np.stack(
        [
            np.arange(size * size, dtype="uint16").reshape(size, size) + 1000 * (b + 1)
            for b in range(bands)
        ]
    )
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=size,
        height=size,
        count=bands,
        dtype="uint16",
        crs="EPSG:32633",
        transform=from_origin(500000, 4000000, 10, 10),
    ) as dst:
        dst.write(data)


def test_manifest_check_lists_broken_files(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    for name in ("a.tif", "b.tif", "c.tif"):
        _stack(d / name, size=128)
    raw = (d / "b.tif").read_bytes()
    (d / "b.tif").write_bytes(raw[: len(raw) // 3])  # truncated: header fine, pixels missing
    _stack(d / "five.tif", bands=5, size=128)
    rc = cli.main(
        ["manifest", str(d), "--format", "geotiff", "--check", "--out", str(tmp_path / "m")]
    )
    summary = json.loads((tmp_path / "m" / "summary.json").read_text())
    assert rc == 1 and summary["count"] == 2 and summary["skipped"] == 2
    assert any("b.tif" in p for p in summary["broken"]) and any(
        "five.tif" in p and "5 bands" in p for p in summary["broken"]
    )
    assert (
        cli.main(
            [
                "manifest",
                str(d),
                "--format",
                "geotiff",
                "--check",
                "--skip-bad",
                "--out",
                str(tmp_path / "m2"),
            ]
        )
        == 0
    )
    # without --check the band-count mismatch is still a clear error naming the file
    assert cli.main(["manifest", str(d), "--format", "geotiff", "--out", str(tmp_path / "m3")]) == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_file_is_named(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    _stack(d / "a.tif")
    (d / "a.tif").chmod(0)
    with pytest.raises(Exception, match="a.tif"):
        pretrain_dataset(d, "geotiff", resolve_bands(12), patch=8, samples_per_epoch=1)


def test_convert_scene_to_zarr_round_trip(s2_scene, tmp_path):
    store = tmp_path / "scene.zarr"
    assert cli.main(["convert", str(s2_scene), str(store), "--size", "120", "--bands", "13"]) == 0
    zr, info = open_rasters(store, "auto", resolve_bands(13))
    src, _ = open_rasters(s2_scene, "auto", resolve_bands(13))
    assert info["format"] == "zarr" and zr[0].grid == src[0].grid
    g = src[0].grid
    # The scene's 20/60 m bands are warped per window (GDAL may round a pixel 1 DN differently for
    # another window), so compare with the scene read window by window as convert reads it.
    for row in range(0, g.height, 120):
        for col in range(0, g.width, 120):
            w = rasterio.windows.Window(col, row, min(120, g.width - col), min(120, g.height - row))
            np.testing.assert_array_equal(zr[0].read(w), src[0].read(w))
    ten_m = [
        L1C.index(b) for b in ("B02", "B03", "B04", "B08")
    ]  # not resampled: equal in any window
    np.testing.assert_array_equal(zr[0].read()[ten_m], src[0].read()[ten_m])
    # a band subset in another order reads the same pixels as the scene
    sel = resolve_bands("B8A,B02,B10")
    zs, _ = open_rasters(store, "zarr", sel)
    ss, _ = open_rasters(s2_scene, "sentinel2", sel)
    w = rasterio.windows.Window(240, 360, 120, 120)
    np.testing.assert_array_equal(zs[0].read(w), ss[0].read(w))


def test_convert_tile_folder_and_bigearthnet_to_zarr_samples(shared_data, tmp_path):
    sel = resolve_bands(12)
    store = tmp_path / "tiles.zarr"
    assert (
        cli.main(
            [
                "convert",
                str(shared_data / "s2_tile_folder"),
                str(store),
                "--size",
                "128",
                "--bands",
                "12",
            ]
        )
        == 0
    )
    rasters, _ = open_rasters(shared_data / "s2_tile_folder", "auto", sel)
    grid = GridPatchDataset(rasters, 128)
    ds, info = pretrain_dataset(store, "auto", sel, patch=128, samples_per_epoch=1)
    assert info["samples"] == len(grid) == 28
    for i in (0, 13, 27):
        np.testing.assert_array_equal(ds[i]["image"].numpy(), grid[i]["image"].numpy())
    ben = tmp_path / "ben.zarr"
    assert (
        cli.main(
            [
                "convert",
                str(shared_data / "bigearthnet_v2"),
                str(ben),
                "--size",
                "120",
                "--bands",
                "12",
            ]
        )
        == 0
    )
    a, _ = labelled_dataset(ben, "auto", sel, split="validation", patch=120)
    b, _ = labelled_dataset(
        shared_data / "bigearthnet_v2", "auto", sel, split="validation", patch=120
    )
    assert a.multilabel and a.classes == b.classes and len(a) == len(b) == 7
    for i in range(len(a)):
        np.testing.assert_array_equal(a[i]["image"].numpy(), b[i]["image"].numpy())
        assert np.array_equal(a[i]["label"], b[i]["label"])
