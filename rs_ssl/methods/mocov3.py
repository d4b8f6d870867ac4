"""MoCo v3 (Chen, Xie, He 2021, "An Empirical Study of Training Self-Supervised Vision Transformers").

Follows facebookresearch/moco-v3 `moco/builder.py` and `main_moco.py`: the momentum encoder
(backbone + projector) starts as a copy of the online one and is updated before the keys are
computed; symmetric loss `ctr(q1, k2) + ctr(q2, k1)` with in-batch keys gathered from every rank
(no queue); momentum 0.99 -> 1 on a half-cosine stepped every iteration (`adjust_moco_momentum`);
AdamW lr 1.5e-4 x batch/256, wd 0.1, 40 warm-up epochs, temperature 0.2 (ViT settings).
Deviations on purpose (method table, benchmarks/RESULTS.md): with a CNN backbone the default rate
is 1e-2 (`cnn_lr`; the ViT rate trained 9 validation points worse with ResNet-18 in the 8-epoch
AID benchmark), AdamW's rate is square-root scaled (`--lr-scaling linear` is the reference's), and
a run shorter than 300 epochs warms up for the same 40/300 of its length.

Heads (`_build_mlp`): Linear layers without bias, BN + ReLU after every hidden layer, hidden 4096,
output 256. Projector: 3 layers (paper Sec. 4; the reference code uses 3 for ViT and 2 for ResNet),
ending in a non-affine BN. Predictor: 2 layers with no BN at its output (the reference's ResNet
predictor; its ViT predictor also ends in a non-affine BN, the paper text and this package do not).
"""

from __future__ import annotations

import math
from functools import reduce
from operator import mul
from typing import Any

import torch
from torch import nn

from rs_ssl.losses import info_nce_all_ranks
from rs_ssl.methods.momentum import MomentumContrast
from rs_ssl.models.backbone import patch_projection
from rs_ssl.models.heads import mlp


def cosine_momentum(step: int, total: int, base: float = 0.99) -> float:
    """moco-v3 main_moco.py `adjust_moco_momentum`: `1 - (1 + cos(pi * t)) / 2 * (1 - base)`, t = step / total."""
    t = min(1.0, step / max(1, total))
    return 1.0 - 0.5 * (1.0 + math.cos(math.pi * t)) * (1.0 - base)


def freeze_random_patch_embed(backbone: nn.Module) -> None:
    """moco-v3 vits.py `stop_grad_conv1`: the ViT patch projection keeps a random (Xavier-uniform,
    as a linear layer of fan-in C*p*p and fan-out D) initialisation and is never trained (Sec. 5.1)."""
    proj = patch_projection(backbone)
    if proj is None:
        raise ValueError(
            f"freeze_patch_embed needs a ViT with patch_embed.proj; {type(backbone).__name__} has none"
        )
    fan_in = proj.in_channels * reduce(mul, proj.kernel_size, 1)
    val = math.sqrt(6.0 / float(fan_in + proj.out_channels))
    with torch.no_grad():
        nn.init.uniform_(proj.weight, -val, val)
        if proj.bias is not None:
            nn.init.zeros_(proj.bias)
    for p in proj.parameters():
        p.requires_grad = False


class MoCoV3(MomentumContrast):
    name = "mocov3"

    def __init__(
        self, *, mlp_dim: int | None = None, freeze_patch_embed: bool = False, **moco: Any
    ):
        """`mlp_dim`: the heads' hidden width (None: the method table's paper default);
        `freeze_patch_embed`: a ViT's random frozen patch projection; `moco`: MomentumContrast's
        hyper-parameters (its `momentum` is the start of the per-step cosine to 1) and SSLMethod's."""
        super().__init__(**moco)
        hidden = self.defaults.mlp_dim if mlp_dim is None else int(mlp_dim)
        self.momentum = self.base_momentum
        if freeze_patch_embed:
            freeze_random_patch_embed(self.backbone)
        d, out = self.feature_dim, self.proj_dim
        self.projector = mlp(
            [d, hidden, hidden, out], batchnorm=[True, True, True], last_bn_affine=False
        )
        self.predictor = mlp([out, hidden, out], batchnorm=[True, False], bias=False)
        self.make_key_encoder()  # the momentum encoder (builder.py: `param_m.data.copy_(...)`)
        # A backbone without BatchNorm (a ViT: LayerNorm is per sample) gives each image the same
        # features whether the views go through it together or apart, so both go in one forward
        # (bigger matmuls, half the kernel launches). With BatchNorm the views stay apart, as in the
        # reference, whose BN statistics are per view. The heads always see one view at a time.
        self.one_forward = not any(
            isinstance(m, nn.modules.batchnorm._BatchNorm) for m in self.backbone.modules()
        )

    def _features(self, backbone: nn.Module, v1: torch.Tensor, v2: torch.Tensor):
        if self.one_forward:
            return backbone(torch.cat([v1, v2], dim=0)).chunk(2, dim=0)
        return backbone(v1), backbone(v2)

    def current_momentum(self) -> float:
        """The momentum for this iteration: cosine in the global step over the run's steps."""
        trainer = self._trainer
        if trainer is None:
            return self.base_momentum
        total = self.total_steps or int(trainer.estimated_stepping_batches)
        return cosine_momentum(trainer.global_step, total, self.base_momentum)

    def ssl_step(self, v1: torch.Tensor, v2: torch.Tensor):
        # builder.py `forward`: heads (with BatchNorm) per view; see `one_forward` for the backbone.
        f1, f2 = self._features(self.backbone, v1, v2)
        q1 = self.predictor(self.projector(f1))
        q2 = self.predictor(self.projector(f2))
        self.momentum = self.current_momentum()
        with torch.no_grad():  # stop-gradient on the keys
            self.momentum_update(self.momentum)
            g1, g2 = self._features(self.key_backbone, v1, v2)
            k1 = self.key_projector(g1)
            k2 = self.key_projector(g2)
        t = self.temperature
        return info_nce_all_ranks(q1, k2, t) + info_nce_all_ranks(q2, k1, t), f1

    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        # A float would be copied to the device by Lightning (`torch.tensor(x, device=...)`, a sync);
        # `torch.full` is a fill kernel with the value as its argument.
        momentum = torch.full((), self.momentum, device=self.device)
        self.log(
            "train/momentum",
            momentum,
            on_step=True,
            on_epoch=False,
            batch_size=batch["v1"].shape[0],
        )
        return loss
