"""End-to-end `rs-ssl pretrain` on the embedded real Sentinel-2 sample."""

import json
import subprocess
import sys

import pytest
import timm
import torch
import yaml
from safetensors.torch import load_file

from rs_ssl import cli


def _run(tmp_path, *extra):
    out = tmp_path / "run"
    argv = [
        "pretrain",
        "--bands",
        "13",
        "--out",
        str(out),
        "--size",
        "32",
        "--batch-size",
        "8",
        "--samples-per-epoch",
        "32",
        "--epochs",
        "2",
        "--workers",
        "0",
        "--method",
        "mocov2",
        *extra,
    ]
    assert cli.main(argv) == 0
    return out


def test_pretrain_smoke_leaves_every_output(tmp_path):
    out = _run(tmp_path)
    for f in (
        "checkpoints/last.ckpt",
        "backbone.safetensors",
        "metrics.json",
        "config.yaml",
        "loss.png",
    ):
        assert (out / f).is_file(), f
    m = json.loads((out / "metrics.json").read_text())
    assert m["steps"] == 8 and m["epochs_completed"] == 2
    assert m["bands"][10] == "B10" and len(m["bands"]) == 13
    assert all(v == v for v in (m["first_loss"], m["final_loss"]))  # not NaN
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["command"] == "pretrain" and cfg["size"] == 32
    # the exported backbone loads into timm as documented
    model = timm.create_model(
        "resnet18", in_chans=13, num_classes=0, checkpoint_path=str(out / "backbone.safetensors")
    )
    state = load_file(str(out / "backbone.safetensors"))
    assert torch.equal(model.state_dict()["conv1.weight"], state["conv1.weight"])
    assert state["conv1.weight"].shape[1] == 13


def test_resume_continues_to_the_same_step_count(tmp_path):
    out = _run(tmp_path, "--max-steps", "4")
    assert json.loads((out / "metrics.json").read_text())["steps"] == 4
    argv = [
        "pretrain",
        "--out",
        str(out),
        "--resume",
        "--config",
        str(out / "config.yaml"),
        "--max-steps",
        "8",
    ]
    assert cli.main(argv) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["steps"] == 8 and m["resumed_from"]
    # the loss curve holds both segments: steps 0..7, no gap, no repeat
    from rs_ssl.runs import read_loss_history

    steps, losses = read_loss_history(out)
    assert steps == list(range(8)) and len(losses) == 8


def test_region_outside_the_sample_fails_with_both_bounds(tmp_path, capsys):
    rc = cli.main(
        [
            "pretrain",
            "--region",
            "california",
            "--out",
            str(tmp_path / "r"),
            "--max-steps",
            "1",
            "--workers",
            "0",
        ]
    )
    assert rc == 1
    err = capsys.readouterr().err
    assert (
        "california" in err
        and "region bounds" in err
        and "data bounds" in err
        and "-122" in err
        and "-75" in err
    )


def test_region_bbox_inside_the_sample(tmp_path):
    # lon/lat bbox covering the western half of the embedded sample (UTM 18N, ~75.7 W, 37.7 N)
    from rasterio.warp import transform_bounds

    from rs_ssl.bands import resolve_bands
    from rs_ssl.data import sample_path
    from rs_ssl.data.sentinel2 import Sentinel2Scene

    g = Sentinel2Scene(sample_path(), resolve_bands(13)).grid
    w, s, e, n = transform_bounds(g.crs, "EPSG:4326", *g.bounds)
    bbox = f"{w},{s},{(w + e) / 2},{n}"
    out = _run(tmp_path, "--region", bbox, "--max-steps", "2")
    assert json.loads((out / "metrics.json").read_text())["steps"] == 2


@pytest.mark.slow
def test_pretrain_cli_subprocess_default_demo_settings(tmp_path):
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "rs_ssl",
            "pretrain",
            "--bands",
            "13",
            "--out",
            str(tmp_path / "d"),
            "--max-steps",
            "20",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert p.returncode == 0, p.stderr[-2000:]


def test_folder_of_scene_folders_is_read_as_scenes(tmp_path):
    from rs_ssl.data import detect_format, sample_path

    root = tmp_path / "archive"
    for i in range(2):
        d = root / f"scene{i}"
        d.mkdir(parents=True)
        for f in sample_path().glob("*.tif"):
            (d / f.name).symlink_to(f)
    assert detect_format(root) == "sentinel2"
    out = _run(tmp_path, "--data", str(root), "--max-steps", "2")
    assert json.loads((out / "metrics.json").read_text())["data"]["rasters"] == 2


def test_bands_3_on_sentinel2_means_true_colour(tmp_path, capsys):
    out = _run(tmp_path, "--bands", "3", "--max-steps", "2")
    m = json.loads((out / "metrics.json").read_text())
    assert m["bands"] == ["B04", "B03", "B02"]
    assert "true-colour" in capsys.readouterr().out


def test_moco_queue_is_clamped_by_the_real_epoch_length():
    from rs_ssl.methods import MoCoV2

    clamp = MoCoV2.effective_queue_size
    assert clamp(16384, 32, 512) == 256  # georeferenced scenes: --samples-per-epoch patches
    assert clamp(16384, 32, samples=500_000) == 16384  # a large patch dataset: untouched
    assert clamp(16384, 32, samples=100) == 32  # never below one batch
