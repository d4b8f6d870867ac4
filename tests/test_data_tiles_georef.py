"""XYZ/TMS trees georeferenced in EPSG:3857 with alpha as a validity mask, and tile folders counted
tile by tile but read as one mosaic (issue 14, items 2 and 3).

Real tile trees: written by QGIS 3.22 itself (committed under tests/fixtures/qgis/, rebuilt by its
make_qgis_fixtures.py, since CI has no QGIS) and by GDAL's gdal2tiles.py / gdal_retile.py at test
time, all from the real Sentinel-2 crop in ../shared/data. Bad inputs are copies of them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import Affine
from rasterio.windows import Window

from rs_ssl.bands import resolve_bands
from rs_ssl.cli import main
from rs_ssl.data import detect_format, open_rasters, pretrain_dataset, scan
from rs_ssl.data.tiles import tile_bounds_3857
from rs_ssl.errors import DataError, UsageError

QGIS = Path(__file__).parent / "fixtures" / "qgis"
RGB = resolve_bands(3)


def _need(tool: str) -> None:
    if shutil.which(tool) is None:
        if os.environ.get("CI"):
            pytest.fail(f"{tool} is missing under CI; .ci/run installs gdal-bin")
        pytest.skip(f"{tool} not installed (apt-get install gdal-bin)")


def _manifest(data, tmp_path, *extra) -> dict:
    out = tmp_path / f"m{len(list(tmp_path.glob('m*')))}"
    assert main(["manifest", str(data), "--out", str(out), *extra]) == 0
    return json.loads((out / "summary.json").read_text())


@pytest.fixture(scope="module")
def rgb_scene(shared_data, tmp_path_factory) -> Path:
    """True-colour 8-bit GeoTIFF (EPSG:32618, 40 m) of the real Sentinel-2 crop, as tiling input."""
    _need("gdal_translate")
    d = tmp_path_factory.mktemp("rgb")
    scene = shared_data / "sentinel2_l1c_scene"
    vrt, out = d / "rgb.vrt", d / "rgb.tif"
    bands = [str(scene / f"s2_{b}.tif") for b in ("B04", "B03", "B02")]
    subprocess.run(["gdalbuildvrt", "-q", "-separate", str(vrt), *bands], check=True)
    subprocess.run(
        ["gdal_translate", "-q", "-ot", "Byte", "-scale", "0", "2500", "1", "255", "-outsize",
         "240", "240", "-colorinterp", "red,green,blue", str(vrt), str(out)],
        check=True,
    )  # fmt: skip
    return out


@pytest.fixture(scope="module")
def g2t(rgb_scene, tmp_path_factory) -> dict[str, Path]:
    """gdal2tiles.py trees of the scene: XYZ (`--xyz`) and TMS (its default, tilemapresource.xml)."""
    _need("gdal2tiles.py")
    d = tmp_path_factory.mktemp("g2t")
    out = {}
    for scheme, flag in (("xyz", ["--xyz"]), ("tms", [])):
        out[scheme] = d / scheme
        subprocess.run(
            ["gdal2tiles.py", *flag, "-z", "11-12", "--tilesize", "64", "-w", "none", "-q",
             str(rgb_scene), str(out[scheme])],
            check=True,
            capture_output=True,
        )  # fmt: skip
    return out


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


# --- XYZ / TMS ---------------------------------------------------------------------------------


@pytest.mark.parametrize("tree", ["qgis", "gdal2tiles"])
def test_xyz_trees_read_as_3_bands_in_epsg3857(tree, g2t, tmp_path):
    root = QGIS / "xyz" if tree == "qgis" else g2t["xyz"]
    assert detect_format(root) == "xyz"
    cat = scan(root)
    summary = _manifest(root, tmp_path)
    assert summary["format"] == "xyz" and summary["bands"] == ["R", "G", "B"]
    assert summary["crs"] == ["EPSG:3857"] and summary["count"] == len(cat.records)
    assert summary["count"] == len(list((root / str(cat.notes["zoom"])).rglob("*.png")))
    (mosaic,) = open_rasters(root, "auto", RGB)[0]
    assert mosaic.grid.crs.to_epsg() == 3857 and mosaic.band_names == ("R", "G", "B")
    # every tile sits where its z/x/y name says, and its opaque pixels are the mosaic's
    z = cat.notes["zoom"]
    tiles = sorted(Path(r.path) for r in cat.records)
    x0, y0 = min(int(t.parent.name) for t in tiles), min(int(t.stem) for t in tiles)
    left, _, _, top = tile_bounds_3857(z, x0, y0)
    assert np.allclose([mosaic.grid.transform.c, mosaic.grid.transform.f], [left, top])
    for t in tiles:
        with rasterio.open(t) as s:
            ts, ref = s.width, s.read().astype(np.float32)
        win = Window((int(t.parent.name) - x0) * ts, (int(t.stem) - y0) * ts, ts, ts)
        img, valid = mosaic.read_masked(win)
        assert np.array_equal(valid, ref[3] > 0)
        assert np.array_equal(img[:, valid], ref[:3, valid]) and not img[:, ~valid].any()


@pytest.mark.parametrize("tree", ["qgis", "gdal2tiles"])
def test_tms_rows_give_the_same_mosaic(tree, g2t):
    if tree == "qgis":  # QGIS's "TMS convention" writes no tilemapresource.xml: named by --format
        xyz, tms, fmt = QGIS / "xyz", QGIS / "tms", "tms"
    else:
        xyz, tms, fmt = g2t["xyz"], g2t["tms"], "auto"
        assert scan(tms).notes["scheme"] == "tms"
    (a,) = open_rasters(xyz, "auto", RGB)[0]
    (b,) = open_rasters(tms, fmt, RGB)[0]
    assert a.grid.transform.almost_equals(b.grid.transform)
    assert np.array_equal(a.read_masked()[0], b.read_masked()[0])
    if tree == "qgis":  # read as XYZ, the rows are mirrored: the pixels differ
        (c,) = open_rasters(tms, "auto", RGB)[0]
        assert not np.array_equal(a.read(), c.read())


def test_pretrain_region_over_xyz_selects_the_patches_inside(tmp_path, capsys):
    root = QGIS / "xyz"
    (mosaic,) = open_rasters(root, "auto", RGB)[0]
    g = mosaic.grid
    # a lon/lat box over the western half of the imaged area (the scene spans ~-75.74..-75.62)
    region = "-75.74,37.70,-75.68,37.80"
    ds, info = pretrain_dataset(root, "auto", RGB, patch=16, samples_per_epoch=40, region=region)
    from rasterio.warp import transform_bounds

    box = transform_bounds("EPSG:4326", "EPSG:3857", *map(float, region.split(",")))
    tol = g.res  # a pixel counts as inside when its centre is (rasterisation)
    box = (box[0] - tol, box[1] - tol, box[2] + tol, box[3] + tol)
    xs = set()
    for i in range(len(ds)):
        _, row, col = ds.position(i)
        x0, y0 = g.transform * (col, row)
        x1, y1 = g.transform * (col + 16, row + 16)
        assert box[0] <= x0 and x1 <= box[2] and box[1] <= y1 and y0 <= box[3]
        assert ds[i]["image"].shape == (3, 16, 16)
        xs.add(col)
    assert max(xs) + 16 < g.width / 2 + 16  # the eastern part is never drawn
    args = ["pretrain", "--data", str(root), "--region", region, "--size", "16"]
    args += ["--batch-size", "2", "--max-steps", "1", "--epochs", "1", "--workers", "0"]
    assert main([*args, "--knn-k", "0", "--out", str(tmp_path / "p")]) == 0


def test_mostly_transparent_patches_are_redrawn(tmp_path):
    root = QGIS / "xyz"  # QGIS renders the UTM scene into 3857 tiles: ~60 % of them transparent
    ds, _ = pretrain_dataset(root, "auto", RGB, patch=16, samples_per_epoch=60)
    (mosaic,) = ds.rasters
    first = [
        mosaic.read_masked(Window(col, row, 16, 16))[1].mean()
        for _, row, col in (ds.position(i) for i in range(len(ds)))
    ]
    assert min(first) < 0.5  # some first draws fall outside the imaged area...
    for i in range(len(ds)):  # ...and are replaced by patches at least half imaged
        assert ds[i]["image"].any(0).float().mean() >= 0.5
    assert ds.bad_reads.total == 0  # redraws at the image's edge are not bad reads


def test_xyz_tree_with_missing_tiles(tmp_path, capsys):
    root = _copy(QGIS / "xyz", tmp_path / "holes")
    sorted(root.rglob("*.png"))[0].unlink()  # 1186/1583: the top-left tile
    cat = scan(root)
    assert len(cat.records) == 3 and cat.notes["missing_tiles"] == 1
    summary = _manifest(root, tmp_path)
    assert summary["count"] == 3 and summary["missing_tiles"] == 1
    assert "1 tile(s) missing" in capsys.readouterr().out
    (mosaic,) = open_rasters(root, "auto", RGB)[0]
    _, valid = mosaic.read_masked(Window(0, 0, 64, 64))  # the hole: transparent, no error
    assert not valid.any()
    ds, _ = pretrain_dataset(root, "auto", RGB, patch=16, samples_per_epoch=20)
    assert all(ds[i]["image"].any() for i in range(len(ds)))


def test_jpeg_xyz_tiles_have_their_holes_masked(tmp_path):
    """QGIS's JPG tile format carries no alpha: the tiles' coverage is the validity mask."""
    root = tmp_path / "jpg"
    tiles = sorted((QGIS / "xyz").rglob("*.png"))
    for t in tiles[1:]:  # the first (top-left) tile missing
        out = root / t.relative_to(QGIS / "xyz").with_suffix(".jpg")
        out.parent.mkdir(parents=True, exist_ok=True)
        with rasterio.open(t) as s:
            data = s.read()[:3]
        with rasterio.open(
            out, "w", driver="JPEG", width=64, height=64, count=3, dtype="uint8"
        ) as d:
            d.write(data)
    (mosaic,) = open_rasters(root, "auto", RGB)[0]
    assert mosaic.band_names == ("R", "G", "B") and mosaic.alpha == 4
    _, hole = mosaic.read_masked(Window(0, 0, 64, 64))
    _, tile = mosaic.read_masked(Window(64, 0, 64, 64))
    assert not hole.any() and tile.all()  # JPEG's black background is a pixel, not a hole


def test_zoom_level_that_does_not_exist(g2t):
    with pytest.raises(
        UsageError, match=r"--zoom 9: .* no tiles at zoom 9; its zoom levels are 11, 12"
    ):
        scan(g2t["xyz"], zoom=9)
    assert scan(g2t["xyz"], zoom=11).notes["zoom"] == 11


def test_fully_transparent_tile_area(tmp_path):
    root = tmp_path / "clear"
    profile = dict(driver="PNG", width=64, height=64, count=4, dtype="uint8")
    for x, y in ((10, 20), (10, 21), (11, 20)):
        (root / "6" / str(x)).mkdir(parents=True, exist_ok=True)
        data = np.zeros((4, 64, 64), np.uint8)
        data[0], data[1], data[2] = 40, 80, 120  # colour under alpha 0: still nodata
        with rasterio.open(root / "6" / str(x) / f"{y}.png", "w", **profile) as dst:
            dst.write(data)
            dst.colorinterp = [
                getattr(rasterio.enums.ColorInterp, c) for c in ("red", "green", "blue", "alpha")
            ]
    ds, _ = pretrain_dataset(root, "auto", RGB, patch=16, samples_per_epoch=2)
    with pytest.raises(DataError, match=r"transparent.*redraws.*--region"):
        ds[0]


def test_xyz_tile_unlike_the_others(tmp_path):
    root = _copy(QGIS / "xyz", tmp_path / "odd")
    bad = sorted(root.rglob("*.png"))[1]
    with rasterio.open(bad) as s:
        data = s.read()[:3]
    bad.unlink()
    with rasterio.open(bad, "w", driver="PNG", width=64, height=64, count=3, dtype="uint8") as d:
        d.write(data)
    with pytest.raises(DataError, match=rf"{bad}: band count 3 differs .*--skip-bad"):
        open_rasters(root, "auto", RGB)
    (mosaic,), info = open_rasters(root, "auto", RGB, skip_bad=True)
    assert info["skipped"] == 1 and "3 tiles" in mosaic.name


# --- tile folders --------------------------------------------------------------------------------


def test_qgis_saved_tiles_count_each_tile_and_read_as_the_vrt(tmp_path):
    root = QGIS / "saved"
    assert detect_format(root) == "tiles"
    summary = _manifest(root, tmp_path)
    assert summary["count"] == 16 and summary["bands"] == ["R", "G", "B"]
    assert summary["crs"] == ["EPSG:32618"]
    assert _manifest(root / "saved.vrt", tmp_path)["count"] == 16  # the .vrt given: its 16 tiles
    (mosaic,), info = open_rasters(root, "auto", RGB)
    assert mosaic.path.endswith("saved.vrt") and info["rasters"] == 1
    with rasterio.open(root / "saved.vrt") as s:
        ref = s.read().astype(np.float32)
        assert (mosaic.grid.width, mosaic.grid.height) == (96, 96)
    assert np.array_equal(mosaic.read(), ref)


def test_gdal_retile_folder_counts_its_tiles(rgb_scene, tmp_path):
    _need("gdal_retile.py")
    out = tmp_path / "retiled"
    out.mkdir()
    subprocess.run(
        ["gdal_retile.py", "-ps", "64", "64", "-targetDir", str(out), str(rgb_scene)],
        check=True,
        capture_output=True,
    )
    n = len(list(out.glob("*.tif")))
    assert n == 16  # 240 px in 64 px tiles: 4 x 4, the last ones narrower
    assert _manifest(out, tmp_path)["count"] == n
    (mosaic,), _ = open_rasters(out, "auto", RGB)
    with rasterio.open(rgb_scene) as s:
        np.testing.assert_array_equal(mosaic.read(), s.read().astype(np.float32))
    subprocess.run(
        ["gdalbuildvrt", "-q", str(out / "all.vrt"), *map(str, sorted(out.glob("*.tif")))],
        check=True,
    )
    assert _manifest(out, tmp_path)["count"] == n  # with the .vrt: still one row per tile


def _rewrite(tile: Path, **changes) -> None:
    with rasterio.open(tile) as s:
        profile, data = s.profile, s.read()
    count = changes.pop("count", profile["count"])
    if count > data.shape[0]:
        data = np.concatenate([data, data[:1]])
    profile.update(count=count, **changes)
    tile.unlink()
    with rasterio.open(tile, "w", **profile) as d:
        d.write(data[:count])


@pytest.mark.parametrize(
    "change,problem",
    [({"count": 4}, "band count 4 differs"), ({"crs": "EPSG:32617"}, "CRS EPSG:32617 differs")],
)
def test_tile_folder_whose_tiles_differ(change, problem, tmp_path):
    root = _copy(QGIS / "saved", tmp_path / "saved")
    bad = root / "saved.5.tif"
    _rewrite(bad, **change)
    with pytest.raises(DataError, match=rf"{bad}: {problem} .*--skip-bad"):
        open_rasters(root, "auto", RGB)
    (mosaic,), info = open_rasters(root, "auto", RGB, skip_bad=True)
    assert info["skipped"] == 1 and "mosaic of 15 tiles" in mosaic.name
    _, valid = mosaic.read_masked(Window(24, 24, 24, 24))  # no alpha in GeoTIFF tiles: no mask
    assert valid is None
    assert not mosaic.read(Window(24, 24, 24, 24)).any()  # the left-out tile is a hole


def test_qgis_opens_the_mosaics_rs_ssl_builds(tmp_path):
    """QGIS (when installed) places the XYZ mosaic rs-ssl builds where rs-ssl says it lies."""
    qgis_python = "/usr/bin/python3"
    probe = subprocess.run([qgis_python, "-c", "import qgis.core"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("QGIS not installed (Debian's qgis package); CI has no QGIS")
    (mosaic,) = open_rasters(QGIS / "xyz", "auto", RGB)[0]
    vrt = tmp_path / "xyz.vrt"
    vrt.write_text(mosaic.path)
    code = (
        "from qgis.core import QgsApplication, QgsRasterLayer\n"
        "app = QgsApplication([], False); app.initQgis()\n"
        f"l = QgsRasterLayer({str(vrt)!r}, 'm')\n"
        "e = l.extent()\n"
        "print(l.isValid(), l.bandCount(), l.crs().authid(), e.xMinimum(), e.yMaximum(), l.width())\n"
    )
    out = subprocess.run(
        [qgis_python, "-c", code],
        capture_output=True,
        text=True,
        # no .aux.xml statistics written beside the committed tiles
        env=os.environ | {"QT_QPA_PLATFORM": "offscreen", "GDAL_PAM_ENABLED": "NO"},
        timeout=120,
    ).stdout.split()
    assert out[:3] == ["True", "4", "EPSG:3857"]
    t: Affine = mosaic.grid.transform
    assert (
        np.allclose([float(out[3]), float(out[4])], [t.c, t.f]) and int(out[5]) == mosaic.grid.width
    )
