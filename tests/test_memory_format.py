"""`--memory-format`: which layout a run keeps its 4-D tensors in, that training really uses it, that
it changes rounding only, and that the exported weights are plain timm weights either way."""

import json

import pytest
import torch
import yaml

from rs_ssl import cli
from rs_ssl.bands import load_stats, resolve_bands
from rs_ssl.config import PretrainConfig
from rs_ssl.methods.simclr import SimCLR
from rs_ssl.models import create_backbone
from rs_ssl.models.backbone import memory_format
from rs_ssl.training import build_method

SEL = resolve_bands("13")


def four_d(module):
    return [(n, p) for n, p in module.named_parameters() if p.ndim == 4]


def channels_last(t: torch.Tensor) -> bool:
    """Strictly NHWC: not also NCHW-contiguous (as a 1x1 convolution's weight is in both)."""
    return t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()


def nchw(t: torch.Tensor) -> bool:
    return t.is_contiguous() and not t.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize(
    ("name", "want"),
    [
        ("resnet18", torch.channels_last),
        ("mobilenetv3_small_050", torch.channels_last),
        ("vit_tiny_patch16_224", torch.contiguous_format),
    ],
)
def test_auto_is_channels_last_for_convolutional_backbones_only(name, want):
    bb = create_backbone(name, SEL, img_size=32)
    assert memory_format(bb) == want
    assert memory_format(bb, "contiguous") == torch.contiguous_format
    assert memory_format(bb, "channels_last") == torch.channels_last
    with pytest.raises(ValueError, match="nhwc"):
        memory_format(bb, "nhwc")


def test_a_network_without_convolutions_stays_contiguous():
    assert memory_format(torch.nn.Sequential(torch.nn.Linear(4, 4))) == torch.contiguous_format


@pytest.mark.parametrize(
    ("choice", "cl"), [("auto", True), ("channels_last", True), ("contiguous", False)]
)
def test_build_method_moves_every_encoder_and_reports_the_layout(choice, cl):
    cfg = PretrainConfig(method="mocov2", bands="13", size=32, memory_format=choice)
    m = build_method(cfg, SEL, load_stats(SEL), samples=64, total_steps=4, steps_per_epoch=2)
    weights = [p for _, p in four_d(m.backbone) + four_d(m.key_backbone) if p.shape[-1] > 1]
    assert len(weights) > 20  # ResNet-18's 3x3 and 7x7 kernels, in both encoders
    assert all(channels_last(p) if cl else nchw(p) for p in weights)
    assert m.input_format == (torch.channels_last if cl else torch.contiguous_format)
    assert m.resolved_hyper_parameters()["memory_format"] == (
        "channels_last" if cl else "contiguous"
    )


def test_both_layouts_train_the_same_step_up_to_float32_rounding():
    """From the same weights and views, one SimCLR step's loss and every gradient agree across
    layouts (the layout changes the convolution kernels' summation order, not the computation)."""
    torch.manual_seed(0)
    x = torch.randn(2, 6, 13, 32, 32) + torch.arange(13).view(1, 1, -1, 1, 1) * 0.1
    steps = {}
    for choice in ("contiguous", "channels_last"):
        torch.manual_seed(1)
        cfg = PretrainConfig(bands="13", size=32, memory_format=choice)
        m = build_method(cfg, SEL, load_stats(SEL), samples=6, total_steps=1, steps_per_epoch=1)
        v1, v2 = (v.contiguous(memory_format=m.input_format) for v in x)
        loss, _ = m.ssl_step(v1, v2)
        loss.backward()
        steps[choice] = (loss.item(), {n: p.grad.contiguous() for n, p in m.named_parameters()})
    (l_a, g_a), (l_b, g_b) = steps.values()
    assert l_a == pytest.approx(l_b, rel=1e-5)
    assert g_a.keys() == g_b.keys()
    for n in g_a:
        torch.testing.assert_close(g_a[n], g_b[n], rtol=1e-3, atol=1e-5, msg=n)


def test_pretrain_trains_channels_last_and_exports_plain_timm_weights(tmp_path, monkeypatch):
    """End to end on the embedded Sentinel-2 sample: every step's views and weights are NHWC, the
    checkpoint keeps that layout (so a resume continues in it), config.yaml says so, and
    backbone.safetensors is an ordinary timm state dict giving the trained backbone's features."""
    import timm

    seen = []
    step = SimCLR.ssl_step

    def recording_step(self, v1, v2):
        seen.append(
            (channels_last(v1), channels_last(v2), channels_last(self.backbone.conv1.weight))
        )
        return step(self, v1, v2)

    monkeypatch.setattr(SimCLR, "ssl_step", recording_step)
    out = tmp_path / "run"
    argv = ["pretrain", "--bands", "13", "--out", str(out), "--size", "32", "--batch-size", "8"]
    argv += ["--samples-per-epoch", "16", "--epochs", "1", "--workers", "0", "--knn-k", "0"]
    assert cli.main(argv) == 0
    assert len(seen) == 2 and all(all(s) for s in seen)

    block = (out / "config.yaml").read_text().split("(informational, not read back):\n")[1]
    resolved = yaml.safe_load("\n".join(ln[2:] for ln in block.splitlines()))
    assert resolved["memory_format"] == "channels_last"

    ckpt = torch.load(out / "checkpoints" / "last.ckpt", weights_only=False, map_location="cpu")
    state = {
        k[len("backbone.") :]: v for k, v in ckpt["state_dict"].items() if k.startswith("backbone.")
    }
    assert channels_last(state["conv1.weight"])

    plain = timm.create_model(
        "resnet18", in_chans=13, num_classes=0, checkpoint_path=str(out / "backbone.safetensors")
    ).eval()
    assert all(p.is_contiguous() for p in plain.parameters())
    trained = timm.create_model("resnet18", in_chans=13, num_classes=0)
    trained.load_state_dict(state)
    trained = trained.to(memory_format=torch.channels_last).eval()
    x = torch.randn(3, 13, 32, 32) + torch.arange(13).view(1, -1, 1, 1) * 0.1
    with torch.no_grad():
        torch.testing.assert_close(plain(x), trained(x), rtol=1e-4, atol=1e-5)
    assert json.loads((out / "metrics.json").read_text())["steps"] == 2
