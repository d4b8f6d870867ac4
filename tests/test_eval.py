"""`rs-ssl probe` / `finetune` / `report` end to end on the real samples in ../shared/data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from rs_ssl.cli import main

sk = pytest.importorskip("sklearn.metrics")


def _metrics(out: Path) -> dict:
    return json.loads((out / "metrics.json").read_text())


@pytest.fixture(scope="module")
def ben(shared_data: Path) -> Path:
    return shared_data / "bigearthnet_v2"


@pytest.fixture(scope="module")
def checkpoint_run(tmp_path_factory) -> Path:
    """A run folder shaped like `rs-ssl pretrain`'s: backbone.safetensors with its metadata.

    Its weights are another seed's initialisation: enough to tell the checkpoint path from --random-init.
    """
    from rs_ssl.bands import resolve_bands
    from rs_ssl.models.backbone import create_backbone, export_backbone

    run = tmp_path_factory.mktemp("pretrain-run")
    torch.manual_seed(123)
    sel = resolve_bands("12")
    model = create_backbone("resnet18", sel)
    export_backbone(
        model,
        run / "backbone.safetensors",
        metadata={
            "timm_model": "resnet18",
            "in_chans": "12",
            "bands": ",".join(sel.names),
            "sensor": sel.sensor.key,
            "method": "simclr",
        },
    )
    return run


@pytest.fixture(scope="module")
def ben_random(ben: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("probe-ben-random")
    rc = main(
        [
            "probe",
            "--random-init",
            "--data",
            str(ben),
            "--dataset",
            "bigearthnet",
            "--bands",
            "12",
            "--size",
            "32",
            "--knn",
            "3",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    return out


def test_probe_bigearthnet_multilabel_metrics_match_sklearn(ben_random: Path):
    m = _metrics(ben_random)
    assert m["task"] == "multi-label" and len(m["classes"]) == 19
    assert (
        m["splits"]["official"] and m["splits"]["split_source"] == "metadata.parquet column split"
    )
    assert m["splits"]["sizes"] == {"train": 7, "validation": 7, "test": 7}
    for key in ("f1_micro", "f1_macro", "map_micro", "map_macro"):
        assert 0.0 <= m[key] <= 1.0
        assert 0.0 <= m["knn"][key] <= 1.0
    p = torch.load(ben_random / "predictions.pt")
    y, s = p["target"].numpy().astype(int), p["score"].numpy()
    t = m["linear"]["threshold"]
    # the threshold is the validation-optimal one
    from rs_ssl.eval.metrics import choose_threshold

    assert t == choose_threshold(p["val_target"], p["val_score"])
    pred = (s >= t).astype(int)
    assert m["f1_micro"] == pytest.approx(sk.f1_score(y, pred, average="micro"))
    pos = y.sum(0) > 0
    assert m["map_macro"] == pytest.approx(
        sk.average_precision_score(y[:, pos], s[:, pos], average="macro")
    )
    assert m["map_micro"] == pytest.approx(sk.average_precision_score(y, s, average="micro"))
    assert sum(v is not None for v in m["linear"]["per_class_ap"].values()) == int(pos.sum())
    for fig in ("metrics.png", "samples.png"):
        assert (ben_random / fig).stat().st_size > 5000
    assert (ben_random / "config.yaml").is_file()


def test_probe_checkpoint_keeps_weights_frozen_and_differs_from_random_init(
    ben: Path, ben_random: Path, checkpoint_run: Path, tmp_path: Path, monkeypatch
):
    import rs_ssl.eval.features as P  # read by eval.protocol at call time

    seen = {}
    real = P.load_backbone

    def spy(*a, **kw):
        lb = real(*a, **kw)
        seen["lb"] = lb
        seen["before"] = {k: v.clone() for k, v in lb.model.state_dict().items()}
        return lb

    monkeypatch.setattr(P, "load_backbone", spy)
    out = tmp_path / "probe"
    assert (
        main(
            [
                "probe",
                "--checkpoint",
                str(checkpoint_run),
                "--data",
                str(ben),
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
    after = seen["lb"].model.state_dict()
    assert seen["before"].keys() == after.keys()
    for k, v in seen["before"].items():  # weights and BatchNorm running statistics
        assert torch.equal(v, after[k]), k
    assert not any(p.requires_grad for p in seen["lb"].model.parameters())
    m, r = _metrics(out), _metrics(ben_random)
    assert (
        m["backbone"]["weights"].endswith("backbone.safetensors")
        and m["backbone"]["method"] == "simclr"
    )
    assert m["backbone"]["bands"] == r["backbone"]["bands"]  # bands from the checkpoint's metadata
    assert (m["map_macro"], m["map_micro"]) != (r["map_macro"], r["map_micro"])


def test_probe_single_label_folder_uses_seeded_stratified_split(shared_data: Path, tmp_path: Path):
    out = tmp_path / "uc"
    assert (
        main(
            [
                "probe",
                "--random-init",
                "--data",
                str(shared_data / "rgb_aerial" / "ucmerced"),
                "--bands",
                "3",
                "--size",
                "32",
                "--knn",
                "1",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    m = _metrics(out)
    assert m["task"] == "single-label" and m["classes"] == ["airplane", "forest"]
    assert "seeded stratified" in m["splits"]["split_source"]
    # 4 images, 2 per class: one per class tested, and validation is carved out of train, never train itself
    assert m["splits"]["sizes"] == {"train": 1, "validation": 1, "test": 2}
    assert (
        m["splits"]["validation_source"].startswith("carved out of train")
        and not m["splits"]["official"]
    )
    p = torch.load(out / "predictions.pt")
    y, pred = p["target"].numpy(), p["score"].argmax(1).numpy()
    assert m["accuracy"] == pytest.approx(sk.accuracy_score(y, pred))
    assert m["f1"] == pytest.approx(sk.f1_score(y, pred, average="macro", zero_division=0))
    assert m["linear"]["confusion_matrix"] == sk.confusion_matrix(y, pred, labels=[0, 1]).tolist()
    assert (out / "confusion.png").is_file() and (out / "samples.png").is_file()


@pytest.mark.parametrize(
    "args",
    [
        ["probe", "--data", "x"],  # neither --checkpoint nor --random-init
        ["probe", "--random-init", "--checkpoint", "run", "--data", "x"],
        ["probe", "--random-init", "--knn", "-1"],
        ["probe", "--checkpoint", "/nonexistent/run"],
    ],
)
def test_probe_bad_usage_exits_2(args, tmp_path: Path):
    assert main([*args, "--out", str(tmp_path / "o")]) == 2


def _export(run: Path, bands: str, seed: int) -> Path:
    from rs_ssl.bands import resolve_bands
    from rs_ssl.models.backbone import create_backbone, export_backbone

    run.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    sel = resolve_bands(bands)
    export_backbone(
        create_backbone("resnet18", sel),
        run / "backbone.safetensors",
        metadata={
            "timm_model": "resnet18",
            "in_chans": str(len(sel)),
            "bands": ",".join(sel.names),
            "sensor": sel.sensor.key,
            "method": "simclr",
        },
    )
    return run


@pytest.fixture(scope="module")
def finetune_run(shared_data: Path, tmp_path_factory) -> Path:
    ckpt = _export(tmp_path_factory.mktemp("rgb-run"), "3", seed=7)
    out = tmp_path_factory.mktemp("finetune")
    rc = main(
        [
            "finetune",
            "--checkpoint",
            str(ckpt),
            "--data",
            str(shared_data / "rgb_aerial" / "ucmerced"),
            "--size",
            "32",
            "--label-fraction",
            "0.5,1.0",
            "--seeds",
            "2",
            "--epochs",
            "2",
            "--batch-size",
            "4",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    return out


def test_finetune_label_efficiency_table_plot_and_plateau(finetune_run: Path):
    m = _metrics(finetune_run)
    assert m["task"] == "single-label" and m["metric"] == "f1"
    for key in ("accuracy", "precision", "recall", "f1"):
        assert 0.0 <= m[key] <= 1.0
    assert {(t["init"], t["fraction"]) for t in m["table"]} == {
        (i, f) for i in ("pretrained", "scratch") for f in (0.5, 1.0)
    }
    assert len(m["runs"]) == 2 * 2 * 2
    for t in m["table"]:
        vals = [
            r["test"]["f1"]
            for r in m["runs"]
            if (r["init"], r["fraction"]) == (t["init"], t["fraction"])
        ]
        assert (
            t["mean"] == pytest.approx(sum(vals) / 2)
            and t["min"] == min(vals)
            and t["max"] == max(vals)
        )
        assert 1 <= t["plateau_epoch"] <= 2 and len(t["val_curve_mean"]) == 2
        assert (
            t["train_samples"] == 1
        )  # two training images, one per class, one of them held out for validation
    headline = [
        r["test"]["f1"] for r in m["runs"] if r["init"] == "pretrained" and r["fraction"] == 1.0
    ]
    assert m["f1"] == pytest.approx(sum(headline) / 2)
    assert (finetune_run / "label_efficiency.png").stat().st_size > 5000


def test_plateau_epoch_rule():
    from rs_ssl.eval.finetuning import plateau_epoch

    assert plateau_epoch([0.1, 0.5, 0.795, 0.80, 0.79]) == 3
    assert plateau_epoch([0.9, 0.2]) == 1


def _fake_pretrain_run(path: Path, optimizer: str, losses: list[float]) -> Path:
    """The files `rs-ssl pretrain` leaves (metrics.json, config.yaml, loss_history.csv); the report only reads them."""
    import yaml

    path.mkdir(parents=True)
    rows = ["step,loss"] + [f"{i},{v}" for i, v in enumerate(losses)]
    (path / "loss_history.csv").write_text("\n".join(rows) + "\n")
    (path / "config.yaml").write_text(
        yaml.safe_dump(
            {"command": "pretrain", "method": "simclr", "optimizer": optimizer, "lr": None}
        )
    )
    (path / "metrics.json").write_text(
        json.dumps(
            {
                "command": "pretrain",
                "method": "simclr",
                "backbone": "resnet18",
                "steps": len(losses),
                "epochs_completed": 2,
                "first_loss": losses[0],
                "final_loss": losses[-1],
            }
        )
    )
    return path


def test_report_collects_runs_into_markdown_and_html(
    ben_random: Path, finetune_run: Path, tmp_path: Path
):
    a = _fake_pretrain_run(tmp_path / "adam", "adam", [4.2, 3.9, 3.5, 3.3, 3.1, 3.0, 2.9, 2.85])
    b = _fake_pretrain_run(tmp_path / "sgd", "sgd", [4.2, 4.1, 4.0, 3.8, 3.7, 3.6, 3.5, 3.45])
    out = tmp_path / "report"
    assert (
        main(["report", str(a), str(b), str(ben_random), str(finetune_run), "--out", str(out)]) == 0
    )
    md, page = (out / "report.md").read_text(), (out / "report.html").read_text()
    figs = _metrics(out)["figures"]
    assert {
        "loss_curves.png",
        "probe_metrics_multi-label.png",
        f"{ben_random.name}_samples.png",
        f"{finetune_run.name}_label_efficiency.png",
    } <= set(figs)
    for f in figs:
        assert (out / "figures" / f).stat().st_size > 5000
        assert f"](figures/{f})" in md and f"src='figures/{f}'" in page
    assert "| adam | simclr | resnet18 | 8 | 4.200 | 2.850 |" in md and "| sgd | simclr |" in md
    assert "| pretrained | 0.500 |" in md and "| scratch | 1.000 |" in md


def test_report_without_runs_or_with_a_non_run_folder_exits_2(tmp_path: Path):
    assert main(["report", "--out", str(tmp_path / "r")]) == 2
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "r2")]) == 2


def _benchmark(name: str):
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_polygon_labels_majority_by_area_on_the_embedded_scene(tmp_path: Path):
    from rs_ssl.bands import resolve_bands
    from rs_ssl.data import open_rasters
    from rs_ssl.eval.polygons import coverage, polygon_dataset, read_labels

    gj = _benchmark("california_probe").mini_polygons(tmp_path / "p.geojson")
    sel = resolve_bands("13")
    ds, info = polygon_dataset(
        None, "auto", sel, str(gj), "landcover", patch=32, min_coverage=0.3, multilabel=False
    )
    # boxes on the 32 px grid: built_up 4x4, cropland 6x2 + 3x2, forest 3x3 + 4x2 patches
    counts = {c: sum(int(t) == i for t in ds.targets) for i, c in enumerate(ds.classes)}
    assert counts == {"built_up": 16, "cropland": 18, "forest": 17}
    assert info["unlabelled_patches"] == 15 * 15 - 51
    # 64 px: the built_up box covers 1, 1/2 or 1/4 of the patches it touches; (row 128, col 192) is 1/2
    # forest and 1/4 built_up, so the majority by area makes it forest
    raster = open_rasters(None, "auto", sel)[0][0]
    cov = coverage(raster, read_labels(gj, "landcover"), "landcover", ds.classes, 64)
    assert cov[2, 4].tolist() == [0.5, 0.0, 0.25] and cov[3, 4].tolist() == [1.0, 0.0, 0.0]
    ds64, _ = polygon_dataset(
        None, "auto", sel, str(gj), "landcover", patch=64, min_coverage=0.5, multilabel=False
    )
    by_pos = dict(zip(ds64.positions, (ds64.classes[int(t)] for t in ds64.targets), strict=True))
    assert sum(v == "built_up" for v in by_pos.values()) == 5 and by_pos[(0, 128, 192)] == "forest"
    ml, _ = polygon_dataset(
        None, "auto", sel, str(gj), "landcover", patch=64, min_coverage=0.25, multilabel=True
    )
    pos = dict(zip(ml.positions, ml.targets, strict=True))
    assert pos[(0, 128, 192)].tolist() == [1.0, 0.0, 1.0]


def test_polygon_min_coverage_is_checked_against_the_options_range(tmp_path: Path):
    from rs_ssl.bands import resolve_bands
    from rs_ssl.errors import UsageError
    from rs_ssl.eval.polygons import polygon_dataset

    gj = _benchmark("california_probe").mini_polygons(tmp_path / "p.geojson")
    for bad in (0.0, 1.5):
        with pytest.raises(UsageError, match=rf"--min-coverage {bad}: must be in \(0, 1\]"):
            polygon_dataset(
                None,
                "auto",
                resolve_bands("13"),
                str(gj),
                "landcover",
                patch=32,
                min_coverage=bad,
                multilabel=False,
            )


def test_polygon_labels_bad_field_exits_2(tmp_path: Path):
    gj = _benchmark("california_probe").mini_polygons(tmp_path / "p.geojson")
    assert (
        main(
            [
                "probe",
                "--random-init",
                "--labels",
                str(gj),
                "--label-field",
                "crop",
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )


@pytest.mark.slow
def test_california_probe_benchmark_mini(tmp_path: Path):
    m = _benchmark("california_probe").run(["--mini", "--out", str(tmp_path / "cal")])
    assert m["classes"] == ["built_up", "cropland", "forest"] and m["splits"]["sizes"]["test"] == 10
    assert "majority class by area" in m["splits"]["labelling"]


@pytest.mark.slow
def test_pretrained_and_random_init_probes_differ(shared_data: Path, tmp_path: Path):
    ben = shared_data / "bigearthnet_v2"
    assert (
        main(
            [
                "pretrain",
                "--data",
                str(ben),
                "--bands",
                "12",
                "--size",
                "32",
                "--batch-size",
                "4",
                "--epochs",
                "3",
                "--workers",
                "0",
                "--out",
                str(tmp_path / "pre"),
            ]
        )
        == 0
    )
    res = {}
    for name, init in (
        ("pre", ["--checkpoint", str(tmp_path / "pre")]),
        ("rand", ["--random-init", "--bands", "12"]),
    ):
        assert (
            main(
                [
                    "probe",
                    *init,
                    "--data",
                    str(ben),
                    "--dataset",
                    "bigearthnet",
                    "--size",
                    "32",
                    "--out",
                    str(tmp_path / f"probe-{name}"),
                ]
            )
            == 0
        )
        res[name] = _metrics(tmp_path / f"probe-{name}")
    assert res["pre"]["map_micro"] != res["rand"]["map_micro"]
    for m in res.values():
        assert 0 < m["map_micro"] <= 1 and 0 < m["map_macro"] <= 1


def test_augsearch_ranking_drop_and_matrix():
    from rs_ssl.eval.augment_search import keep_after_drop, matrix, pairs, rank

    augs = ["flip", "gain", "blur", "speckle"]
    assert len(pairs(augs)) == 4 + 6
    scores = {p: 0.0 for p in pairs(augs)}
    scores[("flip", "flip")], scores[("flip", "gain")], scores[("blur", "speckle")] = 0.9, 0.6, 0.3
    r = rank(augs, scores)
    # flip: (0.9 + 0.6 + 0 + 0) / 4; gain: 0.6 / 4; speckle and blur: 0.3 / 4 (tie keeps list order)
    assert [x["augmentation"] for x in r] == ["flip", "gain", "blur", "speckle"]
    assert r[0]["mean_f1"] == pytest.approx(1.5 / 4) and all(x["runs"] == 4 for x in r)
    assert keep_after_drop(r, 0.25) == ["flip", "gain", "blur"]
    assert keep_after_drop(r, 0.0) == augs
    m = matrix(augs, scores)
    assert m[0, 1] == m[1, 0] == 0.6 and m[0, 0] == 0.9


def test_augsearch_bad_augmentation_exits_2(tmp_path: Path):
    assert main(["augsearch", "--augs", "flip,teleport", "--out", str(tmp_path / "a")]) == 2


@pytest.mark.slow
def test_augsearch_end_to_end_on_bigearthnet(shared_data: Path, tmp_path: Path):
    out = tmp_path / "aug"
    assert (
        main(
            [
                "augsearch",
                "--data",
                str(shared_data / "bigearthnet_v2"),
                "--bands",
                "12",
                "--dataset",
                "bigearthnet",
                "--augs",
                "flip,gain",
                "--fraction",
                "1.0",
                "--steps",
                "2",
                "--size",
                "32",
                "--batch-size",
                "4",
                "--drop-bottom",
                "0.5",
                "--devices",
                "cpu",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    m = _metrics(out)
    assert len(m["runs"]) == 3 and m["metric"] == "f1_micro"
    assert (out / "augmentations.txt").read_text().strip() == m["ranking"][0]["augmentation"]
    assert (out / "heatmap.png").stat().st_size > 5000
    for run in m["runs"]:
        assert _metrics(Path(run["folder"]) / "probe")["f1_micro"] == run["f1_micro"]
