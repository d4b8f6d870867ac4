"""SimCLR (Chen, Kornblith, Norouzi, Hinton 2020) with the SimCLR-S2 settings for Sentinel-2.

NT-Xent over 2N views with negatives gathered from every GPU (gradients back-propagated to every
rank, as the reference's TPU cross-replica concat does), 2-layer projection head with BatchNorm,
temperature 0.1 and Adam (lr 1e-3 at batch 256, square-root scaled); `optimizer="lars"` gives the paper's LARS
(lr 0.3 x batch/256, no weight decay or adaptation on biases and BN parameters).
"""

from __future__ import annotations

import torch

from rs_ssl.losses import nt_xent_all_ranks
from rs_ssl.methods.base import MethodDefaults, SSLMethod
from rs_ssl.models.heads import mlp


class SimCLR(SSLMethod):
    name = "simclr"
    # Adam 1e-3 at batch 256, square-root scaled (`scale_lr`): 3.5e-4 at the default batch 32, close to the
    # SimCLR-S2 study's 5e-4 at its batch 32 (the earlier 5e-4 "at 256", linearly scaled, trained at
    # 6.25e-5). Views: the `light` preset. Together (not measured apart) the two changes raised the probe
    # accuracy of an 8-epoch 64 px AID run from 0.310 to 0.345, and the light gain on standardised
    # values (not reflectance) to 0.378 (benchmarks/RESULTS.md, issue 15);
    # `--augs simclr` gives the paper's views.
    # LARS: "learning rate of 4.8 (= 0.3 x BatchSize/256) and weight decay of 1e-6" (SimCLR Sec. B.6).
    defaults = MethodDefaults(
        lr=1e-3, weight_decay=1e-6, temperature=0.1, preset="light", optimizer="adam", lars_lr=0.3
    )

    def configure_models(self) -> None:
        d = self.feature_dim
        self.projector = mlp([d, d, self.proj_dim], batchnorm=[True, False])

    def ssl_step(self, v1: torch.Tensor, v2: torch.Tensor):
        n = v1.shape[0]
        # One forward over both views: one kernel launch sequence, BN statistics over 2N images.
        feats = self.backbone(torch.cat([v1, v2], dim=0))
        z = self.projector(feats)
        return nt_xent_all_ranks(z[:n], z[n:], self.temperature), feats[:n]
