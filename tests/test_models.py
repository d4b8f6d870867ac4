"""Backbones: `--init` RGB weights adapted by wavelength, ViT input size, export loadable by timm and TorchGeo."""

import warnings

import pytest
import timm
import torch
from safetensors.torch import load_file, save_file

from rs_ssl.bands import resolve_bands
from rs_ssl.errors import UsageError
from rs_ssl.models import create_backbone, export_backbone, mlp
from rs_ssl.models.backbone import takes_img_size


def _rgb_state(name="resnet18", **kw):
    """A 3-band state dict whose first-layer filters differ per input channel (R=1, G=2, B=3 offsets)."""
    torch.manual_seed(0)
    state = timm.create_model(name, pretrained=False, in_chans=3, **kw).state_dict()
    key = "conv1.weight" if "conv1.weight" in state else "patch_embed.proj.weight"
    w = torch.randn_like(state[key]) * 0.01
    for c in range(3):
        w[:, c] += c + 1.0
    state[key] = w
    return state, key


@pytest.mark.parametrize("bands", ["13", "12", "3"])
def test_init_adapts_rgb_filters_by_wavelength(tmp_path, bands):
    state, key = _rgb_state()
    path = tmp_path / "rgb.safetensors"
    save_file(state, str(path))
    sel = resolve_bands(bands)
    model = create_backbone("resnet18", sel, init=path)
    w, rgb = model.state_dict()[key], state[key]
    c = len(sel)
    assert w.shape[1] == c
    scale = 3.0 / c
    seen = set()
    for i, band in enumerate(sel.bands):
        if band.common in ("red", "green", "blue"):
            j = ("red", "green", "blue").index(band.common)
            torch.testing.assert_close(w[:, i], rgb[:, j] * scale)
            seen.add(band.common)
        else:
            torch.testing.assert_close(w[:, i], rgb.mean(dim=1) * scale)
    assert seen == {"red", "green", "blue"}
    if c == 13:  # Sentinel-2 L1C order: B02, B03, B04 are blue, green, red
        assert [sel.bands[i].common for i in (1, 2, 3)] == ["blue", "green", "red"]
    # every other layer is loaded unchanged
    torch.testing.assert_close(
        model.state_dict()["layer1.0.conv1.weight"], state["layer1.0.conv1.weight"]
    )


def test_init_also_reads_plain_torch_state_dicts_and_refuses_mismatches(tmp_path):
    state, _ = _rgb_state()
    torch.save(state, tmp_path / "rgb.pth")
    sel = resolve_bands("13")
    create_backbone("resnet18", sel, init=tmp_path / "rgb.pth")
    from rs_ssl.errors import RsSslError

    with pytest.raises(RsSslError, match="do not fit resnet34"):
        create_backbone("resnet34", sel, init=tmp_path / "rgb.pth")


def test_vit_init_from_224_weights_at_another_size(tmp_path):
    state, key = _rgb_state("vit_tiny_patch16_224")
    save_file(state, str(tmp_path / "vit.safetensors"))
    model = create_backbone(
        "vit_tiny_patch16_224", resolve_bands("13"), init=tmp_path / "vit.safetensors", img_size=64
    )
    assert model.patch_embed.proj.weight.shape[1] == 13 and model.pos_embed.shape[1] == 1 + 16
    assert model(torch.randn(2, 13, 64, 64)).shape == (2, 192)


def test_img_size_only_reaches_fixed_size_models():
    assert takes_img_size("vit_small_patch16_224") and not takes_img_size("resnet50")
    sel = resolve_bands("12")
    assert create_backbone("vit_tiny_patch16_224", sel, img_size=32)(
        torch.randn(1, 12, 32, 32)
    ).shape == (1, 192)
    assert create_backbone("resnet18", sel, img_size=32).eval()(
        torch.randn(1, 12, 32, 32)
    ).shape == (1, 512)
    with pytest.raises(UsageError, match="not a timm model"):
        create_backbone("resnet_does_not_exist", sel)


@pytest.mark.parametrize(
    ("name", "kw"), [("resnet18", {}), ("vit_tiny_patch16_224", {"img_size": 32})]
)
def test_export_loads_in_timm_and_torchgeo(tmp_path, name, kw):
    from torchgeo.trainers.utils import load_state_dict as torchgeo_load_state_dict

    sel = resolve_bands("13")
    model = create_backbone(name, sel, **kw)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))  # not the default initialisation
    path = export_backbone(model, tmp_path / "backbone.safetensors", metadata={"timm_model": name})
    state = load_file(str(path))
    loaded = timm.create_model(name, in_chans=13, num_classes=0, checkpoint_path=str(path), **kw)
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    # TorchGeo: timm model + torchgeo.trainers.utils.load_state_dict (what its tasks use for weights)
    fresh = timm.create_model(name, in_chans=13, num_classes=0, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "overriding input channels" warning: the bands match
        missing, unexpected = torchgeo_load_state_dict(fresh, dict(state))
    assert missing == [] and unexpected == []
    x = torch.randn(2, 13, 32, 32)
    model.eval()
    fresh.eval()
    torch.testing.assert_close(fresh(x), model(x))


def test_mlp_layers_and_non_affine_last_bn():
    m = mlp([8, 16, 4], batchnorm=[True, True], last_bn_affine=False)
    kinds = [type(layer).__name__ for layer in m]
    assert kinds == ["Linear", "BatchNorm1d", "ReLU", "Linear", "BatchNorm1d"]
    assert m[0].bias is None and m[1].affine and not m[-1].affine
    with pytest.raises(ValueError):
        mlp([8, 16, 4], batchnorm=[True])
