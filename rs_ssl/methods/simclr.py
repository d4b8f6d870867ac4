"""SimCLR (Chen, Kornblith, Norouzi, Hinton 2020) with the SimCLR-S2 settings for Sentinel-2.

NT-Xent over 2N views with negatives gathered from every GPU (gradients back-propagated to every
rank, as the reference's TPU cross-replica concat does), 2-layer projection head with BatchNorm,
temperature 0.1 and Adam (lr 1e-3 at batch 256, square-root scaled); `optimizer="lars"` gives the paper's LARS
(lr 0.3 x batch/256, no weight decay or adaptation on biases and BN parameters).
"""

from __future__ import annotations

from typing import Any

import torch

from rs_ssl.losses import nt_xent_all_ranks
from rs_ssl.methods.base import SSLMethod
from rs_ssl.models.heads import mlp


class SimCLR(SSLMethod):
    name = "simclr"

    def __init__(
        self, *, temperature: float | None = None, proj_dim: int | None = None, **common: Any
    ):
        """Own hyper-parameters (None: the method table's default)."""
        super().__init__(**common)
        dflt = self.defaults
        self.temperature = dflt.temperature if temperature is None else temperature
        self.proj_dim = dflt.proj_dim if proj_dim is None else proj_dim
        d = self.feature_dim
        self.projector = mlp([d, d, self.proj_dim], batchnorm=[True, False])

    def resolved_hyper_parameters(self) -> dict[str, Any]:
        return super().resolved_hyper_parameters() | {
            "temperature": self.temperature,
            "proj_dim": self.proj_dim,
        }

    def ssl_step(self, v1: torch.Tensor, v2: torch.Tensor):
        n = v1.shape[0]
        # One forward over both views: one kernel launch sequence, BN statistics over 2N images.
        feats = self.backbone(torch.cat([v1, v2], dim=0))
        z = self.projector(feats)
        return nt_xent_all_ranks(z[:n], z[n:], self.temperature), feats[:n]
