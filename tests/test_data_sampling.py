"""`pretrain --sampler`: TorchGeo's samplers drawing the training patches (issue 14, item 4)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rasterio.windows import Window

from rs_ssl.bands import resolve_bands
from rs_ssl.cli import main
from rs_ssl.config import PretrainConfig
from rs_ssl.data import open_rasters
from rs_ssl.data.sampling import SAMPLERS, region_of_interest, training_patches
from rs_ssl.errors import UsageError

SAVED = Path(__file__).parent / "fixtures" / "qgis" / "saved"  # a QGIS tile folder, EPSG:32618
RGB = resolve_bands(3)


def test_cli_choices_are_the_data_layers():
    import dataclasses

    f = next(f for f in dataclasses.fields(PretrainConfig) if f.name == "sampler")
    assert f.metadata["choices"] == SAMPLERS and f.default == "rs-ssl"


@pytest.mark.parametrize("name", SAMPLERS[1:])
def test_epoch_patches_are_a_function_of_seed_and_epoch(name):
    def queries(seed, epoch):
        ds, _ = training_patches(None, "auto", resolve_bands(13), sampler=name, patch=32,
                                 samples_per_epoch=24, batch_size=4, seed=seed)  # fmt: skip
        ds.set_epoch(epoch)
        return [tuple((s.start, s.stop) for s in q[:2]) for q in ds.queries], ds

    a, ds = queries(0, 2)
    assert a == queries(0, 2)[0]  # what a resumed run redraws for its epoch
    if name == "torchgeo-grid":
        assert len(a) == (480 // 32) ** 2 and ds.shuffle  # every cell once (the 480 px sample)
    else:
        assert len(a) == 24 and a != queries(0, 3)[0] and a != queries(1, 2)[0]
        assert ds.shuffle == (name != "torchgeo-batch")
    img = ds[0]["image"]
    assert img.shape == (13, 32, 32) and img.dtype.is_floating_point and img.any()


def test_a_torchgeo_patch_is_the_window_rs_ssl_reads():
    ds, _ = training_patches(None, "auto", resolve_bands(13), sampler="torchgeo-random", patch=32,
                             samples_per_epoch=4)  # fmt: skip
    (scene,), _ = open_rasters(None, "auto", resolve_bands(13))
    x, y = ds.queries[1][:2]
    t = scene.grid.transform
    col, row = round((x.start - t.c) / t.a), round((t.f - y.stop) / -t.e)
    np.testing.assert_array_equal(ds[1]["image"].numpy(), scene.read(Window(col, row, 32, 32)))


@pytest.mark.parametrize("name", SAMPLERS[1:])
def test_region_is_the_samplers_region_of_interest(name):
    region = (
        "-75.715,37.711,-75.669,37.747"  # inside the tile folder (-75.73..-75.62, 37.67..37.76)
    )
    ds, info = training_patches(SAVED, "auto", RGB, sampler=name, patch=8, samples_per_epoch=40,
                                batch_size=4, region=region)  # fmt: skip
    assert info["format"] == "tiles" and info["sampler"] == name
    roi = region_of_interest(region, ds.rasters.crs).bounds
    full = ds.rasters.index.total_bounds
    assert full[0] < roi[0] < roi[2] < full[2] and full[1] < roi[1] < roi[3] < full[3]
    # inside the ROI's bounding box (TorchGeo clips its index to it), give or take a pixel; the
    # grid covers it whole, its last cells reaching out by less than a patch
    tol = 8 * 100 if name == "torchgeo-grid" else 100
    for q in ds.queries:
        x, y = q[:2]
        assert roi[0] - tol <= x.start and x.stop <= roi[2] + tol
        assert roi[1] - tol <= y.start and y.stop <= roi[3] + tol
    assert ds[0]["image"].shape == (3, 8, 8)


def test_patch_datasets_are_refused(shared_data):
    with pytest.raises(UsageError, match=r"--sampler torchgeo-random: .* use --sampler rs-ssl"):
        training_patches(shared_data / "eurosat_ms", "auto", resolve_bands(13),
                         sampler="torchgeo-random", patch=32, samples_per_epoch=4)  # fmt: skip


def test_region_outside_the_data_says_so():
    from rs_ssl.errors import DataError

    with pytest.raises(DataError, match="torchgeo-random: no patch .*inside --region"):
        training_patches(SAVED, "auto", RGB, sampler="torchgeo-random", patch=8,
                         samples_per_epoch=4, region="10,10,10.1,10.1")  # fmt: skip


@pytest.mark.parametrize(
    "data,region", [(None, None), (SAVED, "-75.715,37.711,-75.669,37.747")], ids=["sample", "tiles"]
)
def test_pretrain_with_torchgeo_random(data, region, tmp_path, capsys):
    args = ["pretrain", "--sampler", "torchgeo-random", "--size", "16", "--batch-size", "2"]
    args += ["--samples-per-epoch", "8", "--max-steps", "2", "--epochs", "1", "--workers", "0"]
    args += ["--knn-k", "0", "--out", str(tmp_path / "p")]
    args += (["--data", str(data)] if data else []) + (["--region", region] if region else [])
    assert main(args) == 0
    assert "--sampler torchgeo-random: 8 patches per epoch" in capsys.readouterr().out


def test_draws_over_several_rasters_ignore_the_global_rng(s2_scene, tmp_path):
    """TorchGeo picks each query's raster on the global RNG: the epoch's draw must not depend on it
    (a resumed run has another global state) nor change it (augmentations draw from it)."""
    import rasterio
    import torch
    from rasterio.transform import Affine

    with rasterio.open(s2_scene / "s2_B04.tif") as src:
        data, t, profile = src.read(1), src.transform, src.profile
    folder = tmp_path / "two"
    folder.mkdir()
    for name, (c0, shift) in {"a": (0, 0.0), "b": (400, 5.0)}.items():  # b off a's pixel grid
        tr = Affine(t.a, 0, t.c + c0 * t.a + shift, 0, t.e, t.f)
        p = profile | {"width": 300, "height": 300, "transform": tr, "count": 1}
        with rasterio.open(folder / f"{name}.tif", "w", **p) as dst:
            dst.write(data[:300, c0 : c0 + 300], 1)
            dst.set_band_description(1, "B04")
    sel = resolve_bands("B04")
    for name in ("torchgeo-random", "torchgeo-batch"):
        runs = []
        for global_seed in (1, 999):
            torch.manual_seed(global_seed)
            ds, info = training_patches(folder, "auto", sel, sampler=name, patch=16,
                                        samples_per_epoch=32, batch_size=4)  # fmt: skip
            assert info["rasters"] == 2
            after = torch.rand(1)
            torch.manual_seed(global_seed)
            assert torch.equal(after, torch.rand(1))  # the global stream is untouched
            runs.append([tuple(s.start for s in q[:2]) for q in ds.queries])
        assert runs[0] == runs[1]
        xs = {x for x, _ in runs[0]}
        assert min(xs) < t.c + 300 * t.a < max(xs)  # both rasters drawn from


def _pretrain(out: Path, sampler: str, kill_at: int = -1, resume: bool = False):
    import subprocess
    import sys

    args = ["pretrain", "--sampler", sampler, "--bands", "B04,B03,B02", "--size", "16"]
    args += ["--batch-size", "8"]
    args += ["--samples-per-epoch", "24", "--epochs", "2", "--workers", "0", "--knn-k", "0"]
    args += ["--ckpt-every", "1", "--seed", "5", "--out", str(out)] + (
        ["--resume"] if resume else []
    )
    helper = Path(__file__).parent / "_pretrain_kill_at.py"
    return subprocess.run(
        [sys.executable, str(helper), str(kill_at), *args],
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow  # three pretrain processes (~90 s here); the fast tests above check the draw
@pytest.mark.parametrize("sampler", ["torchgeo-random", "torchgeo-batch"])
def test_resume_with_a_torchgeo_sampler_matches_the_uninterrupted_run(sampler, tmp_path):
    import signal

    from rs_ssl.runs import read_loss_history

    ref = tmp_path / "ref"
    assert _pretrain(ref, sampler).returncode == 0
    out = tmp_path / "run"
    assert _pretrain(out, sampler, kill_at=4).returncode == -signal.SIGKILL  # mid epoch 1
    p = _pretrain(out, sampler, resume=True)
    assert p.returncode == 0 and "resuming from" in p.stdout, p.stderr[-2000:]
    steps, losses = read_loss_history(out)
    ref_steps, ref_losses = read_loss_history(ref)
    assert steps == ref_steps == list(range(6))
    assert losses == pytest.approx(
        ref_losses, rel=1e-4, abs=1e-5
    )  # the same patches, step for step


def test_torchgeo_patches_of_xyz_tiles_read_transparent_pixels_as_zero():
    xyz = Path(__file__).parent / "fixtures" / "qgis" / "xyz"
    ds, _ = training_patches(xyz, "auto", RGB, sampler="torchgeo-grid", patch=64,
                             samples_per_epoch=4)  # fmt: skip
    (mosaic,) = ds.rasters.rasters
    t = mosaic.grid.transform
    for i in range(len(ds)):
        x, y = ds.queries[i][:2]
        col, row = round((x.start - t.c) / t.a), round((t.f - y.stop) / -t.e)
        img, valid = mosaic.read_masked(Window(col, row, 64, 64))
        np.testing.assert_array_equal(ds[i]["image"].numpy(), img)
    assert not valid.all() and valid.any()
