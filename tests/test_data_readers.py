"""Readers on the real samples: band order against the single-band files, shapes, labels, splits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
import torch
from rasterio.windows import Window

from rs_ssl.bands import resolve_bands
from rs_ssl.data import detect_format, labelled_dataset, pretrain_dataset, scan
from rs_ssl.data.bigearthnet import nomenclature
from rs_ssl.data.datasets import RecordSource, TemporalPairDataset, open_record
from rs_ssl.data.readers import EUROSAT_ORDER
from rs_ssl.data.sentinel2 import band_files
from rs_ssl.errors import DataError

L2A = resolve_bands(12).names
L1C = resolve_bands(13).names


def _read1(path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1).astype(np.float32)


def _nearest_band(channel: np.ndarray, files: dict[str, Path], expected: str) -> str:
    """Among the files of `expected`'s resolution, the band that best matches `channel` averaged down to it."""
    errs = {}
    shape = _read1(files[expected]).shape
    for name, f in files.items():
        ref = _read1(f)
        if ref.shape != shape:
            continue
        k = channel.shape[0] // ref.shape[0]
        down = (
            channel[: ref.shape[0] * k, : ref.shape[1] * k]
            .reshape(ref.shape[0], k, ref.shape[1], k)
            .mean((1, 3))
        )
        errs[name] = float(np.abs(down - ref).mean())
    return min(errs, key=errs.get)


def test_formats_are_detected(shared_data):
    expect = {
        "sentinel2_l1c_scene": "sentinel2",
        "bigearthnet_v2": "bigearthnet",
        "eurosat_ms": "folder",
        "rgb_aerial/ucmerced": "folder",
        "ssl4eo_s12": "ssl4eo",
        "s2_tile_folder": "geotiff",
        "s2_tile_folder/patch_0.tif": "geotiff",
        "bigearthnet_native_samples": "bigearthnet",
    }
    for rel, fmt in expect.items():
        assert detect_format(shared_data / rel) == fmt, rel


def test_stacked_geotiffs_read_windows_in_file_band_order(shared_data):
    ds, info = pretrain_dataset(
        shared_data / "s2_tile_folder",
        "auto",
        resolve_bands(12),
        patch=48,
        samples_per_epoch=6,
        seed=3,
    )
    assert info["rasters"] == 7 and info["format"] == "geotiff" and info["skipped"] == 0
    crss = {r.grid.crs.to_epsg() for r in ds.rasters}
    assert len(crss) >= 5  # different UTM zones, each raster keeps its own
    for i in range(len(ds)):
        k, row, col = ds.position(i)
        with rasterio.open(ds.rasters[k].path) as src:
            ref = src.read(window=Window(col, row, 48, 48)).astype(np.float32)
        img = ds[i]["image"]
        assert img.dtype == torch.float32 and img.shape == (12, 48, 48)
        np.testing.assert_array_equal(img.numpy(), ref)


def test_twelve_band_stack_gives_zero_b10_to_a_13_band_model(shared_data):
    ds, _ = pretrain_dataset(
        shared_data / "s2_tile_folder" / "patch_0.tif",
        "auto",
        resolve_bands(13),
        patch=32,
        samples_per_epoch=2,
    )
    k, row, col = ds.position(0)
    img = ds[0]["image"].numpy()
    with rasterio.open(ds.rasters[k].path) as src:
        ref = src.read(window=Window(col, row, 32, 32)).astype(np.float32)
    b10 = L1C.index("B10")
    assert (img[b10] == 0).all()
    np.testing.assert_array_equal(np.delete(img, b10, axis=0), ref)


def test_bigearthnet_v2_bands_labels_and_splits(shared_data):
    root = shared_data / "bigearthnet_v2"
    meta = pd.read_parquet(root / "metadata.parquet")
    ds, info = labelled_dataset(root, "auto", resolve_bands(12), split="validation", patch=120)
    assert ds.multilabel and ds.classes == nomenclature(19) and len(ds.classes) == 19
    assert len(ds) == (meta.split == "validation").sum() == 7
    for i in (0, 3):
        item = ds[i]
        folder = Path(ds.records[i].path)
        row = meta[meta.patch_id == folder.name].iloc[0]
        assert item["label"].dtype == torch.float32
        assert {ds.classes[j] for j in torch.nonzero(item["label"]).flatten().tolist()} == set(
            row.labels
        )
        img = item["image"].numpy()
        assert img.shape == (12, 120, 120)
        files = band_files(folder)
        for name in ("B02", "B03", "B04", "B08"):  # the 10 m bands are the output grid itself
            np.testing.assert_array_equal(img[L2A.index(name)], _read1(files[name]))
        for c, name in enumerate(
            L2A
        ):  # every band, also the resampled 20/60 m ones, in registry order
            assert _nearest_band(img[c], files, name) == name
    tr, _ = labelled_dataset(root, "auto", resolve_bands(12), split="train", patch=64)
    te, _ = labelled_dataset(root, "auto", resolve_bands(12), split="test", patch=64)
    assert len(tr) == len(te) == 7 and tr[0]["image"].shape == (12, 64, 64)
    assert not {r.path for r in tr.records} & {r.path for r in te.records}


