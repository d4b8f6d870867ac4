"""Gathers across DDP ranks for the losses; identities when torch.distributed is not initialised."""

from __future__ import annotations

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


@torch.no_grad()
def concat_all_gather(x: torch.Tensor) -> torch.Tensor:
    """All-gather without gradient (moco `builder.concat_all_gather`): for keys and queue entries."""
    if not is_distributed():
        return x
    out = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(out, x.contiguous())
    return torch.cat(out, dim=0)


class _GatherWithGrad(torch.autograd.Function):
    """All-gather whose backward sums every rank's gradient of the gathered tensor and keeps this
    rank's slice (lightly `utils/dist.GatherLayer`, solo-learn `utils/misc.GatherLayer`).

    With DDP's gradient averaging this gives exactly the gradient of the loss over the global batch;
    keeping only the local slice differentiable (gradients from other ranks' anchors dropped) does not.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(out, x.contiguous())
        return tuple(out)

    @staticmethod
    def backward(ctx, *grads: torch.Tensor) -> torch.Tensor:
        g = torch.stack([g.contiguous() for g in grads])
        dist.all_reduce(g)  # sum over ranks: gloo and nccl both support it
        return g[dist.get_rank()]


def gather_with_grad(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """All-gather that back-propagates to every rank; returns (gathered, this rank's first row)."""
    if not is_distributed():
        return x, 0
    return torch.cat(_GatherWithGrad.apply(x), dim=0), dist.get_rank() * x.shape[0]
