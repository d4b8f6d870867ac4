"""Linear classifiers on frozen feature tensors: one layer per point of a small LR x weight-decay sweep
(k-NN is in `rs_ssl.eval.knn`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from rs_ssl.eval import metrics as M

LRS = (1e-3, 1e-2, 1e-1)
WEIGHT_DECAYS = (0.0, 1e-4, 1e-2)


@dataclass
class Split:
    """Features (N, D) and targets: class indices (N,) or multi-hot (N, K)."""

    x: torch.Tensor
    y: torch.Tensor


def scores(logits: torch.Tensor, multilabel: bool) -> torch.Tensor:
    return torch.sigmoid(logits) if multilabel else torch.softmax(logits, dim=1)


def train_heads(
    train: Split,
    num_classes: int,
    multilabel: bool,
    lrs: list[float],
    weight_decays: list[float],
    epochs: int = 100,
    batch_size: int = 256,
    seed: int = 0,
) -> list[nn.Module]:
    """One linear layer per (lr, weight decay) pair on standardised features, all trained together as one
    stacked tensor (the heads are independent: the summed loss separates), with AdamW (decoupled decay,
    PyTorch's defaults betas (0.9, 0.999), eps 1e-8) on a per-step cosine LR; softmax-CE or sigmoid-BCE."""
    g = torch.Generator().manual_seed(seed)
    h, d = len(lrs), train.x.shape[1]
    mean, std = train.x.mean(0), train.x.std(0, unbiased=False).clamp(min=1e-6)
    x = (train.x - mean) / std
    w = (torch.randn(h, d, num_classes, generator=g) * 0.01).requires_grad_()
    b = torch.zeros(h, 1, num_classes, requires_grad=True)
    lr = torch.tensor(lrs, dtype=torch.float32).view(h, 1, 1)
    wd = torch.tensor(weight_decays, dtype=torch.float32).view(h, 1, 1)
    state = {p: (torch.zeros_like(p), torch.zeros_like(p)) for p in (w, b)}
    n = len(x)
    total = epochs * max(1, -(-n // batch_size))
    step = 0
    for _ in range(epochs):
        for idx in torch.randperm(n, generator=g).split(batch_size):
            logits = torch.einsum("nd,hdk->hnk", x[idx], w) + b
            y = train.y[idx]
            if multilabel:
                loss = (
                    F.binary_cross_entropy_with_logits(
                        logits, y.float().expand_as(logits), reduction="none"
                    )
                    .mean((1, 2))
                    .sum()
                )
            else:
                loss = (
                    F.cross_entropy(logits.reshape(-1, num_classes), y.repeat(h), reduction="none")
                    .view(h, -1)
                    .mean(1)
                    .sum()
                )
            gw, gb = torch.autograd.grad(loss, (w, b))
            step += 1
            cos = 0.5 * (1 + math.cos(math.pi * (step - 1) / total))
            with torch.no_grad():
                for p, grad in ((w, gw), (b, gb)):
                    m, v = state[p]
                    m.mul_(0.9).add_(grad, alpha=0.1)
                    v.mul_(0.999).addcmul_(grad, grad, value=0.001)
                    mhat, vhat = m / (1 - 0.9**step), v / (1 - 0.999**step)
                    p.mul_(1 - lr * cos * wd)
                    p.sub_(lr * cos * mhat / (vhat.sqrt() + 1e-8))
    heads = []
    for i in range(h):
        lin = nn.Linear(d, num_classes)
        with torch.no_grad():
            lin.weight.copy_(w[i].T)
            lin.bias.copy_(b[i, 0])
        heads.append(nn.Sequential(_Standardise(mean, std), lin).eval().requires_grad_(False))
    return heads


class _Standardise(nn.Module):
    def __init__(self, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def selection_score(y: torch.Tensor, s: torch.Tensor, multilabel: bool) -> float:
    """Validation criterion of the sweep: micro mAP (multi-label, threshold-free) or accuracy."""
    if multilabel:
        return M.average_precision(y, s) or 0.0
    return float((s.argmax(1) == y).double().mean())


def sweep_linear(
    train: Split,
    val: Split,
    num_classes: int,
    multilabel: bool,
    epochs: int = 100,
    seed: int = 0,
    lrs=LRS,
    weight_decays=WEIGHT_DECAYS,
) -> tuple[nn.Module, dict]:
    """Train one head per (lr, wd); keep the best on `val` (ties: the first, i.e. smallest lr and wd)."""
    grid = [(lr, wd) for lr in lrs for wd in weight_decays]
    heads = train_heads(
        train,
        num_classes,
        multilabel,
        [g[0] for g in grid],
        [g[1] for g in grid],
        epochs=epochs,
        seed=seed,
    )
    results = []
    with torch.no_grad():
        for (lr, wd), head in zip(grid, heads, strict=True):
            v = selection_score(val.y, scores(head(val.x), multilabel), multilabel)
            results.append({"lr": lr, "weight_decay": wd, "val_score": v})
    best = max(range(len(grid)), key=lambda i: results[i]["val_score"])
    return heads[best], {
        "grid": results,
        "chosen": {"lr": grid[best][0], "weight_decay": grid[best][1]},
        "criterion": "micro mAP" if multilabel else "accuracy",
        "epochs": epochs,
    }
