"""Sensors from their files: Sentinel-2 acquisitions and SAFE products, Landsat 8/9 C2 L2 scenes.

Checked against TorchGeo's own fixtures (`torchgeo_fixtures/`, with what TorchGeo 0.8.1 reads from
them in `expected.json`), and the bad inputs of issue 14 (a Landsat scene missing a band file, a
SAFE product without its granule folder) on copies of them made of symbolic links.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import rasterio

from rs_ssl.bands import resolve_bands
from rs_ssl.cli import main
from rs_ssl.data import pretrain_dataset, resolve_data_bands, scan
from rs_ssl.data.datasets import open_rasters
from rs_ssl.errors import DataError

L2A = "S2A_MSIL2A_20220414T110751_N0400_R108_T26EMU_20220414T165533.SAFE"
L1C = "S2A_MSIL1C_20220412T162841_N0400_R083_T16TFM_20220412T202300.SAFE"
LANDSAT_ID = "LC08_L2SP_023032_20210622_20210629_02_T1"


@pytest.fixture(scope="module")
def fixtures(shared_data) -> Path:
    return shared_data / "torchgeo_fixtures"


@pytest.fixture(scope="module")
def expected(fixtures) -> dict:
    return json.loads((fixtures / "expected.json").read_text())


def _link_tree(src: Path, dst: Path, skip=lambda p: False) -> Path:
    """A copy of `src` made of links to its files, without the files `skip` names."""
    for d, _, files in os.walk(src):
        out = dst / Path(d).relative_to(src)
        out.mkdir(parents=True, exist_ok=True)
        for f in files:
            if not skip(Path(d) / f):
                (out / f).symlink_to(Path(d, f).resolve())
    return dst


def test_one_scene_per_sentinel2_acquisition_as_torchgeo_indexes(fixtures, expected):
    cat = scan(fixtures / "sentinel2")
    assert cat.format == "sentinel2"
    assert len(cat.records) == expected["sentinel2"]["index_entries"] == 4
    dates = sorted(Path(r.path).name.split("_")[1][:8] for r in cat.records)
    assert dates == ["20190412", "20190414", "20220412", "20220414"]
    sel = resolve_data_bands("auto", None, fixtures / "sentinel2")
    assert sel.names == tuple(expected["sentinel2"]["bands"])
    # each acquisition reads its own files: the two dates of one granule differ in their pixels
    a, b = (open_rasters(cat, resolve_bands("B02,B03"))[0][i].read() for i in (0, 1))
    assert a.shape == b.shape and not np.array_equal(a, b)


def test_l2a_safe_given_directly_is_one_12_band_scene_per_acquisition(fixtures):
    safe = fixtures / "sentinel2" / L2A
    cat = scan(safe)
    assert len(cat.records) == 2 and cat.sensor == "s2_l2a"
    sel = resolve_data_bands("auto", None, safe)
    assert (sel.sensor.key, len(sel)) == ("s2_l2a", 12) and "B10" not in sel.names
    rasters, _ = open_rasters(cat, sel)
    # on the 10 m grid of R10m, the 20/60 m bands (from R20m/R60m) resampled onto it
    assert all(r.read().shape == (12, r.grid.height, r.grid.width) for r in rasters)
    assert rasters[0].grid.res == 10
    l1c = scan(fixtures / "sentinel2" / L1C)
    assert len(l1c.records) == 2 and l1c.sensor == "s2_l1c"


def test_manifest_lists_the_four_acquisitions(fixtures, tmp_path, capsys):
    assert main(["manifest", str(fixtures / "sentinel2"), "--out", str(tmp_path / "m")]) == 0
    summary = json.loads((tmp_path / "m" / "summary.json").read_text())
    assert summary["count"] == 4 and summary["skipped"] == 0
    assert summary["crs"] == ["EPSG:32616"]


def test_landsat8_c2_l2_reads_with_oli_names_and_landsat_scaling(fixtures, expected, tmp_path):
    root = fixtures / "landsat8"
    cat = scan(root)
    assert cat.format == "landsat" and len(cat.records) == expected["landsat8"]["index_entries"]
    sel = resolve_data_bands("auto", None, root)
    assert sel.sensor.key == "landsat_oli"
    assert [f"SR_{n}" for n in sel.names] == expected["landsat8"]["bands"]
    assert (sel.sensor.scale, sel.sensor.offset) == (0.0000275, -0.2)
    # the same with --sensor landsat_oli, and TorchGeo's names are accepted by --bands
    assert resolve_data_bands("auto", "landsat_oli", root).names == sel.names
    assert resolve_bands("SR_B4,SR_B3,SR_B2").names == ("B4", "B3", "B2")
    # B4 is the SR_B4 file's pixels; the thermal ST_B10 and QA files are no band
    (scene,) = open_rasters(cat, resolve_bands("B4,B1", "landsat_oli"))[0]
    with rasterio.open(root / f"{LANDSAT_ID}_SR_B4.TIF") as src:
        b4 = src.read(1).astype(np.float32)
    # (the fixture's bands share their pixels: the files read are checked by name)
    assert np.array_equal(scene.read()[0], b4)
    assert [f.name[len(LANDSAT_ID) :] for f in scene.files] == ["_SR_B4.TIF", "_SR_B1.TIF"]
    assert not any("ST_" in str(f) or "QA" in str(f) for f in scene.files)
    assert main(["manifest", str(root), "--out", str(tmp_path / "m")]) == 0
    summary = json.loads((tmp_path / "m" / "summary.json").read_text())
    assert summary["format"] == "landsat" and summary["bands"] == list(sel.names)


def test_landsat_scene_missing_a_band_file(fixtures, tmp_path):
    root = _link_tree(
        fixtures / "landsat8", tmp_path / "ls", skip=lambda p: p.name.endswith("_SR_B5.TIF")
    )
    with pytest.raises(DataError, match=rf"{LANDSAT_ID}: .*lacks band file.*{LANDSAT_ID}_SR_B5"):
        scan(root)
    # beside a complete scene, --skip-bad leaves it out and counts it
    good = _link_tree(fixtures / "landsat8", tmp_path / "two" / "good")
    (tmp_path / "two" / "bad").symlink_to(root)
    cat = scan(good.parent, skip_bad=True)
    assert [Path(r.path).parent.name for r in cat.records] == ["good"]
    assert len(cat.notes["scan_problems"]) == 1 and "SR_B5" in cat.notes["scan_problems"][0]
    out = tmp_path / "m"
    assert main(["manifest", str(good.parent), "--skip-bad", "--out", str(out)]) == 0
    assert json.loads((out / "summary.json").read_text())["skipped"] == 1


def test_safe_product_with_a_missing_granule_folder(fixtures, tmp_path):
    broken = tmp_path / "products" / L2A
    broken.mkdir(parents=True)
    (broken / "manifest.safe").write_text("<xfdu/>")
    (broken / "GRANULE").mkdir()  # emptied: the granule folder is missing
    with pytest.raises(DataError, match=rf"{L2A}: SAFE product without GRANULE.*missing"):
        scan(broken)
    _link_tree(fixtures / "sentinel2" / L1C, tmp_path / "products" / L1C)
    with pytest.raises(DataError, match="granule folder is missing"):
        scan(tmp_path / "products")
    cat = scan(tmp_path / "products", skip_bad=True)
    assert len(cat.records) == 2 and len(cat.notes["scan_problems"]) == 1


def test_l2a_data_read_with_13_bands_says_b10_is_zeros(fixtures, capsys):
    safe = fixtures / "sentinel2" / L2A
    for spec in ("13", "B02,B10"):
        sel = resolve_data_bands(spec, None, safe)
        ds, info = pretrain_dataset(safe, "auto", sel, patch=32, samples_per_epoch=2)
        assert info["zero_bands"] == {"B10": 2}
        assert "B10 missing from 2 of the 2 first item(s)" in capsys.readouterr().out
        b10 = sel.names.index("B10")
        assert not ds[0]["image"][b10].any()  # zeros, as the note says
    _, info = pretrain_dataset(
        safe, "auto", resolve_data_bands("auto", None, safe), patch=32, samples_per_epoch=2
    )
    assert info["zero_bands"] == {} and "note" not in capsys.readouterr().out


def test_safe_product_with_several_granules_lists_each(fixtures, tmp_path):
    """Older SAFE products hold several granules: each granule's acquisitions are scenes."""
    safe = _link_tree(fixtures / "sentinel2" / L1C, tmp_path / L1C)
    (granule,) = (safe / "GRANULE").iterdir()
    _link_tree(granule, safe / "GRANULE" / granule.name.replace("T16TFM", "T16TFN"))
    cat = scan(safe)
    assert (
        len(cat.records) == 4 and len({Path(r.path).parent.parent.name for r in cat.records}) == 2
    )
