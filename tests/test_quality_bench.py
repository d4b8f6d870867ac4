"""benchmarks/quality.py: its plain loop, its TorchGeo adapter and its split, on real AID scenes."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch
import yaml

from rs_ssl import cli
from rs_ssl.augment import VIEW_PRESETS, make_views
from rs_ssl.bands import load_stats, resolve_bands
from rs_ssl.losses import nt_xent
from rs_ssl.methods import SimCLR


def _quality():
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "quality.py"
    spec = importlib.util.spec_from_file_location("quality", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


Q = _quality()


def test_plain_loop_loss_equals_the_package_nt_xent():
    """Two independent NT-Xent implementations (the benchmark's 5 lines, the package's) agree."""
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(8, 16, generator=g), torch.randn(8, 16, generator=g)
    assert Q.plain_nt_xent(torch.cat([z1, z2]), 0.1).item() == pytest.approx(
        nt_xent(z1, z2, 0.1).item(), rel=1e-5
    )


def test_plain_views_differ_per_image_and_keep_the_shape():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 3, 32, 32) + torch.arange(3).view(1, 3, 1, 1)  # each band distinct
    v1, v2 = Q.plain_views(x, g), Q.plain_views(x, g)
    assert v1.shape == x.shape and not torch.allclose(v1, v2)
    assert torch.isfinite(v1).all()


def test_plain_views_gain_in_reflectance_shifts_by_the_band_offset():
    # Same draws (same generator state): the reflectance gain adds (g - 1) * mean / std per band,
    # so the difference to the standardised gain is a per-image, per-band constant, not zero.
    x = torch.randn(4, 3, 16, 16) + torch.arange(3).view(1, 3, 1, 1)
    offset = torch.tensor([1.9, 2.2, 2.1]).view(1, 3, 1, 1)
    a = Q.plain_views(x, torch.Generator().manual_seed(1))
    b = Q.plain_views(x, torch.Generator().manual_seed(1), offset)
    d = b - a
    gray = (a[:, 0] == a[:, 1]).all(-1).all(-1)  # grayscale images average the bands afterwards
    assert not torch.allclose(d[~gray], torch.zeros_like(d[~gray]))
    torch.testing.assert_close(d, d[..., :1, :1].expand_as(d), rtol=1e-5, atol=1e-5)


def test_plain_variants_parse_typed_keywords_and_refuse_unknown_ones():
    assert Q.plain_variants(None) == [("plain", {})]
    assert Q.plain_variants(["b32=batch:32,lr:3.5e-4,head_bn:1,schedule:cosine"]) == [
        ("b32", {"batch": 32, "lr": 3.5e-4, "head_bn": True, "schedule": "cosine"})
    ]
    with pytest.raises(SystemExit, match="unknown key 'warmup'"):
        Q.plain_variants(["x=warmup:3"])


def test_plain_loop_factors_change_the_trained_weights():
    """Each factor really acts (a flag that were ignored would train the same weights)."""
    x = (torch.rand(8, 3, 16, 16) * 255).round()
    base, _ = Q.plain_simclr(x, epochs=1, batch=4, seed=0)
    ref = base.conv1.weight.detach()
    for kw in ({"head_bn": True}, {"clip": 1e-3}, {"gain_space": "reflectance"}):
        net, info = Q.plain_simclr(x, epochs=1, batch=4, seed=0, **kw)
        assert info["steps"] == 2
        assert not torch.allclose(net.conv1.weight.detach(), ref), kw
    # cosine: the first step runs at the full rate (same as constant), the second at half of it
    net, _ = Q.plain_simclr(x, epochs=1, batch=4, seed=0, schedule="cosine")
    assert not torch.allclose(net.conv1.weight.detach(), ref)


def test_fold_unit_range_into_stem_matches_standardised_inputs_away_from_the_border():
    import timm

    torch.manual_seed(0)
    net = timm.create_model("resnet18", in_chans=3, num_classes=0).eval()
    with torch.no_grad():
        net.bn1.running_mean.uniform_(-0.1, 0.1)
    mean, std = torch.tensor([0.4, 0.41, 0.36]), torch.tensor([0.2, 0.19, 0.17])
    x01 = torch.rand(2, 3, 32, 32)
    stem = torch.nn.Sequential(net.conv1, net.bn1)
    with torch.no_grad():
        want = stem(x01)
        Q.fold_unit_range_into_stem(net, mean, std)
        got = stem((x01 - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1))
    # conv1 is 7x7 / stride 2 / padding 3: outputs 2..13 of 16 see no padding
    torch.testing.assert_close(got[..., 2:-2, 2:-2], want[..., 2:-2, 2:-2], rtol=1e-4, atol=1e-4)
    assert not torch.allclose(
        got[..., 0, 0], want[..., 0, 0], atol=1e-4
    )  # the stated border effect


def test_pretrain_images_are_only_from_the_probe_train_split(shared_data, tmp_path):
    from rs_ssl.bands import resolve_bands
    from rs_ssl.eval.splits import load_splits

    data = shared_data / "aid_scenes"
    tree, info = Q.pretrain_tree(data, tmp_path, seed=0, per_class=2, size=16)
    linked = {p.resolve() for p in tree.rglob("*.jpg")}
    assert len(linked) == 60 and info["pretrain_images"] == 60
    splits = load_splits(
        str(data), "folder", resolve_bands("3"), patch=16, level=1, seed=0, skip_bad=False
    )
    held_out = {
        Path(splits.parts[k].dataset.records[i].path).resolve()
        for k in ("validation", "test")
        for i in splits.parts[k].indices
    }
    assert linked and not linked & held_out
    assert {p.parent.name for p in tree.rglob("*.jpg")} == set(splits.classes)


def test_simclr_defaults_are_the_light_views_and_the_square_root_rule():
    from rs_ssl.bands import load_stats, resolve_bands
    from rs_ssl.models import create_backbone

    sel = resolve_bands("3")
    m = SimCLR(
        backbone=create_backbone("resnet18", sel),
        selection=sel,
        stats=load_stats(sel),
        views=torch.nn.Identity(),
        batch_size=32,
    )
    assert m.defaults.preset == "light" and "light" in VIEW_PRESETS
    assert m.scaled_lr(1) == pytest.approx(1e-3 * (32 / 256) ** 0.5)
    views = make_views("light", bands=4, size=32)
    x = torch.randn(4, 4, 32, 32) + torch.arange(4).view(1, 4, 1, 1)
    a, b = views(x)
    assert a.shape == x.shape and not torch.allclose(a, b)


def test_light_gain_multiplies_standardised_values_even_with_band_statistics():
    """The reflectance gain cost 6.5 validation points on AID (RESULTS.md): light must not use it."""
    from rs_ssl.augment.pixel import RandomGain

    st = load_stats(resolve_bands("13"))
    views = make_views("light", bands=13, size=32, mean=st.mean.tolist(), std=st.std.tolist())
    gains = [m for m in views.modules() if isinstance(m, RandomGain)]
    assert gains and all(g.offset is None for g in gains)
    paper = make_views("simclr", bands=13, size=32, mean=st.mean.tolist(), std=st.std.tolist())
    assert any(g.offset is not None for g in paper.modules() if isinstance(g, RandomGain))


def test_pretrain_records_lr_effective_in_config_and_metrics(tmp_path):
    out = tmp_path / "run"
    assert (
        cli.main(
            [
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
                "16",
                "--epochs",
                "1",
                "--workers",
                "0",
                "--knn-k",
                "0",
            ]
        )
        == 0
    )
    want = 1e-3 * (8 / 256) ** 0.5
    # config.yaml keeps run-time facts in a commented block (it must stay readable by --config)
    text = (out / "config.yaml").read_text()
    block = text.split("# resolved at run time (informational, not read back):\n")[1]
    resolved = yaml.safe_load("\n".join(ln[2:] for ln in block.splitlines()))
    assert resolved["lr_effective"] == pytest.approx(want)
    assert json.loads((out / "metrics.json").read_text())["lr_effective"] == pytest.approx(want)


def test_summary_gives_mean_and_sample_std_over_training_seeds(tmp_path):
    rows = [
        {
            "arm": "plain",
            "method": "simclr",
            "accuracy": 0.40,
            "val_accuracy": 0.45,
            "seconds": 100,
        },
        {
            "arm": "plain",
            "method": "simclr",
            "accuracy": 0.44,
            "val_accuracy": 0.47,
            "seconds": 120,
        },
        {"arm": "random", "method": "-", "accuracy": 0.26, "val_accuracy": 0.28},
    ]
    text = Q.summary(rows)
    # std of (0.40, 0.44) with n - 1 = 1: 0.0283; of (0.45, 0.47): 0.0141
    assert "| plain | simclr | 2 | 0.420 ± 0.028 | 0.460 ± 0.014 | 110 |" in text
    assert "| random | - | 1 | 0.260 | 0.280 |  |" in text
    f = tmp_path / "quality.json"
    f.write_text(json.dumps({"rows": rows[:1]}))
    g = tmp_path / "more.json"
    g.write_text(json.dumps({"rows": rows[1:]}))
    assert Q.run(["--summarise", str(f), str(g)])["rows"] == rows


def test_prepared_tree_keeps_a_datasets_own_split(shared_data, tmp_path):
    """Held-out datasets (TorchGeo's UC Merced root and its uc_merced-*.txt lists) keep their
    published split through the resized copy every arm and probe read; AID, which has none, gets
    no lists and the probe's seeded split."""
    from rs_ssl.eval.splits import load_splits

    root = shared_data / "torchgeo_fixtures" / "ucmerced"
    want = load_splits(
        str(root), "folder", resolve_bands("3"), patch=16, level=1, seed=0, skip_bad=False
    )
    prepared = Q.prepared_tree(root, tmp_path, 16)
    got = load_splits(
        str(prepared), "folder", resolve_bands("3"), patch=16, level=1, seed=0, skip_bad=False
    )
    assert want.info["official"] and got.info["official"]
    assert "split lists {train,val,test}.txt" in got.info["split_source"]

    def members(s):
        return {
            k: sorted(Path(p.dataset.records[i].path).stem for i in p.indices)
            for k, p in s.parts.items()
        }

    assert members(got) == members(want)
    # pretraining reads the dataset's own train split only
    tree, info = Q.pretrain_tree(prepared, tmp_path, seed=0, per_class=0, size=16)
    assert info["pretrain_images"] == len(want.parts["train"])
    assert "split lists" in info["split_source"]


def test_prepared_tree_of_a_folder_without_split_writes_no_lists(tmp_path):
    from PIL import Image

    src = tmp_path / "src"
    for c, cls in enumerate(("a", "b")):
        (src / cls).mkdir(parents=True)
        for j in range(3):
            px = torch.full((20, 20, 3), 10 * c + j, dtype=torch.uint8)
            px[..., 1] += 100  # distinct bands
            px[..., 2] += 200
            Image.fromarray(px.numpy()).save(src / cls / f"{cls}{j}.png")
    prepared = Q.prepared_tree(src, tmp_path / "out", 16)
    assert not list(prepared.glob("*.txt"))
    assert len(list(prepared.rglob("*.png"))) == 6


def test_default_batch_is_the_methods_and_config_yaml_keeps_it(tmp_path, capsys):
    """No --batch-size: the method table's batch (SimCLR 64, from the AID benchmark; 32 for the
    others), resolved once, used for the rate and written to config.yaml; a given one wins."""
    from rs_ssl.config import PretrainConfig
    from rs_ssl.methods.table import spec

    assert PretrainConfig().batch_size == spec("simclr").defaults.batch_size == 64
    assert [PretrainConfig(method=m).batch_size for m in ("mocov2", "mocov3", "rpl")] == [32] * 3
    assert PretrainConfig(method="mocov2", batch_size=8).batch_size == 8
    out = tmp_path / "dry"
    assert cli.main(["pretrain", "--dry-run", "--out", str(out)]) == 0
    assert "lr_effective 0.0005 on one device at batch 64" in capsys.readouterr().out
    written = yaml.safe_load((out / "config.yaml").read_text())
    assert written["batch_size"] == 64
    _, replayed = cli.parse(
        ["pretrain", "--config", str(out / "config.yaml"), "--method", "mocov2"]
    )
    assert replayed.batch_size == 64  # the file's explicit value, not mocov2's default
