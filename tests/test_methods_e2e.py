"""`rs-ssl pretrain --method ...` end to end on the embedded sample, for the methods beyond MoCo v2."""

import json

import pytest
import timm
import torch
from safetensors.torch import load_file

from rs_ssl import cli


def _pretrain(out, *extra):
    argv = [
        "pretrain",
        "--out",
        str(out),
        "--size",
        "32",
        "--batch-size",
        "8",
        "--samples-per-epoch",
        "32",
        "--workers",
        "0",
        *extra,
    ]
    assert cli.main(argv) == 0
    m = json.loads((out / "metrics.json").read_text())
    for f in ("checkpoints/last.ckpt", "backbone.safetensors", "config.yaml", "loss.png"):
        assert (out / f).is_file(), f
    return m


@pytest.mark.slow
@pytest.mark.parametrize(
    ("method", "bands", "extra"),
    [
        ("rpl", "B04,B03,B02", []),
        ("simclr", "12", ["--optimizer", "lars"]),
        ("mocov3", "13", ["--backbone", "vit_tiny_patch16_224", "--freeze-patch-embed"]),
    ],
)
def test_pretrain_each_method_leaves_loadable_weights(tmp_path, method, bands, extra):
    m = _pretrain(
        tmp_path / "run",
        "--method",
        method,
        "--bands",
        bands,
        "--epochs",
        "1",
        "--max-steps",
        "2",
        *extra,
    )
    assert m["method"] == method and m["steps"] == 2 and m["final_loss"] == m["final_loss"]
    name = m["backbone"]
    kw = {"img_size": 32} if name.startswith("vit") else {}
    path = tmp_path / "run" / "backbone.safetensors"
    model = timm.create_model(
        name, in_chans=len(m["bands"]), num_classes=0, checkpoint_path=str(path), **kw
    )
    state = load_file(str(path))
    assert state.keys() == model.state_dict().keys()
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
