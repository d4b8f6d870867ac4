"""The method registry: every registered method is checked from the table alone, a toy method can be
registered from a test, and options that do not apply to the chosen method are refused."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest
import torch
from torch import nn

from rs_ssl import cli
from rs_ssl.bands import load_stats, resolve_bands
from rs_ssl.config import PretrainConfig
from rs_ssl.errors import UsageError
from rs_ssl.methods import METHODS
from rs_ssl.methods.base import SSLMethod
from rs_ssl.methods.table import METHOD_TABLE, MethodDefaults, MethodSpec
from rs_ssl.training import build_method

# Defaults that only some methods have: a method has a value in the table iff its class takes it.
OWN = ("temperature", "proj_dim", "momentum", "queue_size", "mlp_dim")
METHOD_OPTIONS = [f for f in dataclasses.fields(PretrainConfig) if f.metadata.get("method_option")]
# A value different from each method option's default (which means "the method's own").
SET = {
    "lr": 0.5,
    "lr_scaling": "none",
    "weight_decay": 0.5,
    "warmup_epochs": 1.0,
    "schedule": "constant",
    "temperature": 0.5,
    "queue_size": 64,
    "momentum": 0.5,
    "proj_dim": 16,
    "optimizer": "adam",
    "freeze_patch_embed": True,
}


def test_the_table_and_the_config_import_no_torch():
    code = "import sys, rs_ssl.config, rs_ssl.methods; assert 'torch' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_every_method_option_has_a_value_that_sets_it():
    assert {f.name for f in METHOD_OPTIONS} == set(SET)


@pytest.mark.parametrize("name", list(METHOD_TABLE))
def test_each_registered_class_carries_its_name_and_takes_exactly_its_table_hyper_parameters(name):
    cls = METHODS[name]
    assert issubclass(cls, SSLMethod) and cls.name == name
    assert cls.defaults is METHOD_TABLE[name].defaults
    taken = cls.accepted_options()
    for key in OWN:
        assert (getattr(cls.defaults, key) is not None) == (key in taken), key


@pytest.mark.parametrize("name", list(METHOD_TABLE))
def test_each_method_builds_and_refuses_options_it_does_not_take(name):
    sel = resolve_bands("13")
    cfg = PretrainConfig(method=name, size=32)
    method = build_method(cfg, sel, load_stats(sel), total_steps=7, steps_per_epoch=7)
    assert method.total_steps == 7 and method.defaults is METHOD_TABLE[name].defaults
    taken = type(method).accepted_options()
    for f in METHOD_OPTIONS:
        if f.name in taken:
            continue
        bad = dataclasses.replace(cfg, **{f.name: SET[f.name]})
        with pytest.raises(UsageError, match=f"--{f.name.replace('_', '-')} .*does not apply"):
            build_method(bad, sel, load_stats(sel))


@pytest.mark.parametrize(
    "argv",
    [
        ["--method", "simclr", "--momentum", "0.5"],
        ["--method", "simclr", "--freeze-patch-embed"],
        ["--method", "rpl", "--temperature", "0.2"],
        ["--method", "mocov3", "--queue-size", "4096"],
    ],
)
def test_an_option_of_another_method_is_a_usage_error(argv, tmp_path, capsys):
    assert cli.main(["pretrain", "--out", str(tmp_path / "r"), "--dry-run", *argv]) == 2
    err = capsys.readouterr().err
    assert "does not apply to --method" in err and "applies to" in err


def test_freeze_patch_embed_without_a_vit_is_a_usage_error(tmp_path, capsys):
    argv = ["pretrain", "--out", str(tmp_path / "r"), "--dry-run", "--method", "mocov3"]
    assert cli.main([*argv, "--backbone", "resnet18", "--freeze-patch-embed"]) == 2
    err = capsys.readouterr().err
    assert "--freeze-patch-embed" in err and "resnet18 has no patch embedding" in err


class ToyMethod(SSLMethod):
    """A toy method: cosine similarity of the two views' projections (registered by the test below)."""

    name = "toy"

    def __init__(self, *, proj_dim: int | None = None, **common):
        super().__init__(**common)
        self.proj_dim = self.defaults.proj_dim if proj_dim is None else proj_dim
        self.projector = nn.Linear(self.feature_dim, self.proj_dim)

    def ssl_step(self, v1, v2):
        f1 = self.backbone(v1)
        z1, z2 = self.projector(f1), self.projector(self.backbone(v2))
        return -torch.nn.functional.cosine_similarity(z1, z2).mean(), f1


def test_a_toy_method_registered_from_a_test_trains_through_the_cli(monkeypatch, tmp_path):
    toy = MethodDefaults(lr=0.01, weight_decay=0.0, preset="s2", optimizer="sgd", proj_dim=8)
    monkeypatch.setitem(METHOD_TABLE, "toy", MethodSpec(f"{__name__}:ToyMethod", toy))
    assert (
        METHODS["toy"] is ToyMethod
        and "toy" in PretrainConfig.__dataclass_fields__["method"].metadata["choices"]
    )
    with pytest.raises(UsageError, match="--temperature 0.5: does not apply to --method toy"):
        build_method(PretrainConfig(method="toy", temperature=0.5), resolve_bands("13"), None)
    out = tmp_path / "run"
    argv = ["pretrain", "--method", "toy", "--out", str(out), "--size", "32", "--batch-size", "8"]
    argv += ["--samples-per-epoch", "16", "--epochs", "1", "--max-steps", "2", "--workers", "0"]
    assert cli.main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["method"] == "toy" and metrics["steps"] == 2
    assert metrics["final_loss"] == metrics["final_loss"]  # finite, not NaN
