"""QGIS-style tile folders built with GDAL's own tools from real data, and a MillionAID-style tree."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import rasterio

from rs_ssl.bands import resolve_bands
from rs_ssl.data import detect_format, labelled_dataset, open_rasters, scan


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{tool} is missing under CI; .ci/run installs gdal-bin and python3-gdal")
        pytest.skip(f"{tool} not installed (apt-get install gdal-bin python3-gdal)")
    return path


def test_gdal_retile_folder_with_and_without_vrt(shared_data, tmp_path):
    _need("gdal_retile.py")
    src = shared_data / "s2_tile_folder" / "patch_0.tif"
    out = tmp_path / "tiles"
    out.mkdir()
    subprocess.run(
        ["gdal_retile.py", "-ps", "100", "100", "-targetDir", str(out), str(src)],
        check=True,
        capture_output=True,
    )
    assert len(list(out.glob("*.tif"))) == 9
    assert detect_format(out) == "tiles"
    sel = resolve_bands(12)
    with rasterio.open(src) as s:
        ref = s.read().astype(np.float32)
    rasters, info = open_rasters(out, "auto", sel)  # no .vrt: mosaicked in memory
    assert info["format"] == "tiles" and len(rasters) == 1 and rasters[0].grid.width == 256
    np.testing.assert_array_equal(rasters[0].read(), ref)
    with rasterio.open(src) as s:
        assert rasters[0].grid.crs == s.crs and rasters[0].grid.transform == s.transform
    _need("gdalbuildvrt")
    subprocess.run(
        ["gdalbuildvrt", str(out / "mosaic.vrt"), *map(str, sorted(out.glob("*.tif")))],
        check=True,
        capture_output=True,
    )
    rasters, _ = open_rasters(out, "auto", sel)  # the .vrt QGIS/GDAL wrote
    assert rasters[0].path.endswith("mosaic.vrt")
    np.testing.assert_array_equal(
        rasters[0].read(rasterio.windows.Window(90, 90, 40, 40)), ref[:, 90:130, 90:130]
    )


def test_xyz_directory_from_gdal2tiles(shared_data, tmp_path):
    _need("gdal2tiles.py")
    src = next((shared_data / "rgb_aerial" / "usgs_rsvqa").rglob("*.tif"))
    out = tmp_path / "xyz"
    subprocess.run(
        ["gdal2tiles.py", "--xyz", "-z", "17-18", "-w", "none", "-q", str(src), str(out)],
        check=True,
        capture_output=True,
    )
    assert detect_format(out) == "xyz"
    cat = scan(out)
    assert cat.notes["zoom"] == 18 and cat.notes["scheme"] == "xyz"
    rasters, _ = open_rasters(out, "auto", resolve_bands(3))
    r = rasters[0]
    assert r.grid.crs.to_epsg() == 3857
    # every tile sits where its z/x/y name says: its bounds in the mosaic equal the XYZ tile bounds
    from rs_ssl.data.tiles import tile_bounds_3857

    tiles = sorted(Path(rec.path) for rec in cat.records)
    x0 = min(int(t.parent.name) for t in tiles)
    y0 = min(int(t.stem) for t in tiles)
    left, bottom, right, top = tile_bounds_3857(18, x0, y0)
    assert np.isclose(r.grid.transform.c, left) and np.isclose(r.grid.transform.f, top)
    t = tiles[0]
    col, row = (int(t.parent.name) - x0) * 256, (int(t.stem) - y0) * 256
    with rasterio.open(t) as s:
        ref = s.read([1, 2, 3]).astype(np.float32)
    np.testing.assert_array_equal(r.read(rasterio.windows.Window(col, row, 256, 256)), ref)
    assert scan(out, zoom=17).notes["zoom"] == 17


def test_millionaid_levels_on_real_ucmerced_images(shared_data, tmp_path):
    imgs = sorted((shared_data / "rgb_aerial" / "ucmerced").rglob("*.tif"))
    root = tmp_path / "MillionAID"
    layout = {  # <split>/<level1>/[<level2>/]<leaf>
        0: "train/transportation_land/airport_area/runway",
        1: "train/transportation_land/airport_area/apron",
        2: "train/woodland/forest",
        3: "test/woodland/forest",
    }
    for i, rel in layout.items():
        d = root / rel
        d.mkdir(parents=True, exist_ok=True)
        (d / f"img{i}.tif").symlink_to(imgs[i])
    assert detect_format(root) == "millionaid"
    sel = resolve_bands(3)
    l1, _ = labelled_dataset(root, "auto", sel, split="train", patch=64, level=1)
    l2, _ = labelled_dataset(root, "auto", sel, split="train", patch=64, level=2)
    l3, _ = labelled_dataset(root, "auto", sel, split=None, patch=64, level=3)
    assert l1.classes == ["transportation_land", "woodland"] and len(l1) == 3
    assert l2.classes == ["airport_area", "forest"]  # forest skips level 2 and keeps its leaf
    assert l3.classes == ["apron", "forest", "runway"] and len(l3) == 4
    assert [l1.classes[int(l1[i]["label"])] for i in range(3)] == [
        "transportation_land",
        "transportation_land",
        "woodland",
    ]
    assert l1[0]["image"].shape == (3, 64, 64)
