"""Reference fidelity (issue 15, item 4): details checked against moco-v3, moco and lightly."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rs_ssl.bands import load_stats, resolve_bands
from rs_ssl.eval import metrics as M
from rs_ssl.losses import info_nce, info_nce_queue, nt_xent
from rs_ssl.methods import MoCoV2, MoCoV3, SimCLR
from rs_ssl.methods.base import scale_lr, warmup_cosine
from rs_ssl.training import world_size

BANDS = 13


class TinyNet(nn.Module):
    def __init__(self, width=8):
        super().__init__()
        self.num_features = width
        self.net = nn.Sequential(
            nn.Conv2d(BANDS, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )

    def forward(self, x):
        return self.net(x)


def make(cls, **kw):
    sel = resolve_bands(str(BANDS))
    return cls(backbone=TinyNet(), selection=sel, stats=load_stats(sel), views=nn.Identity(), **kw)


def test_mocov3_heads_have_no_linear_bias_anywhere():
    # moco-v3 builder.py `_build_mlp`: `nn.Linear(dim1, dim2, bias=False)` for every layer.
    m = make(MoCoV3, mlp_dim=16)
    linears = [
        layer
        for head in (m.projector, m.predictor)
        for layer in head
        if isinstance(layer, nn.Linear)
    ]
    assert len(linears) == 5
    assert [layer.bias for layer in linears] == [None] * 5


def _moco_v3_adjust_learning_rate(lr, epoch, warmup_epochs, epochs):
    # facebookresearch/moco-v3 main_moco.py (c349e6e) lines 420-425, verbatim but for `args.`:
    if epoch < warmup_epochs:
        lr = lr * epoch / warmup_epochs
    else:
        lr = (
            lr
            * 0.5
            * (1.0 + math.cos(math.pi * (epoch - warmup_epochs) / (epochs - warmup_epochs)))
        )
    return lr


def test_warmup_cosine_is_moco_v3s_schedule_step_by_step():
    # main_moco.py line 342: `adjust_learning_rate(optimizer, epoch + i / iters_per_epoch, args)`
    # before the i-th iteration of every epoch, so the first step runs at lr 0.
    epochs, warmup_epochs, iters = 6, 2, 7
    for e in range(epochs):
        for i in range(iters):
            want = _moco_v3_adjust_learning_rate(1.0, e + i / iters, warmup_epochs, epochs)
            got = warmup_cosine(e * iters + i, epochs * iters, warmup_epochs * iters)
            assert got == pytest.approx(want, abs=1e-12), (e, i)


def test_the_methods_scheduler_gives_the_reference_rate_at_every_optimizer_step():
    # What the optimizer really uses at step k (LambdaLR as configure_optimizers builds it), not
    # only the pure function: an off-by-one between the two would show here.
    epochs, warmup_epochs, iters = 4, 1, 5
    m = make(MoCoV3, mlp_dim=16, lr=0.1, warmup_epochs=warmup_epochs, lr_scaling="none")
    m.total_steps, m.steps_per_epoch = epochs * iters, iters
    conf = m.configure_optimizers()
    opt, sched = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    for e in range(epochs):
        for i in range(iters):
            want = _moco_v3_adjust_learning_rate(0.1, e + i / iters, warmup_epochs, epochs)
            assert opt.param_groups[0]["lr"] == pytest.approx(want, abs=1e-12), (e, i)
            opt.step()
            sched.step()


def test_mocov2_decays_every_parameter_as_the_moco_reference():
    # moco main_moco.py: SGD(model.parameters(), lr, momentum, weight_decay=1e-4), no exclusions.
    m = make(MoCoV2, queue_size=64)
    groups = m.param_groups()
    assert all(g["weight_decay"] == 1e-4 for g in groups)
    decayed = {id(p) for g in groups for p in g["params"]}
    trainable = [p for p in m.parameters() if p.requires_grad]
    assert {id(p) for p in trainable} == decayed
    assert any(p.ndim == 1 for p in trainable)  # biases and BN weights are among them


def test_simclr_keeps_biases_and_norms_out_of_weight_decay():
    groups = make(SimCLR).param_groups()
    no_decay = [g for g in groups if g["weight_decay"] == 0.0][0]["params"]
    assert no_decay and all(p.ndim <= 1 for p in no_decay)


def _cos_logits_reference(a, b, t):
    a, b = F.normalize(a.double(), dim=1), F.normalize(b.double(), dim=1)
    return a @ b.t() / t


@pytest.mark.parametrize("loss", ["nt_xent", "info_nce", "info_nce_queue"])
def test_contrastive_losses_are_float32_under_bf16_autocast(loss):
    """Under CPU bf16 autocast the similarity matmul would run in bf16 (about 3 significant digits, error
    ~1e-2 in the loss at temperature 0.1); the losses switch autocast off and match a float64 oracle."""
    g = torch.Generator().manual_seed(0)
    # nearly parallel vectors: bf16 rounding of the similarities matters most here
    base = torch.randn(32, 64, generator=g)
    a = base + 0.05 * torch.randn(32, 64, generator=g)
    b = base + 0.05 * torch.randn(32, 64, generator=g)
    queue = F.normalize(torch.randn(256, 64, generator=g), dim=1)
    t = 0.1
    if loss == "nt_xent":
        fn = lambda: nt_xent(a, b, t)  # noqa: E731
        za, zb = F.normalize(a.double(), dim=1), F.normalize(b.double(), dim=1)
        keys = torch.cat([za, zb])
        l1, l2 = za @ keys.t() / t, zb @ keys.t() / t
        n = len(a)
        l1[range(n), range(n)] = -math.inf
        l2[range(n), range(n, 2 * n)] = -math.inf
        ref = (F.cross_entropy(l1, torch.arange(n) + n) + F.cross_entropy(l2, torch.arange(n))) / 2
    elif loss == "info_nce":
        fn = lambda: info_nce(a, b, t)  # noqa: E731
        ref = F.cross_entropy(_cos_logits_reference(a, b, t), torch.arange(len(a))) * 2 * t
    else:
        qa, kb = F.normalize(a, dim=1), F.normalize(b, dim=1)
        fn = lambda: info_nce_queue(qa, kb, queue, t)  # noqa: E731
        logits = (
            torch.cat(
                [
                    (qa.double() * kb.double()).sum(1, keepdim=True),
                    qa.double() @ queue.double().t(),
                ],
                1,
            )
            / t
        )
        ref = F.cross_entropy(logits, torch.zeros(len(a), dtype=torch.long))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = fn()
    assert out.dtype == torch.float32
    assert out.item() == pytest.approx(ref.item(), rel=1e-5)


def test_bf16_matmul_really_loses_precision_here():
    """The oracle above can fail: the same similarity matmul left under autocast is off by far more."""
    g = torch.Generator().manual_seed(0)
    base = torch.randn(32, 64, generator=g)
    a = F.normalize(base + 0.05 * torch.randn(32, 64, generator=g), dim=1)
    b = F.normalize(base + 0.05 * torch.randn(32, 64, generator=g), dim=1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = F.cross_entropy((a @ b.t()).float() / 0.1, torch.arange(32))
    ref = F.cross_entropy(_cos_logits_reference(a, b, 0.1), torch.arange(32))
    assert abs(low.item() - ref.item()) / ref.item() > 1e-4


def test_float64_inputs_stay_float64():
    g = torch.Generator().manual_seed(1)
    a, b = (
        torch.randn(4, 8, generator=g, dtype=torch.float64),
        torch.randn(4, 8, generator=g, dtype=torch.float64),
    )
    assert nt_xent(a, b).dtype == torch.float64 and info_nce(a, b).dtype == torch.float64


def test_ddp_with_devices_auto_counts_every_visible_gpu(monkeypatch):
    # `--devices auto` on a 4-GPU host is DDP over 4 ranks: SyncBN must be on (pretrain: world > 1).
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    assert world_size("gpu", "auto", 1) == 4
    assert world_size("gpu", "auto", 2) == 8
    assert world_size("gpu", 1, 1) == 1
    assert world_size("cpu", 1, 1) == 1
    assert world_size("cpu", 2, 1) == 2


def test_lr_scaling_rules():
    assert scale_lr(1e-3, 1024, "sgd") == pytest.approx(4e-3)  # linear (Goyal et al.)
    assert scale_lr(1e-3, 1024, "adam") == pytest.approx(
        2e-3
    )  # square root for adaptive optimisers
    assert scale_lr(1e-3, 64, "adamw") == pytest.approx(5e-4)
    assert scale_lr(1e-3, 1024, "adamw", "linear") == pytest.approx(4e-3)  # moco-v3's paper rule
    assert scale_lr(1e-3, 1024, "lars", "none") == pytest.approx(1e-3)


def test_multilabel_threshold_is_inclusive():
    # rs-ssl predicts a label at score >= threshold (torchmetrics: >); documented in multilabel_metrics.
    target = torch.tensor([[1, 0], [0, 1]])
    score = torch.tensor([[0.5, 0.2], [0.1, 0.5]])
    assert M.multilabel_metrics(target, score, ["a", "b"], 0.5)["f1_micro"] == pytest.approx(1.0)