def test_bigearthnet_13_band_model_gets_zero_b10(shared_data):
    ds, info = pretrain_dataset(
        shared_data / "bigearthnet_v2",
        "auto",
        resolve_bands(13),
        patch=120,
        samples_per_epoch=1,
        split="all",
    )
    assert info["samples"] == 21 and len(ds) == 21
    img = ds[0]["image"].numpy()
    assert img.shape == (13, 120, 120) and (img[L1C.index("B10")] == 0).all()
    files = band_files(Path(ds.records[0].path))
    np.testing.assert_array_equal(img[L1C.index("B08")], _read1(files["B08"]))


def _v1_copy(shared_data, tmp_path, labels):
    src = shared_data / "bigearthnet_native_samples" / "extra_v1_T34WFU_14_23"
    name = "S2A_MSIL2A_20180526T100031_14_23"  # v1 patch folder naming: <product>_<col>_<row>
    dst = tmp_path / "BigEarthNet-v1.0" / name
    dst.mkdir(parents=True)
    for f in src.glob("*.tiff"):
        (dst / f"{name}_{f.stem.rsplit('_', 1)[1]}.tif").symlink_to(f)
    (dst / f"{name}_labels_metadata.json").write_text(
        json.dumps(
            {
                "labels": labels,
                "coordinates": {"ulx": 0, "uly": 0, "lrx": 1200, "lry": -1200},
                "projection": "EPSG:32634",
                "tile_source": "S2A_MSIL2A_20180526T100031_N9999_R122_T34WFU",
                "acquisition_date": "2018-05-26 10:00:31",
            }
        )
    )
    (tmp_path / "BigEarthNet-v1.0" / "test.csv").write_text(f"{name}\n")
    return tmp_path / "BigEarthNet-v1.0", dst, src


def test_bigearthnet_v1_maps_43_labels_to_19(shared_data, tmp_path):
    labels = ["Coniferous forest", "Transitional woodland/shrub", "Water bodies", "Bare rock"]
    root, dst, src = _v1_copy(shared_data, tmp_path, labels)
    assert detect_format(root) == "bigearthnet"
    ds, _ = labelled_dataset(root, "auto", resolve_bands(12), split="test", patch=120)
    got = {ds.classes[j] for j in torch.nonzero(ds[0]["label"]).flatten().tolist()}
    assert got == {
        "Coniferous forest",
        "Transitional woodland, shrub",
        "Inland waters",
    }  # Bare rock has no 19-class match
    img = ds[0]["image"].numpy()
    b02 = next(src.glob("*_B02.tiff"))
    np.testing.assert_array_equal(img[L2A.index("B02")], _read1(b02))
    ds43, _ = labelled_dataset(root, "auto", resolve_bands(12), split="test", patch=120, level=2)
    assert len(ds43.classes) == 43
    assert {ds43.classes[j] for j in torch.nonzero(ds43[0]["label"]).flatten().tolist()} == set(
        labels
    )
    assert len(labelled_dataset(root, "auto", resolve_bands(12), split=None, patch=120)[0]) == 1


def test_bigearthnet_patch_missing_a_band_names_folder_and_bands(shared_data, tmp_path):
    src = next((shared_data / "bigearthnet_v2" / "BigEarthNet-S2").glob("*/*"))
    dst = tmp_path / "BigEarthNet-S2" / src.parent.name / src.name
    dst.mkdir(parents=True)
    for f in src.iterdir():
        if not f.name.endswith("_B03.tif"):
            (dst / f.name).symlink_to(f)
    with pytest.raises(DataError) as e:
        pretrain_dataset(tmp_path, "auto", resolve_bands(12), patch=32, samples_per_epoch=1)
    msg = str(e.value)
    assert src.name in msg and "B03" in msg and "B02" in msg and "B8A" in msg


