"""MoCo v2 (Chen, Fan, Girshick, He 2020, "Improved Baselines with Momentum Contrastive Learning").

Follows facebookresearch/moco `moco/builder.py`: the key encoder starts as a copy of the query
encoder and is updated by momentum before the keys are computed; a queue of K normalised keys
gives the negatives; 2-layer MLP head; temperature 0.2; SGD wd 1e-4, cosine.

Deviation on purpose: the default rate is 0.12 at every batch size, not the reference's 0.03 x
batch/256 (3.75e-3 at rs-ssl's batch 32, which trained 5 validation points worse in the 8-epoch
AID benchmark; `rs_ssl/methods/table.py`, benchmarks/RESULTS.md). `--lr 0.03 --lr-scaling linear`
or `recipes/mocov2-resnext50.yaml` give the reference's.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from rs_ssl.losses import info_nce_queue
from rs_ssl.losses.dist import concat_all_gather
from rs_ssl.methods.momentum import MomentumContrast
from rs_ssl.models.heads import mlp


class MoCoV2(MomentumContrast):
    name = "mocov2"

    def __init__(self, *, queue_size: int | None = None, **moco: Any):
        """`queue_size` (None: the method table's paper default) is clamped to the data by
        `effective_queue_size` when the epoch's samples are known; `moco`: MomentumContrast's
        hyper-parameters and SSLMethod's."""
        super().__init__(**moco)
        k = self.defaults.queue_size if queue_size is None else int(queue_size)
        if self.epoch_samples is not None:
            k = self.effective_queue_size(k, self.batch_size, self.epoch_samples)
        d = self.feature_dim
        # "we replace the fc head in MoCo with a 2-layer MLP head (hidden layer 2048-d, with ReLU)"
        self.projector = mlp([d, d, self.proj_dim], batchnorm=[False, False])
        self.make_key_encoder()
        self.register_buffer("queue", F.normalize(torch.randn(k, self.proj_dim), dim=1))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))

    @staticmethod
    def effective_queue_size(queue_size: int, batch_size: int, samples: int) -> int:
        """MoCo's queue must hold keys of *other* images: at most half an epoch's distinct samples.

        A queue larger than the data (the 16384 default on the 512-patch demo) fills with random
        initial keys and with earlier keys of the query's own image, so it is clamped, with a notice.
        `samples` is the epoch's length (patch datasets use every sample, not --samples-per-epoch).
        """
        limit = max(batch_size, (samples // 2) // batch_size * batch_size)
        if queue_size > limit:
            print(
                f"note: --queue-size {queue_size} exceeds half of the {samples} samples per epoch; using {limit}"
            )
            return limit
        return queue_size

    def resolved_hyper_parameters(self) -> dict[str, Any]:
        return super().resolved_hyper_parameters() | {"queue_size": int(self.queue.shape[0])}

    def param_groups(self):
        """Weight decay on every parameter, biases and BatchNorm included: moco main_moco.py builds
        `SGD(model.parameters(), lr, momentum=0.9, weight_decay=1e-4)` with no exclusions."""
        return [
            {
                "params": [p for p in self.parameters() if p.requires_grad],
                "weight_decay": self.weight_decay,
            }
        ]

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        keys = concat_all_gather(keys)
        k = self.queue.shape[0]
        n = keys.shape[0]
        if n >= k:
            self.queue.copy_(keys[-k:])
            self.queue_ptr.zero_()
            return
        # Index arithmetic on the device: no `.item()` host sync in the step.
        idx = (self.queue_ptr + torch.arange(n, device=keys.device)) % k
        self.queue.index_copy_(0, idx, keys.to(self.queue.dtype))
        self.queue_ptr.copy_((self.queue_ptr + n) % k)

    def ssl_step(self, v1: torch.Tensor, v2: torch.Tensor):
        feats = self.backbone(v1)
        q = F.normalize(self.projector(feats), dim=1)
        with torch.no_grad():
            self.momentum_update(self.base_momentum)
            # Single-device runs have no batch shuffle; under DDP, SyncBN is used instead of
            # shuffle-BN (Trainer(sync_batchnorm=True)), which also stops BN statistics leaking.
            k = F.normalize(self.key_projector(self.key_backbone(v2)), dim=1)
        loss = info_nce_queue(q, k, self.queue.clone().detach(), self.temperature)
        self.enqueue(k)
        return loss, feats
