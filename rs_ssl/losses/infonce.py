"""Contrastive InfoNCE losses: MoCo's (queue or in-batch keys) and SimCLR's NT-Xent."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rs_ssl.losses.dist import concat_all_gather, gather_with_grad, is_distributed


def full_precision(x: torch.Tensor) -> torch.Tensor:
    """At least float32: half-precision (bf16/fp16) inputs are upcast so that the exponentials of the
    logits stay accurate; float64 stays float64, so parity tests can compare in double precision."""
    return x if x.dtype == torch.float64 else x.float()


def _no_autocast(x: torch.Tensor):
    """Autocast off on x's device: under bf16 autocast a matmul of float32 inputs still runs in bf16,
    which rounds similarities to ~3 significant digits before they are divided by a small temperature."""
    return torch.autocast(device_type=x.device.type, enabled=False)


def info_nce_queue(
    q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float = 0.2
) -> torch.Tensor:
    """MoCo v1/v2 loss: each query's positive is its key, negatives are the queue (He et al. 2020, Alg. 1).

    q, k: (N, D) L2-normalised; queue: (K, D) L2-normalised keys of earlier batches.
    temperature: 0.07 in MoCo v1, 0.2 in MoCo v2.
    """
    with _no_autocast(q):
        q, k, queue = full_precision(q), full_precision(k), full_precision(queue)
        l_pos = (q * k).sum(dim=1, keepdim=True)  # (N, 1)
        l_neg = q @ queue.t()  # (N, K)
        logits = torch.cat([l_pos, l_neg], dim=1) / temperature
        labels = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
        return F.cross_entropy(logits, labels)


def info_nce(
    q: torch.Tensor, k: torch.Tensor, temperature: float = 0.2, offset: int = 0
) -> torch.Tensor:
    """MoCo v3 loss: keys of the same batch (all ranks) are the negatives (Chen, Xie, He 2021, Alg. 1).

    Returns `CE(q k^T / t) * 2t` as in the reference code (moco-v3 `builder.contrastive_loss`), whose
    2t factor keeps gradients comparable across temperatures. q: (N, D) queries of this rank; k: (M, D)
    keys gathered over all ranks, M >= N; the positive of query i is key `offset + i` (the reference's
    `labels = arange(N) + N * rank`). temperature: 0.2 for ViT, 1.0 for ResNet in the reference.
    """
    with _no_autocast(q):
        q = F.normalize(full_precision(q), dim=1)
        k = F.normalize(full_precision(k), dim=1)
        logits = q @ k.t() / temperature
        labels = torch.arange(q.shape[0], device=q.device) + offset
        return F.cross_entropy(logits, labels) * (2 * temperature)


def info_nce_all_ranks(q: torch.Tensor, k: torch.Tensor, temperature: float = 0.2) -> torch.Tensor:
    """`info_nce` against the keys of every rank (moco-v3 `contrastive_loss`: keys gathered without
    gradient, labels `N * rank + i`); plain `info_nce` when not distributed."""
    offset = torch.distributed.get_rank() * q.shape[0] if is_distributed() else 0
    return info_nce(q, concat_all_gather(k), temperature, offset)


def nt_xent_all_ranks(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """`nt_xent` of this rank's projections with the negatives of every rank (gathered with gradient);
    plain `nt_xent` when not distributed."""
    z1_all, offset = gather_with_grad(z1)
    z2_all, _ = gather_with_grad(z2)
    return nt_xent(z1, z2, temperature, z1_all, z2_all, offset)


def nt_xent(
    z1: torch.Tensor,
    z2: torch.Tensor,
    temperature: float = 0.1,
    z1_all: torch.Tensor | None = None,
    z2_all: torch.Tensor | None = None,
    offset: int = 0,
) -> torch.Tensor:
    """SimCLR's NT-Xent (Chen et al. 2020, Alg. 1): 2N views, positives are the other view of each image.

    z1, z2: (N, D) projections of this rank. z1_all, z2_all: the same gathered over all ranks (default:
    z1, z2), and `offset` is this rank's first row in them, so negatives come from every GPU. The mean
    is over this rank's 2N anchors; gather with `rs_ssl.losses.dist.gather_with_grad` so that, after
    DDP's gradient averaging, gradients equal those of the loss over the global batch.
    temperature: 0.5 in the paper's default, 0.1 in SimCLR-S2.
    """
    with _no_autocast(z1):
        z1 = F.normalize(full_precision(z1), dim=1)
        z2 = F.normalize(full_precision(z2), dim=1)
        z1_all = z1 if z1_all is None else F.normalize(full_precision(z1_all), dim=1)
        z2_all = z2 if z2_all is None else F.normalize(full_precision(z2_all), dim=1)
        return _nt_xent_normalised(z1, z2, z1_all, z2_all, temperature, offset)


def _nt_xent_normalised(
    z1: torch.Tensor,
    z2: torch.Tensor,
    z1_all: torch.Tensor,
    z2_all: torch.Tensor,
    temperature: float,
    offset: int,
) -> torch.Tensor:
    n, big_n = z1.shape[0], z1_all.shape[0]
    keys = torch.cat([z1_all, z2_all], dim=0)  # (2M, D)
    idx = torch.arange(n, device=z1.device) + offset
    # Anchor view 1 (rows idx): positive is view 2 of the same image (column M + idx); self is masked.
    logits1 = z1 @ keys.t() / temperature
    logits2 = z2 @ keys.t() / temperature
    # Mask self-similarity with a scatter: F.one_hot would range-check `idx` on the host (a sync).
    logits1 = logits1.scatter(1, idx[:, None], float("-inf"))
    logits2 = logits2.scatter(1, (idx + big_n)[:, None], float("-inf"))
    loss1 = F.cross_entropy(logits1, idx + big_n)
    loss2 = F.cross_entropy(logits2, idx)
    return (loss1 + loss2) / 2