def test_eurosat_band_order_and_labels(shared_data):
    ds, info = labelled_dataset(
        shared_data / "eurosat_ms", "auto", resolve_bands(13), split=None, patch=64
    )
    assert ds.classes == ["AnnualCrop", "Highway", "Pasture", "SeaLake"] and not ds.multilabel
    for i in range(len(ds)):
        item = ds[i]
        path = Path(ds.records[i].path)
        assert (
            item["label"].dtype == torch.long and ds.classes[int(item["label"])] == path.parent.name
        )
        with rasterio.open(path) as src:
            ref = src.read().astype(np.float32)
        img = item["image"].numpy()
        for c, name in enumerate(L1C):  # EuroSAT stores B8A last
            np.testing.assert_array_equal(img[c], ref[EUROSAT_ORDER.index(name)])
        # real-data sanity check of that order: the cirrus band B10 is the darkest band
        assert int(np.argmin(img.reshape(13, -1).mean(1))) == L1C.index("B10")


def test_ucmerced_rgb_folders_and_wrong_band_request(shared_data):
    root = shared_data / "rgb_aerial" / "ucmerced"
    ds, _ = labelled_dataset(root, "auto", resolve_bands(3), split=None, patch=256)
    assert ds.classes == ["airplane", "forest"] and len(ds) == 4
    with rasterio.open(ds.records[0].path) as src:
        np.testing.assert_array_equal(ds[0]["image"].numpy(), src.read().astype(np.float32))
    small, _ = pretrain_dataset(root, "auto", resolve_bands(3), patch=64, samples_per_epoch=1)
    assert small[1]["image"].shape == (3, 64, 64)
    with pytest.raises(DataError) as e:
        pretrain_dataset(root, "auto", resolve_bands(13), patch=64, samples_per_epoch=1)
    assert ".tif" in str(e.value) and "this file has: R, G, B" in str(e.value)


def test_ssl4eo_modalities_dates_and_pairs(shared_data):
    root = shared_data / "ssl4eo_s12"
    cat = scan(root, sensor="s2_l1c")
    assert (
        cat.notes["modality"] == "s2c"
        and len(cat.records) == 2
        and {r.group for r in cat.records} == {"0000200"}
    )
    ds, _ = pretrain_dataset(root, "auto", resolve_bands(13), patch=64, samples_per_epoch=1)
    assert ds[0]["image"].shape == (13, 64, 64)  # each sample resized to the patch size
    reader = open_record(cat, cat.records[0], resolve_bands(13))
    folder = Path(cat.records[0].path)
    g = reader.grid  # the 10 m grid clipped to the area every band covers (B1's extent is shifted)
    with rasterio.open(folder / "B2.tif") as src:
        col = round((g.transform.c - src.transform.c) / src.transform.a)
        row = round((g.transform.f - src.transform.f) / src.transform.e)
        assert (g.transform.a, g.transform.e) == (
            src.transform.a,
            src.transform.e,
        ) and g.crs == src.crs
        win = Window(col, row, g.width, g.height)
        b2, b8 = src.read(1, window=win), rasterio.open(folder / "B8.tif").read(1, window=win)
    img = reader.read()
    assert img.shape == (13, g.height, g.width) and min(g.width, g.height) >= 258
    np.testing.assert_array_equal(img[L1C.index("B02")], b2)
    np.testing.assert_array_equal(img[L1C.index("B08")], b8)
    l2a = scan(root, sensor="s2_l2a")
    assert l2a.notes["modality"] == "s2a" and all("/s2a/" in r.path for r in l2a.records)
    pairs = TemporalPairDataset(RecordSource(cat, cat.records, resolve_bands(13)), patch=32)
    item = pairs[0]
    assert len(pairs) == 1 and item["image"].shape == item["image2"].shape == (13, 32, 32)
    assert not torch.equal(item["image"], item["image2"])  # two different dates


def test_subset_is_seeded(shared_data):
    a, info = pretrain_dataset(
        shared_data / "bigearthnet_v2",
        "auto",
        resolve_bands(12),
        patch=32,
        samples_per_epoch=1,
        subset=5,
        seed=1,
    )
    b, _ = pretrain_dataset(
        shared_data / "bigearthnet_v2",
        "auto",
        resolve_bands(12),
        patch=32,
        samples_per_epoch=1,
        subset=5,
        seed=1,
    )
    c, _ = pretrain_dataset(
        shared_data / "bigearthnet_v2",
        "auto",
        resolve_bands(12),
        patch=32,
        samples_per_epoch=1,
        subset=5,
        seed=2,
    )
    assert len(a) == info["samples"] == 5 and a.records == b.records and a.records != c.records


