"""SSL methods: parity with plain reference implementations of the papers' algorithms."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rs_ssl.bands import load_stats, resolve_bands
from rs_ssl.losses import info_nce_queue
from rs_ssl.methods import METHODS, MoCoV2, MoCoV3, RelativePatchLocation, SimCLR
from rs_ssl.methods.mocov3 import cosine_momentum
from rs_ssl.methods.rpl import cut_pairs, grid_geometry, sample_pairs
from rs_ssl.models import create_backbone

BANDS = 13


class TinyNet(nn.Module):
    """A small CNN backbone with BatchNorm (so momentum encoders' BN buffers matter)."""

    def __init__(self, bands=BANDS, width=8, bn=True):
        super().__init__()
        self.num_features = width
        self.net = nn.Sequential(
            nn.Conv2d(bands, width, 3, padding=1),
            nn.BatchNorm2d(width) if bn else nn.Identity(),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )

    def forward(self, x):
        return self.net(x)


class PairViews(nn.Module):
    def forward(self, x):
        return x, x.flip(-1)


def make(cls, backbone=None, **kw):
    sel = resolve_bands(str(BANDS))
    return cls(
        backbone=backbone or TinyNet(),
        selection=sel,
        stats=load_stats(sel),
        views=PairViews(),
        **kw,
    )


def views(n=6, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    # every band distinct: band b has its own offset
    base = (
        torch.randn(n, BANDS, size, size, generator=g) + torch.arange(BANDS).view(1, -1, 1, 1) * 0.1
    )
    return base, base + 0.1 * torch.randn(base.shape, generator=g)


def in_layout(method, *xs):
    """Views in the method's layout, as `on_after_batch_transfer` gives them to `ssl_step`."""
    return [x.contiguous(memory_format=method.input_format) for x in xs]


def params_equal(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def test_registry_lists_every_method():
    assert set(METHODS) == {"mocov2", "mocov3", "simclr", "rpl"}


# -- MoCo v2 ---------------------------------------------------------------------------------------


def test_mocov2_key_encoder_starts_as_an_exact_copy_and_is_frozen():
    m = make(MoCoV2, queue_size=16)
    for online, key in m.momentum_pairs():
        assert params_equal(online, key)
        for p, q in zip(online.parameters(), key.parameters(), strict=True):
            assert p.data_ptr() != q.data_ptr() and not q.requires_grad and p.requires_grad
        for b, c in zip(online.buffers(), key.buffers(), strict=True):
            assert torch.equal(b, c)


def test_momentum_update_is_the_ema_formula():
    m = make(MoCoV2, queue_size=16)
    with torch.no_grad():
        for p in m.key_backbone.parameters():
            p.add_(torch.randn_like(p))
    old = [p.clone() for p in m.key_backbone.parameters()]
    online = [p.clone() for p in m.backbone.parameters()]
    m.momentum_update(0.9)
    for p, o, q in zip(m.key_backbone.parameters(), old, online, strict=True):
        torch.testing.assert_close(p, 0.9 * o + 0.1 * q)
    assert all(torch.equal(p, q) for p, q in zip(m.backbone.parameters(), online, strict=True))


def test_mocov2_queue_enqueues_in_order_and_wraps():
    m = make(MoCoV2, queue_size=10)
    keys = [F.normalize(torch.randn(4, m.proj_dim), dim=1) for _ in range(3)]
    initial = m.queue.clone()
    m.enqueue(keys[0])
    m.enqueue(keys[1])
    assert int(m.queue_ptr) == 8
    torch.testing.assert_close(m.queue[:4], keys[0])
    torch.testing.assert_close(m.queue[4:8], keys[1])
    torch.testing.assert_close(m.queue[8:], initial[8:])
    m.enqueue(keys[2])  # rows 8, 9, then wraps to 0, 1
    assert int(m.queue_ptr) == 2
    torch.testing.assert_close(m.queue[8:], keys[2][:2])
    torch.testing.assert_close(m.queue[:2], keys[2][2:])
    torch.testing.assert_close(m.queue[2:8], torch.cat([keys[0][2:], keys[1]]))


class MoCoV2Reference(nn.Module):
    """moco builder.py `MoCo` written out with a given query encoder (backbone + MLP head), on one
    process: `_batch_shuffle_ddp`/`_batch_unshuffle_ddp` are identities there (no BN is shuffled
    across GPUs), and `concat_all_gather` returns its input."""

    def __init__(self, encoder_q, queue, m, t):
        super().__init__()
        self.m, self.T, self.K = m, t, queue.shape[0]
        self.encoder_q = encoder_q
        self.encoder_k = copy.deepcopy(encoder_q)
        for param_q, param_k in zip(
            self.encoder_q.parameters(), self.encoder_k.parameters(), strict=True
        ):
            param_k.data.copy_(param_q.data)  # initialize
            param_k.requires_grad = False  # not update by gradient
        self.register_buffer(
            "queue", queue.t().clone()
        )  # the reference keeps the queue as (dim, K)
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))

    @torch.no_grad()
    def _momentum_update_key_encoder(self):
        for param_q, param_k in zip(
            self.encoder_q.parameters(), self.encoder_k.parameters(), strict=True
        ):
            param_k.data = param_k.data * self.m + param_q.data * (1.0 - self.m)

    @torch.no_grad()
    def _dequeue_and_enqueue(self, keys):
        batch_size = keys.shape[0]
        ptr = int(self.queue_ptr)
        assert self.K % batch_size == 0  # for simplicity
        self.queue[:, ptr : ptr + batch_size] = keys.T
        ptr = (ptr + batch_size) % self.K
        self.queue_ptr[0] = ptr

    def forward(self, im_q, im_k):
        q = nn.functional.normalize(self.encoder_q(im_q), dim=1)
        with torch.no_grad():
            self._momentum_update_key_encoder()
            k = nn.functional.normalize(self.encoder_k(im_k), dim=1)
        l_pos = torch.einsum("nc,nc->n", [q, k]).unsqueeze(-1)
        l_neg = torch.einsum("nc,ck->nk", [q, self.queue.clone().detach()])
        logits = torch.cat([l_pos, l_neg], dim=1)
        logits /= self.T
        labels = torch.zeros(logits.shape[0], dtype=torch.long)
        self._dequeue_and_enqueue(k)
        return logits, labels


def sgd_step_both(out: dict, method: tuple, reference: tuple) -> None:
    """One optimiser step of the method and of the reference, recording each side's loss and gradients."""
    for (opt, loss), key in ((method, "m"), (reference, "r")):
        opt.zero_grad()
        loss.backward()
        out[f"grad_{key}"].append([p.grad.clone() for p in opt.param_groups[0]["params"]])
        opt.step()
        out[f"loss_{key}"].append(loss.item())


def mocov2_parity(method_dtype, ref_dtype=torch.float64, steps=3, seed=0, layout="contiguous"):
    """Train MoCo v2 and moco's builder side by side with SGD at lr 0.5 for `steps` steps from the same
    weights and queue; return per-step losses, query gradients, key encoders and queues of both.
    `layout`: the method's `--memory-format` (the reference always runs contiguous)."""
    torch.manual_seed(seed)
    method = make(MoCoV2, queue_size=12, momentum=0.9, temperature=0.2).to(method_dtype)
    ref = MoCoV2Reference(
        copy.deepcopy(nn.Sequential(method.backbone, method.projector)), method.queue, 0.9, 0.2
    )
    ref = ref.to(ref_dtype)
    method.use_memory_format(layout)
    opt_m = torch.optim.SGD([p for p in method.parameters() if p.requires_grad], lr=0.5)
    opt_r = torch.optim.SGD([p for p in ref.parameters() if p.requires_grad], lr=0.5)
    out = {"loss_m": [], "loss_r": [], "grad_m": [], "grad_r": []}
    for step in range(steps):
        x_q, x_k = views(n=4, seed=step + 10 * seed)
        loss_m, _ = method.ssl_step(*in_layout(method, x_q.to(method_dtype), x_k.to(method_dtype)))
        logits, labels = ref(x_q.to(ref_dtype), x_k.to(ref_dtype))
        loss_r = nn.CrossEntropyLoss()(logits, labels)  # main_moco.py's criterion
        sgd_step_both(out, (opt_m, loss_m), (opt_r, loss_r))
    out["keys_m"] = list(nn.Sequential(method.key_backbone, method.key_projector).parameters())
    out["keys_r"] = list(ref.encoder_k.parameters())
    out["queue_m"], out["queue_r"] = method.queue, ref.queue.t()
    return out


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_mocov2_training_matches_moco_builder_in_float64(layout):
    """Three SGD steps at lr 0.5 of the method and of moco's builder in float64: losses, gradients,
    key encoder and queue agree to float64 rounding (measured over seeds 0-19: 3.4e-15 relative in
    the loss, 2.2e-16 absolute in the key encoder), in either layout of the method's weights."""
    r = mocov2_parity(torch.float64, layout=layout)
    assert r["loss_m"] == pytest.approx(r["loss_r"], rel=1e-10, abs=0)
    for gm, gr in zip(r["grad_m"], r["grad_r"], strict=True):
        for a, b in zip(gm, gr, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
    for a, b in zip(r["keys_m"], r["keys_r"], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(r["queue_m"], r["queue_r"], rtol=1e-9, atol=1e-12)


def test_mocov2_float32_training_stays_within_float32_rounding_of_the_reference():
    """Smoke check of the float32 path against the float64 reference. Tolerance from a measured spread:
    over seeds 0-19 (2-core x86_64 dev machine, torch 2.14.1), the float32 losses deviated from float64
    by at most 9.7e-7 relative and the key encoder by at most 1.5e-7 absolute; the bounds below leave
    about 100x for other kernels and summation orders."""
    r = mocov2_parity(torch.float32)
    assert r["loss_m"] == pytest.approx(r["loss_r"], rel=1e-4)
    for a, b in zip(r["keys_m"], r["keys_r"], strict=True):
        torch.testing.assert_close(a.double(), b, rtol=0, atol=2e-5)


def test_mocov2_loss_uses_the_queue_before_this_batch_is_enqueued():
    m = make(MoCoV2, queue_size=8).double()
    x1, x2 = (v.double() for v in views(n=4))
    before = m.queue.clone()
    loss, _ = m.ssl_step(x1, x2)
    with torch.no_grad():
        q = F.normalize(m.projector(m.backbone(x1)), dim=1)
        k = F.normalize(m.key_projector(m.key_backbone(x2)), dim=1)
    assert loss.item() == pytest.approx(info_nce_queue(q, k, before, 0.2).item(), rel=1e-12)
    assert loss.item() != pytest.approx(
        info_nce_queue(q, k, m.queue, 0.2).item(), rel=1e-6
    )  # after: differs


# -- SimCLR ----------------------------------------------------------------------------------------


def test_simclr_matches_reference_with_separate_view_losses():
    """One forward over 2N images then NT-Xent, vs the paper's per-pair loop on the same projections."""
    from tests.test_losses import simclr_reference

    m = make(SimCLR, temperature=0.1).double()  # float64: the comparison is about the algorithm
    x1, x2 = (v.double() for v in views(n=5))
    loss, feats = m.ssl_step(x1, x2)
    z = m.projector(m.backbone(torch.cat([x1, x2])))
    assert loss.item() == pytest.approx(simclr_reference(z[:5], z[5:], 0.1), rel=1e-12)
    assert feats.shape == (5, m.feature_dim)


def test_lars_optimizer_is_selectable_with_the_paper_learning_rate():
    m = make(SimCLR, optimizer="lars", batch_size=256)
    assert m.optimizer_name == "lars" and m.base_lr == 0.3
    assert make(SimCLR).base_lr == 1e-3  # Adam at batch 256, square-root scaled (issue 15)


def test_lars_step_matches_moco_v3_reference():
    from rs_ssl.methods.optim import LARS

    w = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, requires_grad=True)
    opt = LARS([w, b], lr=0.1, weight_decay=0.01, momentum=0.9)
    w0, b0 = w.detach().clone(), b.detach().clone()
    (w.sum() * 2 + (b**2).sum()).backward()
    gw, gb = w.grad.clone(), b.grad.clone()
    opt.step()
    dp = gw + 0.01 * w0
    trust = 0.001 * w0.norm() / dp.norm()
    torch.testing.assert_close(w.detach(), w0 - 0.1 * dp * trust, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(
        b.detach(), b0 - 0.1 * gb, rtol=1e-12, atol=1e-14
    )  # 1-D: no decay, no trust ratio


# -- MoCo v3 ---------------------------------------------------------------------------------------


def test_mocov3_heads_follow_the_reference_builder():
    m = make(MoCoV3, mlp_dim=32)
    lin = [layer for layer in m.projector if isinstance(layer, nn.Linear)]
    assert [(ll.in_features, ll.out_features) for ll in lin] == [(8, 32), (32, 32), (32, 256)]
    assert all(ll.bias is None for ll in lin)
    assert isinstance(m.projector[-1], nn.BatchNorm1d) and not m.projector[-1].affine
    assert sum(isinstance(layer, nn.BatchNorm1d) for layer in m.projector) == 3
    # predictor: Linear-BN-ReLU-Linear, no BatchNorm at the output
    kinds = [type(layer) for layer in m.predictor]
    assert kinds == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear]
    assert m.base_momentum == 0.99 and m.temperature == 0.2 and m.optimizer_name == "adamw"
    assert m.weight_decay == 0.1 and m.warmup_epochs == 40
    assert m.base_lr == 1e-2  # a CNN backbone: the table's cnn_lr, not the ViT rate


def test_mocov3_default_rate_is_the_papers_for_a_vit_and_cnn_lr_for_a_cnn():
    sel = resolve_bands(str(BANDS))
    vit = create_backbone("vit_tiny_patch16_224", sel, img_size=32)
    cnn = create_backbone("resnet18", sel)
    assert make(MoCoV3, backbone=vit, mlp_dim=32).base_lr == 1.5e-4  # moco-v3 CONFIG.md ViT
    assert make(MoCoV3, backbone=cnn, mlp_dim=32).base_lr == 1e-2
    assert make(MoCoV3, backbone=cnn, mlp_dim=32, lr=1.5e-4).base_lr == 1.5e-4  # --lr wins
    # methods without cnn_lr use one rate for every backbone
    assert make(SimCLR, backbone=vit).base_lr == make(SimCLR, backbone=cnn).base_lr == 1e-3


def test_cosine_momentum_matches_adjust_moco_momentum():
    def adjust_moco_momentum(epoch, epochs, moco_m):  # moco-v3 main_moco.py
        return 1.0 - 0.5 * (1.0 + math.cos(math.pi * epoch / epochs)) * (1.0 - moco_m)

    iters, epochs = 7, 3
    for e in range(epochs):
        for i in range(iters):
            step = e * iters + i
            assert cosine_momentum(step, iters * epochs, 0.99) == pytest.approx(
                adjust_moco_momentum(e + i / iters, epochs, 0.99)
            )
    assert cosine_momentum(0, 10) == pytest.approx(0.99) and cosine_momentum(
        10, 10
    ) == pytest.approx(1.0)


class MoCoV3Reference(nn.Module):
    """moco-v3 builder.py `MoCo.forward` written out with a given base encoder and predictor."""

    def __init__(self, base_encoder, predictor, t):
        super().__init__()
        self.base_encoder, self.predictor, self.T = base_encoder, predictor, t
        self.momentum_encoder = copy.deepcopy(base_encoder)
        for param_b, param_m in zip(
            self.base_encoder.parameters(), self.momentum_encoder.parameters(), strict=True
        ):
            param_m.data.copy_(param_b.data)
            param_m.requires_grad = False

    def contrastive_loss(self, q, k):
        q, k = F.normalize(q, dim=1), F.normalize(k, dim=1)
        logits = torch.einsum("nc,mc->nm", [q, k]) / self.T
        return nn.CrossEntropyLoss()(logits, torch.arange(logits.shape[0])) * (2 * self.T)

    def forward(self, x1, x2, m):
        q1 = self.predictor(self.base_encoder(x1))
        q2 = self.predictor(self.base_encoder(x2))
        with torch.no_grad():
            for param_b, param_m in zip(
                self.base_encoder.parameters(), self.momentum_encoder.parameters(), strict=True
            ):
                param_m.data = param_m.data * m + param_b.data * (1.0 - m)
            k1 = self.momentum_encoder(x1)
            k2 = self.momentum_encoder(x2)
        return self.contrastive_loss(q1, k2) + self.contrastive_loss(q2, k1)


def mocov3_parity(method_dtype, ref_dtype=torch.float64, steps=3, seed=0, layout="contiguous"):
    """Train MoCo v3 and moco-v3's builder side by side with SGD at lr 0.5 for `steps` steps from the
    same weights (momentum on the per-step cosine); return losses, gradients and encoders of both.
    `layout`: the method's `--memory-format` (the reference always runs contiguous)."""
    torch.manual_seed(seed)
    method = make(MoCoV3, mlp_dim=16, proj_dim=8).to(method_dtype)
    assert not method.one_forward  # BatchNorm in the backbone: two forwards, as the reference
    assert params_equal(method.backbone, method.key_backbone) and params_equal(
        method.projector, method.key_projector
    )
    ref = MoCoV3Reference(
        copy.deepcopy(nn.Sequential(method.backbone, method.projector)),
        copy.deepcopy(method.predictor),
        0.2,
    ).to(ref_dtype)
    method.use_memory_format(layout)
    opt_m = torch.optim.SGD([p for p in method.parameters() if p.requires_grad], lr=0.5)
    opt_r = torch.optim.SGD([p for p in ref.parameters() if p.requires_grad], lr=0.5)
    out = {"loss_m": [], "loss_r": [], "grad_m": [], "grad_r": []}
    for step in range(steps):
        x1, x2 = views(n=6, seed=step + 10 * seed)
        mom = cosine_momentum(step, steps, 0.9)
        method.current_momentum = lambda mom=mom: mom  # what the Trainer's global step gives
        loss_m, _ = method.ssl_step(*in_layout(method, x1.to(method_dtype), x2.to(method_dtype)))
        loss_r = ref(x1.to(ref_dtype), x2.to(ref_dtype), mom)
        sgd_step_both(out, (opt_m, loss_m), (opt_r, loss_r))
    out["keys_m"] = list(nn.Sequential(method.key_backbone, method.key_projector).parameters())
    out["keys_r"] = list(ref.momentum_encoder.parameters())
    out["pred_m"], out["pred_r"] = (
        list(method.predictor.parameters()),
        list(ref.predictor.parameters()),
    )
    return out


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_mocov3_training_matches_reference_builder_in_float64(layout):
    """Three SGD steps at lr 0.5 of the method and of moco-v3's builder in float64: losses, gradients,
    momentum encoder and predictor agree to float64 rounding (measured over seeds 0-19: 1.5e-14
    relative in the loss, 1.3e-13 absolute in the weights), in either layout of the method's weights."""
    r = mocov3_parity(torch.float64, layout=layout)
    assert r["loss_m"] == pytest.approx(r["loss_r"], rel=1e-10, abs=0)
    for gm, gr in zip(r["grad_m"], r["grad_r"], strict=True):
        for a, b in zip(gm, gr, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
    for a, b in zip(r["keys_m"] + r["pred_m"], r["keys_r"] + r["pred_r"], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_mocov3_float32_training_stays_within_float32_rounding_of_the_reference():
    """Smoke check of the float32 path against the float64 reference. Tolerance from a measured spread:
    over seeds 0-19 (2-core x86_64 dev machine, torch 2.14.1), the float32 losses deviated from float64
    by at most 6.0e-5 relative and the weights by at most 2.7e-4 absolute (BatchNorm over 6 samples
    and lr 0.5 amplify rounding); the bounds below leave about 80x for other kernels and summation
    orders (another machine's float32 run differed from this one's by 1.2e-5 relative, issue 20)."""
    r = mocov3_parity(torch.float32)
    assert r["loss_m"] == pytest.approx(r["loss_r"], rel=5e-3)
    for a, b in zip(r["keys_m"] + r["pred_m"], r["keys_r"] + r["pred_r"], strict=True):
        torch.testing.assert_close(a.detach().double(), b.detach(), rtol=0, atol=2e-2)


def test_mocov3_vit_views_share_one_backbone_forward():
    sel = resolve_bands(str(BANDS))
    vit = create_backbone("vit_tiny_patch16_224", sel, img_size=32)
    m = MoCoV3(backbone=vit, selection=sel, stats=load_stats(sel), views=PairViews(), mlp_dim=16)
    assert m.one_forward and not make(MoCoV3, mlp_dim=16).one_forward
    calls = []
    m.backbone.register_forward_hook(lambda mod, inp, out: calls.append(inp[0].shape[0]))
    x1, x2 = views(n=4, size=32)
    m.ssl_step(x1, x2)
    assert calls == [8]


def test_mocov3_one_backbone_forward_equals_two():
    """A ViT's features do not depend on the rest of the batch: loss, gradients and the momentum
    update are the same whether the views share one forward or take two (as the reference)."""
    sel = resolve_bands(str(BANDS))
    torch.manual_seed(0)
    vit = create_backbone("vit_tiny_patch16_224", sel, img_size=32)
    one = MoCoV3(
        backbone=vit, selection=sel, stats=load_stats(sel), views=PairViews(), mlp_dim=16
    ).double()
    two = copy.deepcopy(one)
    two.one_forward = False
    x1, x2 = (v.double() for v in views(n=4, size=32))  # float64: batch size changes GEMM blocking
    losses = []
    for m in (one, two):
        m.current_momentum = lambda: 0.9
        loss, _ = m.ssl_step(x1, x2)
        loss.backward()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(losses[1], rel=1e-12)
    for a, b in zip(one.parameters(), two.parameters(), strict=True):
        assert (a.grad is None) == (b.grad is None)
        if a.grad is not None:
            torch.testing.assert_close(a.grad, b.grad, rtol=1e-9, atol=1e-12)
    for a, b in zip(one.key_backbone.parameters(), two.key_backbone.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_mocov3_keys_get_no_gradient():
    m = make(MoCoV3, mlp_dim=16)
    x1, x2 = views(n=4)
    loss, _ = m.ssl_step(x1, x2)
    loss.backward()
    assert all(p.grad is None for p in m.key_backbone.parameters())
    assert all(p.grad is not None for p in m.backbone.parameters())


def test_mocov3_momentum_is_stepped_every_iteration_by_the_trainer(tmp_path):
    import lightning as L

    m = make(MoCoV3, mlp_dim=16, batch_size=4)
    seen = []

    class Record(L.Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            seen.append(module.momentum)

    data = [{"image": 1000 + 100 * torch.rand(BANDS, 16, 16)} for _ in range(12)]
    loader = torch.utils.data.DataLoader(data, batch_size=4)
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[Record()],
    )
    trainer.fit(m, loader)
    assert len(seen) == 6
    assert seen == pytest.approx([cosine_momentum(s, 6, 0.99) for s in range(6)])
    assert all(b > a for a, b in zip(seen, seen[1:], strict=False))


def test_mocov3_resume_restores_momentum_encoder_and_schedule(tmp_path):
    """Stop after 3 of 6 steps, resume from the checkpoint in a fresh module: the key encoder comes back
    and the momentum continues at step 3 of the same cosine."""
    import lightning as L

    seen, at_start = {}, []

    class Record(L.Callback):
        def on_train_start(self, trainer, module):
            at_start.append([p.detach().clone() for p in module.key_backbone.parameters()])

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            seen[trainer.global_step - 1] = module.momentum
            if (
                trainer.global_step >= stop_at
            ):  # rs_ssl.callbacks.StopAtStep (Lightning's max_steps breaks resume)
                trainer.should_stop = True

    data = [{"image": 1000 + 100 * torch.rand(BANDS, 16, 16)} for _ in range(12)]
    loader = torch.utils.data.DataLoader(data, batch_size=4)

    def fit(steps, ckpt=None):
        nonlocal stop_at
        stop_at = steps
        torch.manual_seed(0)
        m = make(MoCoV3, mlp_dim=16, batch_size=4, total_steps=6)  # the run's length
        trainer = L.Trainer(
            accelerator="cpu",
            max_epochs=2,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=[Record()],
        )
        trainer.fit(m, loader, ckpt_path=ckpt)
        return m, trainer

    stop_at = 0
    first, trainer = fit(3)
    trainer.save_checkpoint(tmp_path / "mid.ckpt")
    keys = [p.clone() for p in first.key_backbone.parameters()]
    assert sorted(seen) == [0, 1, 2]
    seen.clear()
    second, trainer = fit(6, tmp_path / "mid.ckpt")
    assert sorted(seen) == [3, 4, 5] and trainer.global_step == 6
    assert [seen[s] for s in range(3, 6)] == pytest.approx(
        [cosine_momentum(s, 6, 0.99) for s in range(3, 6)]
    )
    # the resumed run starts from the saved key encoder (not a new copy of the online one)
    assert all(torch.equal(a, b) for a, b in zip(keys, at_start[1], strict=True))
    assert not params_equal(second.backbone, second.key_backbone)


def test_frozen_random_patch_embedding_for_vit():
    sel = resolve_bands("13")
    vit = create_backbone("vit_tiny_patch16_224", sel, img_size=32)
    m = make(MoCoV3, backbone=vit, mlp_dim=16, freeze_patch_embed=True)
    proj = m.backbone.patch_embed.proj
    assert not proj.weight.requires_grad and not proj.bias.requires_grad
    bound = math.sqrt(6.0 / (13 * 16 * 16 + proj.out_channels))
    assert proj.weight.abs().max() <= bound and proj.weight.abs().max() > 0.9 * bound
    frozen = proj.weight.detach().clone()
    assert all(p is not proj.weight for g in m.param_groups() for p in g["params"])
    opt = torch.optim.AdamW([p for g in m.param_groups() for p in g["params"]], lr=1e-2)
    x1, x2 = views(n=4, size=32)
    loss, _ = m.ssl_step(x1, x2)
    loss.backward()
    opt.step()
    assert torch.equal(proj.weight, frozen)
    torch.testing.assert_close(
        m.key_backbone.patch_embed.proj.weight, frozen
    )  # EMA of equal values
    with pytest.raises(ValueError, match="patch_embed"):
        make(MoCoV3, mlp_dim=16, freeze_patch_embed=True)


# -- Relative patch location -----------------------------------------------------------------------

# (row, col) of each label in the paper's Fig. 2 numbering, written out.
_POS = [(0, 0), (0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1), (2, 2)]


def cut_reference(x, labels, jitter):
    p, gap, _, off = grid_geometry(x.shape[-1])
    cs, ns = [], []
    for b in range(x.shape[0]):
        r, c = _POS[int(labels[b])]
        cy, cx = off + (p + gap) + int(jitter[b, 0, 0]), off + (p + gap) + int(jitter[b, 0, 1])
        ny, nx = (
            off + r * (p + gap) + int(jitter[b, 1, 0]),
            off + c * (p + gap) + int(jitter[b, 1, 1]),
        )
        cs.append(x[b, :, cy : cy + p, cx : cx + p])
        ns.append(x[b, :, ny : ny + p, nx : nx + p])
    return torch.stack(cs), torch.stack(ns)


@pytest.mark.parametrize("size", [16, 32, 64, 224])
def test_rpl_patches_match_a_plain_loop_and_stay_apart(size):
    torch.manual_seed(size)
    x = torch.randn(16, 3, size, size)
    labels, jit = sample_pairs(16, size, "cpu")
    c, n = cut_pairs(x, labels, jit)
    rc, rn = cut_reference(x, labels, jit)
    assert torch.equal(c, rc) and torch.equal(n, rn)
    p, gap, j, off = grid_geometry(size)
    assert gap - 2 * j >= 1 and off >= j  # patches never overlap and never leave the view
    assert off + 3 * p + 2 * gap + j <= size
    assert int(jit.abs().max()) <= j


def test_rpl_loss_matches_reference():
    torch.manual_seed(1)
    m = make(RelativePatchLocation, backbone=TinyNet(bn=False)).double()
    m.eval()  # classifier BN with running statistics: separate forwards equal the joint one
    x1, x2 = (v.double() for v in views(n=4, size=32))
    torch.manual_seed(7)
    loss, feats = m.ssl_step(x1, x2)
    torch.manual_seed(7)
    x = torch.cat([x1, x2])
    labels, jit = sample_pairs(8, 32, "cpu")
    c, n = cut_reference(x, labels, jit)
    logits = m.classifier(torch.cat([m.backbone(c), m.backbone(n)], dim=1))
    assert loss.item() == pytest.approx(F.cross_entropy(logits, labels).item(), rel=1e-12)
    assert feats.shape == (8, 8)
    assert RelativePatchLocation.backbone_input_size(32) == 7


def test_mocov2_default_rate_is_not_batch_scaled_but_a_given_rule_or_optimiser_is():
    """MoCo v2's table rule (`lr_scaling: none`, chosen at batch 32) applies to `auto` with its own
    SGD; `--lr-scaling linear` gives the paper's rule, and another optimiser the generic auto."""
    m = make(MoCoV2, batch_size=32)
    assert m.lr_scaling == "none" and m.scaled_lr(1) == 0.12
    assert m.resolved_hyper_parameters()["lr_scaling"] == "none"
    paper = make(MoCoV2, batch_size=32, lr=0.03, lr_scaling="linear")
    assert paper.scaled_lr(1) == pytest.approx(0.03 * 32 / 256)
    adam = make(MoCoV2, batch_size=32, optimizer="adam", lr=1e-3)
    assert adam.lr_scaling == "sqrt" and adam.scaled_lr(1) == pytest.approx(1e-3 * 0.125**0.5)
    assert make(SimCLR, batch_size=32).lr_scaling == "sqrt"  # the table's auto, resolved
