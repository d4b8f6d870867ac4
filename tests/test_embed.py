"""Band-set transfer, timm model folders, `rs-ssl embed` and `rs-ssl similar` on the real samples."""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from rs_ssl.bands import resolve_bands
from rs_ssl.cli import main
from rs_ssl.models.transfer import dropped_bands, map_bands, transfer_weight


@pytest.fixture(scope="module")
def run13(tmp_path_factory) -> Path:
    """A real 1-step SimCLR pretrain on the embedded 13-band L1C sample (its model/ folder included)."""
    out = tmp_path_factory.mktemp("pretrain13") / "run"
    assert (
        main(
            [
                "pretrain",
                "--max-steps",
                "1",
                "--batch-size",
                "4",
                "--samples-per-epoch",
                "8",
                "--epochs",
                "1",
                "--size",
                "32",
                "--workers",
                "0",
                "--knn-k",
                "0",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    return out


# --- band-set transfer ---------------------------------------------------------------------------------


def _kernel(c: int) -> torch.Tensor:
    """A (4, c, 3, 3) kernel whose input channel i holds the value i + 1 everywhere: band order is visible."""
    return torch.arange(1, c + 1, dtype=torch.float32).view(1, c, 1, 1).expand(4, c, 3, 3).clone()


def test_l1c_to_l2a_copies_same_named_filters_drops_b10_and_rescales_by_13_over_12():
    src, dst = resolve_bands("13"), resolve_bands("12")
    maps = map_bands(src, dst)
    assert all(m.rule == "name" and m.source == m.target for m in maps)
    assert dropped_bands(src, maps) == ["B10"]
    w = transfer_weight(_kernel(13), src, dst, maps)
    expect = [
        src.names.index(n) + 1 for n in dst.names
    ]  # B11 is channel 12 of L1C, channel 11 of L2A
    torch.testing.assert_close(w[0, :, 0, 0], torch.tensor(expect, dtype=torch.float32) * 13 / 12)


def test_rgb_and_landsat_targets_take_the_nearest_wavelength_band():
    src = resolve_bands("13")
    rgb = {m.target: (m.source, m.rule) for m in map_bands(src, resolve_bands("3"))}
    assert rgb == {
        "R": ("B04", "wavelength"),
        "G": ("B03", "wavelength"),
        "B": ("B02", "wavelength"),
    }
    landsat = {
        m.target: m.source
        for m in map_bands(src, resolve_bands("B2,B3,B4,B5,B6,B7", "landsat_oli"))
    }
    # Landsat's B5 is near infrared (865 nm): Sentinel-2's B8A (864.7 nm), not its red-edge B05 (704 nm).
    assert landsat == {"B2": "B02", "B3": "B03", "B4": "B04", "B5": "B8A", "B6": "B11", "B7": "B12"}
    four = resolve_bands("B02,B03,B04,B08")
    w = transfer_weight(_kernel(13), src, four, map_bands(src, four))
    torch.testing.assert_close(w[0, :, 0, 0], torch.tensor([2.0, 3.0, 4.0, 8.0]) * 13 / 4)


def test_same_band_set_in_the_same_order_is_unchanged():
    sel = resolve_bands("12")
    w = _kernel(12)
    assert torch.equal(transfer_weight(w, sel, sel, map_bands(sel, sel)), w)


def test_pretrain_init_from_a_run_transfers_by_band_metadata(run13: Path, capsys):
    from rs_ssl.models import create_backbone, load_weights

    four = resolve_bands("B02,B03,B04,B08")
    model = create_backbone("resnet18", four, init=run13)
    src = load_weights(run13 / "backbone.safetensors")["conv1.weight"]
    l1c = resolve_bands("13").names
    expect = src[:, [l1c.index(n) for n in four.names]] * 13 / 4
    torch.testing.assert_close(model.conv1.weight.detach(), expect)
    torch.testing.assert_close(
        model.state_dict()["layer1.0.conv1.weight"],
        load_weights(run13 / "backbone.safetensors")["layer1.0.conv1.weight"],
    )
    assert "B08 <- B08 (same name)" in capsys.readouterr().out


def test_13_band_checkpoint_probes_12_band_bigearthnet_without_bands(
    run13: Path, shared_data: Path, tmp_path: Path, capsys
):
    out = tmp_path / "probe"
    assert (
        main(
            [
                "probe",
                "--checkpoint",
                str(run13),
                "--data",
                str(shared_data / "bigearthnet_v2"),
                "--dataset",
                "bigearthnet",
                "--size",
                "32",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "13 bands (s2_l1c) -> 12 bands (s2_l2a)" in printed and "dropped: B10" in printed
    m = json.loads((out / "metrics.json").read_text())
    assert m["backbone"]["bands"] == list(resolve_bands("12").names)
    assert m["backbone"]["band_transfer"]["dropped"] == ["B10"]


# --- model folders -------------------------------------------------------------------------------------


def test_timm_local_dir_loads_every_weight_and_reproduces_rs_ssl_features(
    run13: Path, s2_scene: Path
):
    import timm
    from rasterio.windows import Window
    from safetensors.torch import load_file

    from rs_ssl.data.readers import open_scene
    from rs_ssl.eval.features import FrozenEncoder, load_backbone

    folder = run13 / "model"
    cfg = json.loads((folder / "config.json").read_text())
    assert (
        cfg["architecture"] == "resnet18" and cfg["num_classes"] == 0 and cfg["num_features"] == 512
    )
    assert cfg["model_args"]["in_chans"] == 13 and cfg["pretrained_cfg"]["input_size"] == [
        13,
        32,
        32,
    ]
    assert cfg["bands"] == list(resolve_bands("13").names) and cfg["sensor"] == "s2_l1c"
    assert len(cfg["wavelengths"]) == 13 and len(cfg["pretrained_cfg"]["mean"]) == 13
    assert "Licence of the data" in (folder / "README.md").read_text()

    model = timm.create_model(f"local-dir:{folder}", pretrained=True, num_classes=0).eval()
    saved = load_file(str(folder / "model.safetensors"))
    state = model.state_dict()
    assert saved.keys() == state.keys()
    for k, v in saved.items():  # the first conv included: timm drops one it cannot adapt
        assert torch.equal(v, state[k]), k

    sel = resolve_bands("13")
    x = torch.from_numpy(open_scene(s2_scene, sel).read(Window(100, 200, 32, 32)))[None]
    lb = load_backbone(str(folder), False, "resnet18", "13", None)
    ours = FrozenEncoder(lb.model, lb.selection).eval()(x)
    pc = model.pretrained_cfg
    mean, std = (
        torch.tensor(pc["mean"]).view(1, -1, 1, 1),
        torch.tensor(pc["std"]).view(1, -1, 1, 1),
    )
    with torch.no_grad():
        theirs = model((x - mean) / std)
    torch.testing.assert_close(theirs, ours, rtol=1e-3, atol=1e-4)


# --- embed and similar ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scene_embeddings(run13: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("embed") / "sample"
    assert (
        main(
            [
                "embed",
                "--checkpoint",
                str(run13 / "model"),
                "--size",
                "64",
                "--workers",
                "0",
                "--batch-size",
                "16",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    return out


def test_embed_grid_writes_one_row_per_patch_in_all_three_files_in_the_scene_crs(
    scene_embeddings: Path,
):
    import geopandas as gpd
    import rasterio
    from rasterio.windows import Window, bounds

    from rs_ssl.data import sample_path

    out = scene_embeddings
    with rasterio.open(sample_path() / "s2_B02.tif") as src:  # the 10 m grid the scene is read on
        crs, transform, (h, w) = src.crs, src.transform, src.shape
    rows, cols = (h - 64) // 64 + 1, (w - 64) // 64 + 1
    assert (rows, cols) == (7, 7)
    pq = gpd.read_parquet(out / "embeddings.parquet")
    gp = gpd.read_file(out / "embeddings.gpkg")
    assert len(pq) == len(gp) == rows * cols
    assert pq.crs.to_epsg() == gp.crs.to_epsg() == crs.to_epsg() == 32618
    for _, r in pq.sample(5, random_state=0).iterrows():
        assert r.geometry.bounds == pytest.approx(
            bounds(Window(r["col"], r["row"], 64, 64), transform)
        )
    emb = np.stack(pq.sort_values("id")["embedding"].to_numpy())
    assert emb.shape == (49, 512) and emb.dtype == np.float32 and np.isfinite(emb).all()
    blob = np.stack([np.frombuffer(b, dtype="<f4") for b in gp.sort_values("id")["embedding"]])
    np.testing.assert_array_equal(blob, emb)
    assert {"pc1", "pc8"} <= set(gp.columns)
    with rasterio.open(out / "embedding_rgb.tif") as tif:
        assert tif.crs.to_epsg() == 32618 and tif.shape == (rows, cols) and tif.count == 3
        assert tif.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert tif.transform.a == 640 and (tif.transform.c, tif.transform.f) == (
            transform.c,
            transform.f,
        )
        rgb = tif.read()
    assert (rgb > 0).all() and len(np.unique(rgb[0])) > 10  # every cell has a patch; colours vary
    m = json.loads((out / "metrics.json").read_text())
    assert m["rows"] == 49 and m["grid"][0]["rows"] == 7 and (out / "config.yaml").is_file()


def test_embed_region_keeps_only_patches_inside(run13: Path, tmp_path: Path):
    import geopandas as gpd

    out = tmp_path / "region"
    # The western half of the sample (its lon/lat bounds are about -75.70..-75.64, 37.69..37.73).
    assert (
        main(
            [
                "embed",
                "--checkpoint",
                str(run13),
                "--size",
                "64",
                "--workers",
                "0",
                "--region",
                "-75.80,37.60,-75.67,37.80",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    pq = gpd.read_parquet(out / "embeddings.parquet")
    assert 0 < len(pq) < 49
    region = (
        gpd.GeoSeries.from_xy([-75.80, -75.67], [37.60, 37.80], crs=4326)
        .to_crs(pq.crs)
        .total_bounds
    )
    assert (pq.geometry.bounds.maxx <= region[2] + 1e-6).all()


def test_embed_bigearthnet_samples_with_labels_and_band_transfer(
    run13: Path, shared_data: Path, tmp_path: Path, capsys
):
    import geopandas as gpd
    import rasterio

    ben = shared_data / "bigearthnet_v2"
    out = tmp_path / "ben"
    assert (
        main(
            [
                "embed",
                "--checkpoint",
                str(run13),
                "--data",
                str(ben),
                "--size",
                "32",
                "--workers",
                "0",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert "dropped: B10" in capsys.readouterr().out
    pq, gp = gpd.read_parquet(out / "embeddings.parquet"), gpd.read_file(out / "embeddings.gpkg")
    patches = sorted(ben.glob("BigEarthNet-S2/*/*"))
    assert len(pq) == len(gp) == len(patches) == 21
    assert pq.crs.to_epsg() == gp.crs.to_epsg() == 32633
    assert pq["label"].str.len().min() > 0
    for _, r in pq.iterrows():
        with rasterio.open(next(Path(r["source"]).glob("*_B02.tif"))) as src:
            assert r.geometry.bounds == pytest.approx(tuple(src.bounds))
    assert not (out / "embedding_rgb.tif").exists()


def test_similar_by_row_id_and_by_lon_lat(scene_embeddings: Path, tmp_path: Path):
    import geopandas as gpd
    import pyarrow.parquet as pq

    out = tmp_path / "sim"
    assert (
        main(
            [
                "similar",
                "--embeddings",
                str(scene_embeddings),
                "--query",
                "24",
                "--k",
                "5",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    gp, gq = gpd.read_file(out / "similar.gpkg"), gpd.read_parquet(out / "similar.parquet")
    assert len(gp) == len(gq) == 6 and gp.crs.to_epsg() == 32618
    assert gq["id"].iloc[0] == 24 and gq["rank"].tolist() == list(range(6))
    assert (
        gq["similarity"].iloc[0] == pytest.approx(1.0, abs=1e-5)
        and gq["similarity"].is_monotonic_decreasing
    )
    # the same ranking by brute force over every row
    t = pq.read_table(scene_embeddings / "embeddings.parquet").to_pandas()
    e = np.stack(t["embedding"].to_numpy()).astype(np.float64)
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    brute = t["id"].to_numpy()[np.argsort(-(e @ e[t.index[t["id"] == 24][0]]), kind="stable")[:6]]
    assert gq["id"].tolist() == brute.tolist()
    # LON,LAT inside patch 24's footprint picks patch 24
    centre = (
        gpd.read_parquet(scene_embeddings / "embeddings.parquet")
        .set_index("id")
        .geometry.to_crs(4326)[24]
        .centroid
    )
    out2 = tmp_path / "sim2"
    assert (
        main(
            [
                "similar",
                "--embeddings",
                str(scene_embeddings),
                "--query",
                f"{centre.x},{centre.y}",
                "--k",
                "2",
                "--out",
                str(out2),
            ]
        )
        == 0
    )
    assert gpd.read_parquet(out2 / "similar.parquet")["id"].iloc[0] == 24


def test_embed_and_similar_help(capsys):
    for cmd, flags in (
        ("embed", ("--checkpoint", "--size", "--stride", "--region", "--pcs")),
        ("similar", ("--embeddings", "--query", "--k")),
    ):
        with pytest.raises(SystemExit):
            main([cmd, "--help"])
        text = capsys.readouterr().out
        assert all(f in text for f in flags), cmd


_QGIS_CHECK = textwrap.dedent("""
    import json, sys
    from qgis.core import QgsApplication, QgsRasterLayer, QgsVectorLayer
    app = QgsApplication([], False)
    app.initQgis()
    folder = sys.argv[1]
    v = QgsVectorLayer(folder + "/embeddings.gpkg|layername=embeddings", "emb", "ogr")
    r = QgsRasterLayer(folder + "/embedding_rgb.tif", "rgb")
    print(json.dumps({"vector_valid": v.isValid(), "features": v.featureCount(), "vector_crs": v.crs().authid(),
                      "raster_valid": r.isValid(), "raster_crs": r.crs().authid(),
                      "size": [r.width(), r.height()]}))
    del v, r  # layers alive at exitQgis() crash QGIS 3.22 on exit
    app.exitQgis()
""")


def _qgis_python() -> str | None:
    py = shutil.which("python3", path="/usr/bin")
    if py is None:
        return None
    ok = subprocess.run(
        [py, "-c", "import qgis.core"], capture_output=True, env={"QT_QPA_PLATFORM": "offscreen"}
    )
    return py if ok.returncode == 0 else None


def test_qgis_opens_the_geopackage_and_the_geotiff_in_the_scene_crs(scene_embeddings: Path):
    py = _qgis_python()
    if py is None:
        pytest.skip(
            "QGIS is not installed (Debian: apt-get install qgis python3-qgis qgis-providers)"
        )
    res = subprocess.run(
        [py, "-c", _QGIS_CHECK, str(scene_embeddings)],
        capture_output=True,
        text=True,
        timeout=300,
        env={"QT_QPA_PLATFORM": "offscreen", "HOME": str(scene_embeddings)},
    )
    assert res.returncode == 0, res.stderr[-2000:]
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got == {
        "vector_valid": True,
        "features": 49,
        "vector_crs": "EPSG:32618",
        "raster_valid": True,
        "raster_crs": "EPSG:32618",
        "size": [7, 7],
    }
