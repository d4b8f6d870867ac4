"""A few optimiser steps lower each method's loss on a fixed batch of real Sentinel-2 patches."""

import pytest
import torch

from rs_ssl.augment import make_views
from rs_ssl.bands import load_stats, resolve_bands
from rs_ssl.methods import METHODS
from rs_ssl.models import create_backbone

SIZE = 32


@pytest.fixture(scope="module")
def real_views():
    """Two fixed augmented views of 8 patches from the embedded L1C sample, normalised as in training."""
    from rs_ssl.data import pretrain_dataset
    from rs_ssl.data.normalize import Normalize

    sel = resolve_bands("13")
    ds, _ = pretrain_dataset(None, "auto", sel, patch=SIZE, samples_per_epoch=64)
    x = torch.stack([ds[i]["image"] for i in range(8)])
    assert x[:, :, 0, 0].std(0).min() > 0  # distinct real values per band
    torch.manual_seed(0)
    x = Normalize(sel, load_stats(sel))(x)
    return make_views("s2", bands=13, size=SIZE)(x)


def _build(name, backbone="resnet18", **kw):
    sel = resolve_bands("13")
    cls = METHODS[name]
    bb = create_backbone(backbone, sel, img_size=cls.backbone_input_size(SIZE))
    return cls(backbone=bb, selection=sel, stats=load_stats(sel), views=torch.nn.Identity(), **kw)


@pytest.mark.parametrize(
    ("name", "backbone", "kw"),
    [
        ("mocov2", "resnet18", {"queue_size": 256}),
        ("mocov3", "resnet18", {"mlp_dim": 256}),
        ("mocov3", "vit_tiny_patch16_224", {"mlp_dim": 256, "freeze_patch_embed": True}),
        ("simclr", "resnet18", {}),
        ("rpl", "resnet18", {}),
    ],
)
def test_a_few_steps_lower_the_loss_on_real_patches(real_views, name, backbone, kw):
    torch.manual_seed(0)
    method = _build(name, backbone, **kw)
    v1, v2 = real_views
    queue = method.queue.clone() if name == "mocov2" else None
    opt = torch.optim.Adam([p for g in method.param_groups() for p in g["params"]], lr=1e-3)
    losses = []
    for _ in range(8):
        if queue is not None:  # fixed negatives: the same 8 images must not fill the queue
            method.queue.copy_(queue)
        torch.manual_seed(1)  # rpl: the same patch pairs every step
        loss, feats = method.ssl_step(v1, v2)
        assert torch.isfinite(loss) and feats.shape[0] == 8 * (2 if name == "rpl" else 1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0], losses
