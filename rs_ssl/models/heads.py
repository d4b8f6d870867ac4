"""Projection and prediction heads declared as lists of layers (lightly's style)."""

from __future__ import annotations

from torch import nn


def mlp(
    dims: list[int], batchnorm: list[bool], last_bn_affine: bool = True, bias: bool = True
) -> nn.Sequential:
    """Linear layers between consecutive `dims`; BatchNorm where `batchnorm[i]`; ReLU between layers.

    `batchnorm` has one entry per linear layer. The last layer has no ReLU; if it has BatchNorm,
    `last_bn_affine=False` gives MoCo v3's non-affine output BN of the projector. A Linear followed
    by BatchNorm never has a bias; `bias=False` drops it from the others too (moco-v3 `_build_mlp`
    builds every Linear with `bias=False`).
    """
    if len(batchnorm) != len(dims) - 1:
        raise ValueError(f"batchnorm has {len(batchnorm)} entries for {len(dims) - 1} layers")
    layers: list[nn.Module] = []
    n = len(dims) - 1
    for i in range(n):
        last = i == n - 1
        layers.append(nn.Linear(dims[i], dims[i + 1], bias=bias and not batchnorm[i]))
        if batchnorm[i]:
            layers.append(nn.BatchNorm1d(dims[i + 1], affine=not last or last_bn_affine))
        if not last:
            layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)
