"""Study recipes: listing, precedence (defaults < recipe < --config < options), dry runs against the
studies' numbers, and a two-step run of each recipe on the real samples (size and batch overridden)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from rs_ssl import cli
from rs_ssl.errors import UsageError
from rs_ssl.pretrain import dry_run
from rs_ssl.recipes import available

SIX = [
    "contrastive-resnet18",
    "mocov2-resnext50",
    "mocov3-vitb16-millionaid",
    "rpl-mobilenetv3",
    "simclr-s2-bigearthnet",
    "simclr-s2-california",
]
S2_10 = "B02,B03,B04,B05,B06,B07,B08,B8A,B11,B12"

# The studies' numbers each dry run must print (lr_effective: the lr the optimiser gets at the recipe's batch).
STUDY = {
    "mocov3-vitb16-millionaid": dict(
        method="mocov3",
        backbone="vit_base_patch16_224",
        size=224,
        subset=150000,
        batch_size=4096,
        epochs=300,
        optimizer="adamw",
        lr_effective=1.5e-4 * 4096 / 256,
        weight_decay=0.1,
        warmup_epochs=40,
        temperature=0.2,
        momentum=0.99,
        proj_dim=256,
        freeze_patch_embed=True,
        augs="mocov3",
        bands="R,G,B",
    ),
    "simclr-s2-bigearthnet": dict(
        method="simclr",
        backbone="resnet152",
        size=120,
        batch_size=32,
        epochs=50,
        temperature=0.1,
        optimizer="sgd",
        lr_effective=0.01,  # the study's momentum-free SGD 0.1 as 0.01 with momentum 0.9
        max_steps=1000,  # where the study's CosineDecay(0.1, decay_steps=1000) reaches 0
        augs="simclr-s2",
        bands=S2_10,
        format="bigearthnet",
    ),
    "simclr-s2-california": dict(
        method="simclr",
        backbone="resnet152",
        size=120,
        batch_size=32,
        epochs=50,
        temperature=0.1,
        optimizer="sgd",
        lr_effective=0.01,  # the study's momentum-free SGD 0.1 as 0.01 with momentum 0.9
        max_steps=1000,  # where the study's CosineDecay(0.1, decay_steps=1000) reaches 0
        augs="simclr-s2",
        bands=S2_10,
        region="california",
    ),
    "rpl-mobilenetv3": dict(
        method="rpl",
        backbone="mobilenetv3_large_100",
        optimizer="adamw",
        lr_effective=1e-3,
        weight_decay=0.01,
    ),
    "contrastive-resnet18": dict(
        method="simclr",
        backbone="resnet18",
        optimizer="adam",
        lr_effective=3e-4,
        weight_decay=1e-4,
        gradient_clip=3.0,
        keep_checkpoints=True,
    ),
    "mocov2-resnext50": dict(
        method="mocov2",
        backbone="resnext50_32x4d",
        batch_size=32,
        temperature=0.2,
        queue_size=16384,
        momentum=0.999,
        optimizer="sgd",
        lr_effective=0.03 * 32 / 256,
        weight_decay=1e-4,
        proj_dim=128,
        augs="mocov2",
    ),
}
# Backbone parameter counts (in_chans as the recipe's bands), from timm's architectures.
BACKBONE_PARAMS = {
    "vit_base_patch16_224": (85e6, 87e6),
    "resnet152": (57e6, 59e6),
    "resnext50_32x4d": (22e6, 24e6),
    "mobilenetv3_large_100": (4.1e6, 4.3e6),
    "resnet18": (11e6, 11.3e6),
}
# Two training steps of these take 20-35 s each on a loaded 2-core CPU: kept out of the default run.
BIG = {
    "mocov3-vitb16-millionaid",
    "simclr-s2-bigearthnet",
    "simclr-s2-california",
    "mocov2-resnext50",
}


def _param(name: str):
    return pytest.param(name, marks=pytest.mark.slow) if name in BIG else name


def test_recipes_lists_the_six_one_line_each_with_its_source(capsys):
    assert cli.main(["recipes"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[0] for line in lines] == SIX
    assert all("(source: " in line for line in lines)
    assert sorted(available()) == SIX


def test_recipes_name_prints_the_cited_yaml(capsys):
    assert cli.main(["recipes", "mocov2-resnext50"]) == 0
    text = capsys.readouterr().out
    assert "queue_size: 16384" in text and "facebookresearch/moco" in text


@pytest.mark.parametrize("name", SIX)
def test_every_recipe_value_carries_a_citation_comment(name):
    body = (Path(available()[name].path)).read_text()
    in_section = False
    for line in body.splitlines():
        if line in ("pretrain:", "probe:", "finetune:"):
            in_section = True
        elif (
            in_section
            and line.startswith("  ")
            and not line.lstrip().startswith("#")
            and ":" in line
        ):
            assert "#" in line, f"{name}: uncited value {line.strip()!r}"


def test_precedence_defaults_recipe_config_command_line(tmp_path):
    _, cfg = cli.parse(["pretrain", "--recipe", "mocov2-resnext50"])
    assert (cfg.method, cfg.queue_size, cfg.batch_size, cfg.size) == (
        "mocov2",
        16384,
        32,
        64,
    )  # size: default
    conf = tmp_path / "c.yaml"
    conf.write_text("queue_size: 4096\nbatch_size: 16\n")
    _, cfg = cli.parse(
        ["pretrain", "--recipe", "mocov2-resnext50", "--config", str(conf), "--batch-size", "8"]
    )
    assert (cfg.queue_size, cfg.batch_size, cfg.temperature, cfg.recipe) == (
        4096,
        8,
        0.2,
        "mocov2-resnext50",
    )
    # A --config file that names a recipe (a run's config.yaml does) resolves it underneath.
    conf.write_text("recipe: simclr-s2-bigearthnet\nepochs: 3\n")
    _, cfg = cli.parse(["pretrain", "--config", str(conf)])
    assert (cfg.backbone, cfg.epochs, cfg.augs) == ("resnet152", 3, "simclr-s2")


def test_probe_and_finetune_take_the_studys_evaluation_step():
    _, cfg = cli.parse(["probe", "--recipe", "mocov3-vitb16-millionaid"])
    assert (cfg.dataset, cfg.size, cfg.recipe) == ("millionaid", 224, "mocov3-vitb16-millionaid")
    _, cfg = cli.parse(["finetune", "--recipe", "rpl-mobilenetv3"])
    assert (cfg.label_fraction, cfg.lr) == ("1.0,0.5,0.1", 1e-3)
    _, cfg = cli.parse(["finetune", "--recipe", "simclr-s2-bigearthnet"])
    assert cfg.label_fraction == "0.01,0.03,0.1,0.25,0.5,1.0" and cfg.bands == S2_10


def test_unknown_recipe_or_missing_step_is_a_usage_error(capsys):
    with pytest.raises(UsageError, match="available: contrastive-resnet18"):
        cli.parse(["pretrain", "--recipe", "byol-imagenet"])
    with pytest.raises(UsageError, match="defines no `probe` step"):
        cli.parse(["probe", "--recipe", "simclr-s2-california"])
    assert cli.main(["probe", "--recipe", "simclr-s2-california"]) == 2


@pytest.mark.parametrize("name", SIX)
def test_dry_run_resolves_the_studys_values(name, tmp_path, capsys):
    out = tmp_path / "dry"
    _, cfg = cli.parse(["pretrain", "--recipe", name, "--dry-run", "--out", str(out)])
    resolved = dry_run(cfg)
    printed = capsys.readouterr().out
    assert "no --data given: data checks skipped" in printed and "lr_effective" in printed
    values = {**vars(cfg), **resolved}
    for key, expected in STUDY[name].items():
        if isinstance(expected, float):
            assert values[key] == pytest.approx(expected, rel=1e-9), key
        else:
            assert values[key] == expected, key
    lo, hi = BACKBONE_PARAMS[cfg.backbone]
    assert lo < resolved["backbone_parameters"] < hi
    assert resolved["parameters"] > resolved["backbone_parameters"]
    written = yaml.safe_load((out / "config.yaml").read_text())
    assert written["recipe"] == name and written["dry_run"] is False  # replaying it trains
    assert "lr_effective" in (out / "config.yaml").read_text()
    assert not (out / "checkpoints").exists()


def test_dry_run_with_data_checks_the_bands(shared_data, tmp_path, capsys):
    argv = [
        "pretrain",
        "--recipe",
        "contrastive-resnet18",
        "--dry-run",
        "--out",
        str(tmp_path / "d"),
        "--data",
        str(shared_data / "bigearthnet_v2"),
        "--bands",
        S2_10,
    ]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert (
        "bands B02,B03,B04,B05,B06,B07,B08,B8A,B11,B12 found" in printed
        and "skipped" not in printed
    )
    # Sentinel-2 bands asked of RGB photographs: the check reads one file and names the bands it has.
    assert cli.main([*argv[:6], "--data", str(shared_data / "aid_scenes"), "--bands", "13"]) == 1
    assert "not found (this file has: R, G, B)" in capsys.readouterr().err


def _scene_bbox() -> str:
    from rasterio.warp import transform_bounds

    from rs_ssl.bands import resolve_bands
    from rs_ssl.data import sample_path
    from rs_ssl.data.sentinel2 import Sentinel2Scene

    g = Sentinel2Scene(sample_path(), resolve_bands(13)).grid
    return ",".join(str(v) for v in transform_bounds(g.crs, "EPSG:4326", *g.bounds))


def _smoke_data(name: str, shared: Path) -> list[str]:
    """Each recipe's real sample: its study's kind of data, or the nearest the shared samples hold."""
    if name == "mocov3-vitb16-millionaid":  # RGB scenes in class folders, as MillionAID
        return ["--data", str(shared / "aid_scenes"), "--subset", "8"]
    if name == "simclr-s2-bigearthnet":
        return ["--data", str(shared / "bigearthnet_v2")]
    if (
        name == "simclr-s2-california"
    ):  # no Californian sample: the embedded L1C scene, region = its bounds
        return ["--sensor", "s2_l1c", "--region", _scene_bbox()]
    return []  # the embedded Sentinel-2 L1C sample


@pytest.mark.parametrize("name", [_param(n) for n in SIX])
def test_each_recipe_runs_two_steps_on_the_samples(name, shared_data, tmp_path):
    out = tmp_path / "run"
    size = "32"
    argv = [
        "pretrain",
        "--recipe",
        name,
        "--out",
        str(out),
        "--size",
        size,
        "--batch-size",
        "4",
        "--samples-per-epoch",
        "8",
        "--max-steps",
        "2",
        "--workers",
        "0",
        "--knn-k",
        "0",
        *_smoke_data(name, shared_data),
    ]
    assert cli.main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 2 and metrics["final_loss"] == metrics["final_loss"]  # not NaN
    written = yaml.safe_load((out / "config.yaml").read_text())
    assert written["recipe"] == name and written["method"] == STUDY[name]["method"]
    assert written["backbone"] == STUDY[name]["backbone"]


def test_contrastive_recipe_keeps_a_checkpoint_of_every_epoch(tmp_path):
    out = tmp_path / "run"
    argv = [
        "pretrain",
        "--recipe",
        "contrastive-resnet18",
        "--out",
        str(out),
        "--size",
        "32",
        "--batch-size",
        "4",
        "--samples-per-epoch",
        "8",
        "--epochs",
        "3",
        "--workers",
        "0",
        "--knn-k",
        "0",
    ]
    assert cli.main(argv) == 0
    names = sorted(p.name for p in (out / "checkpoints").glob("epoch*.ckpt"))
    assert names == ["epoch000.ckpt", "epoch001.ckpt", "epoch002.ckpt"]
