"""Relative patch location (Doersch, Gupta, Efros 2015, "Unsupervised Visual Representation
Learning by Context Prediction").

From each augmented view, a 3 x 3 grid of patches separated by a gap is laid out; the centre patch
and one of its 8 neighbours (the label) are cut, each shifted by its own random jitter. A shared
backbone embeds both patches; their concatenated features go through an MLP to an 8-way softmax.

Geometry, scaled from the paper's 96 px patches, 48 px gap, up to 7 px jitter (Sec. 3) to a view
of S pixels: patch p = floor(S / 4.15) (3 patches + 2 half-patch gaps + the jitter margin), gap =
p // 2, jitter = round(7/96 p) at most the margin left around the centred grid; patches of a pair
never overlap (gap > 2 x jitter).
Both views of an image give a pair, so a batch of N images trains on 2N pairs. Not in this
version: the paper's colour dropping / projection against chromatic aberration (the network may
use band-to-band misregistration as a shortcut; RS sensors are band-registered to sub-pixel accuracy).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from rs_ssl.losses.infonce import full_precision
from rs_ssl.methods.base import SSLMethod
from rs_ssl.models.heads import mlp

# Neighbour (row, col) in the 3 x 3 grid for labels 0..7: row-major order without the centre (1, 1),
# as the paper's Fig. 2 numbering.
NEIGHBOURS: tuple[tuple[int, int], ...] = tuple(
    (r, c) for r in range(3) for c in range(3) if (r, c) != (1, 1)
)


def grid_geometry(size: int) -> tuple[int, int, int, int]:
    """(patch, gap, jitter, offset of the centred grid) in pixels for a view of `size` pixels."""
    patch = int(size / 4.15)
    if patch < 2:
        raise ValueError(f"relative patch location needs views of at least 9 pixels, got {size}")
    gap = patch // 2
    offset = (size - 3 * patch - 2 * gap) // 2
    jitter = min(offset, round(patch * 7 / 96), (gap - 1) // 2)
    return patch, gap, jitter, offset


def sample_pairs(
    batch: int, size: int, device: torch.device | str, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random labels (B,) in 0..7 and jitters (B, 2, 2) in [-j, j]: [b, 0] centre (dy, dx), [b, 1] neighbour."""
    j = grid_geometry(size)[2]
    labels = torch.randint(0, 8, (batch,), device=device, generator=generator)
    jit = torch.randint(-j, j + 1, (batch, 2, 2), device=device, generator=generator)
    return labels, jit


def cut_pairs(
    x: torch.Tensor, labels: torch.Tensor, jitter: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut (centre, neighbour) patches (B, C, p, p) from views x (B, C, S, S), in one gather on the device."""
    b, _, s, _ = x.shape
    patch, gap, _, offset = grid_geometry(s)
    step = patch + gap
    nb = torch.as_tensor(NEIGHBOURS, device=x.device)[
        labels
    ]  # (B, 2) grid row, col of the neighbour
    centre = torch.ones_like(nb)
    cells = torch.stack([centre, nb], dim=1)  # (B, 2 patches, 2 coords)
    top_left = offset + cells * step + jitter  # (B, 2, 2)
    ar = torch.arange(patch, device=x.device)
    rows = top_left[..., 0, None] + ar  # (B, 2, p)
    cols = top_left[..., 1, None] + ar
    bi = torch.arange(b, device=x.device)[:, None, None, None]
    # Advanced indices (B,1,1,1), (B,2,p,1), (B,2,1,p) around the channel slice -> (B, 2, p, p, C).
    out = x[bi, :, rows[..., :, None], cols[..., None, :]].permute(0, 1, 4, 2, 3)
    return out[:, 0], out[:, 1]


class RelativePatchLocation(SSLMethod):
    name = "rpl"

    @classmethod
    def backbone_input_size(cls, size: int) -> int:
        return grid_geometry(size)[0]

    def __init__(self, **common: Any):
        super().__init__(**common)
        d = self.feature_dim
        # Paper: per-patch fc6, then concatenation -> fc7 (4096) -> fc8 (8). Here the backbone's pooled
        # features are concatenated -> Linear + BN + ReLU (hidden d) -> Linear to the 8 positions.
        self.classifier = mlp([2 * d, d, 8], batchnorm=[True, False])

    def logits(
        self, centre: torch.Tensor, neighbour: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """8-way logits and the centre patches' features; one backbone forward over both patch sets."""
        n = centre.shape[0]
        f = self.backbone(torch.cat([centre, neighbour], dim=0))
        return self.classifier(torch.cat([f[:n], f[n:]], dim=1)), f[:n]

    def ssl_step(self, v1: torch.Tensor, v2: torch.Tensor):
        x = torch.cat([v1, v2], dim=0)
        labels, jit = sample_pairs(x.shape[0], x.shape[-1], x.device)
        centre, neighbour = cut_pairs(x, labels, jit)
        logits, feats = self.logits(centre, neighbour)
        return F.cross_entropy(full_precision(logits), labels), feats
