"""Helpers shared by the pixel and geometric augmentations: parameter draws, gates, band checks."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
from torch import Tensor

# Every random draw of this package goes through torch's global generator of the device the
# parameters are drawn on, so `torch.manual_seed` (and a restored RNG state) reproduces views.


def uniform(
    low: float | Tensor, high: float | Tensor, shape: Sequence[int], same_on_batch: bool, device
) -> Tensor:
    """Uniform draws of `shape` (batch first) in float32; one draw shared by the batch if asked."""
    if same_on_batch:
        draw = torch.rand((1, *shape[1:]), device=device, dtype=torch.float32)
        draw = draw.expand(*shape)
    else:
        draw = torch.rand(tuple(shape), device=device, dtype=torch.float32)
    return low + (high - low) * draw


def constant(values, device, dtype: torch.dtype = torch.float32) -> Tensor:
    """A small tensor of fixed values on `device`, made once per (values, device, dtype) and shared.

    `torch.tensor(values, device=cuda)` copies from the host and waits for the copy, a sync that
    stalls the GPU at every step; the cached tensor is copied once. Read-only: never modify it.
    """
    return _constant(_frozen(values), torch.device(device), dtype)


def _frozen(values):
    return tuple(_frozen(v) for v in values) if isinstance(values, (list, tuple)) else float(values)


@functools.lru_cache(maxsize=512)
def _constant(values, device: torch.device, dtype: torch.dtype) -> Tensor:
    return torch.tensor(values, dtype=dtype).to(device)


def as_range(
    value: float | Sequence[float], name: str, centre: float, low_bound: float
) -> tuple[float, float]:
    """Read a magnitude `m` as `(centre - m, centre + m)` or take an explicit `(low, high)` range."""
    if isinstance(value, (int, float)):
        lo, hi = centre - float(value), centre + float(value)
    else:
        if len(value) != 2:
            raise ValueError(f"{name}: expected a number or a (low, high) pair, found {value!r}")
        lo, hi = float(value[0]), float(value[1])
    if lo > hi:
        raise ValueError(f"{name}: low end {lo} is above high end {hi}; pass (low, high)")
    if lo < low_bound:
        raise ValueError(f"{name}: range {lo, hi} goes below {low_bound}; pass a smaller magnitude")
    return lo, hi


def gate(module, params: dict[str, Tensor], batch: int, device) -> Tensor:
    """Boolean per-sample mask of the samples `module` transforms (Kornia's `p`/`p_batch` gate)."""
    if module.p == 1.0 and module.p_batch == 1.0:
        # Kornia ignores `batch_prob` on this static path, so the fused path must too.
        return torch.ones(batch, dtype=torch.bool, device=device)
    prob = params["batch_prob"]
    return torch.atleast_1d(prob > 0.5).to(device).expand(batch)


def per_band(values: Sequence[float] | Tensor | None, name: str) -> Tensor | None:
    """A per-band vector as a float32 tensor (None stays None)."""
    if values is None:
        return None
    out = torch.as_tensor(values, dtype=torch.float32).flatten()
    if out.numel() == 0:
        raise ValueError(f"{name}: expected one value per band, found an empty list")
    return out


def check_bands(vector: Tensor | None, channels: int, what: str) -> None:
    """Raise if a per-band vector does not have one entry per band of the input."""
    if vector is not None and vector.numel() != channels:
        raise ValueError(
            f"{what} has {vector.numel()} values but the input has {channels} bands; "
            f"give one value per band, in the input's band order"
        )


def reflectance_offset(mean: Sequence[float] | None, std: Sequence[float] | None) -> Tensor | None:
    """Per-band `mean / std`: the shift that turns a reflectance-space gain into a standardised one.

    With standardisation z = (r - mean) / std, multiplying reflectance by g gives
    z' = g * z + (g - 1) * mean / std.
    """
    if (mean is None) != (std is None):
        raise ValueError("mean and std (per-band reflectance statistics) must be given together")
    if mean is None:
        return None
    m, s = per_band(mean, "mean"), per_band(std, "std")
    if m.numel() != s.numel():
        raise ValueError(f"mean has {m.numel()} values but std has {s.numel()}; give one per band")
    if bool((s <= 0).any()):
        raise ValueError(f"std must be positive for every band, found {s.tolist()}")
    return m / s


def bc11(v: Tensor, like: Tensor) -> Tensor:
    """(B, C) -> (B, C, 1, 1) in the dtype and on the device of `like`."""
    return v.to(device=like.device, dtype=like.dtype)[:, :, None, None]