def _write_stack(path: Path, bands: int, size: int = 16, dtype="uint16", crs="EPSG:32633"):
    from rasterio.transform import from_origin

    data = np.stack(
        [
            np.full((size, size), 100 * (b + 1), dtype=dtype) + np.arange(size, dtype=dtype)[None]
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
        dtype=dtype,
        crs=crs,
        transform=from_origin(500000, 4000000, 10, 10),
    ) as dst:
        dst.write(data)
    return data


def test_bad_inputs_name_the_file(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="empty folder"):
        pretrain_dataset(empty, "auto", resolve_bands(12), patch=8, samples_per_epoch=1)
    odd = tmp_path / "odd"
    odd.mkdir()
    _write_stack(odd / "five.tif", 5)
    with pytest.raises(DataError) as e:
        pretrain_dataset(odd, "auto", resolve_bands(12), patch=8, samples_per_epoch=1)
    assert "five.tif" in str(e.value) and "5 bands" in str(e.value)


def test_truncated_file_error_or_skip(tmp_path):
    folder = tmp_path / "tiles"
    folder.mkdir()
    _write_stack(folder / "good.tif", 12)
    _write_stack(folder / "bad.tif", 12, size=64)
    raw = (folder / "bad.tif").read_bytes()
    (folder / "bad.tif").write_bytes(raw[:300])
    with pytest.raises(DataError) as e:
        pretrain_dataset(folder, "geotiff", resolve_bands(12), patch=8, samples_per_epoch=4)
    assert "bad.tif" in str(e.value)
    ds, info = pretrain_dataset(
        folder, "geotiff", resolve_bands(12), patch=8, samples_per_epoch=4, skip_bad=True
    )
    assert info["skipped"] == 1 and "bad.tif" in info["skipped_reasons"][0] and len(ds.rasters) == 1
    img = ds[0]["image"].numpy()
    assert [int(img[b, 0, 0]) for b in range(12)] == [
        100 * (b + 1) + int(ds.position(0)[2]) for b in range(12)
    ]


def test_sentinel2_scene_keeps_b10_in_place(s2_scene):
    ds, info = pretrain_dataset(s2_scene, "auto", resolve_bands(13), patch=60, samples_per_epoch=2)
    assert info["format"] == "sentinel2" and info["rasters"] == 1
    # preview.tif is not a band; B10 (cirrus) is the darkest band of the scene
    assert "preview" not in " ".join(str(f) for f in ds.rasters[0].files)
    means = ds[0]["image"].reshape(13, -1).mean(1)
    assert int(torch.argmin(means)) == L1C.index("B10")


def test_a_worker_keeps_a_bounded_number_of_scenes_open(tmp_path, s2_scene):
    """Reading patches from many scenes must not keep every scene's band files open (memory,
    and the open-file limit): beyond MAX_OPEN the least recently read scene is closed, and it
    reads the same pixels again after reopening."""
    import os

    from rs_ssl.data.handles import MAX_OPEN, OPEN

    n = MAX_OPEN + 8
    for i in range(n):
        d = tmp_path / f"scene{i:03d}"
        d.mkdir()
        for f in s2_scene.glob("*.tif"):
            (d / f.name).symlink_to(f)
    ds, _ = pretrain_dataset(
        tmp_path, "auto", resolve_bands(13), patch=32, samples_per_epoch=300, seed=0
    )
    assert len(ds.rasters) == n

    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    before = open_fds()
    first = ds[0]["image"]
    per_scene = open_fds() - before
    assert per_scene >= 13  # one descriptor per band file at least
    for i in range(1, 300):
        ds[i]
    assert len({k for k, *_ in (ds.position(i) for i in range(300))}) == n  # every scene was read
    assert len(OPEN) == MAX_OPEN
    assert open_fds() - before <= MAX_OPEN * per_scene
    assert torch.equal(ds[0]["image"], first)


@pytest.mark.parametrize("layout", ["eurosat_ms", "aid_scenes"])
def test_a_dataset_item_opens_its_file_once_and_reads_the_same_pixels(
    shared_data, layout, monkeypatch
):
    """An item of a file dataset is one GDAL open (the header's handle also reads the pixels; a JPEG
    PIL decodes needs none after the header), with the pixels a separately opened reader gives."""
    import rs_ssl.data.readers as R

    sel = resolve_bands(13 if layout == "eurosat_ms" else 3)
    ds, _ = pretrain_dataset(str(shared_data / layout), "auto", sel, patch=32, samples_per_epoch=1)
    opens = []
    real = R.open_raster
    monkeypatch.setattr(R, "open_raster", lambda p: opens.append(p) or real(p))
    for i in range(3):
        opens.clear()
        got = ds.read(i)
        assert len(opens) == 1 and opens[0] == ds.records[i].path
        lazy = open_record(ds.catalog, ds.records[i], sel)  # the path workers take: opened on read
        np.testing.assert_array_equal(got, lazy.read())
        lazy.close()
    assert np.unique(got.reshape(len(got), -1), axis=0).shape[0] == len(got)  # distinct bands
