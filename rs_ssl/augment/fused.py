"""Fused execution of a view pipeline built from the Kornia ops of `geometric` and `pixel`.

A view is an ordered list of ops: geometric ops first, then pixel ops. `AugmentedView` draws
every op's parameters exactly as the op would on its own (`op.forward_parameters`, in order,
from torch's global generator of the input's device) and then
  1. multiplies the geometric ops' output->input matrices into one per sample and resamples
     once (one `grid_sample`), instead of once per op;
  2. folds each run of consecutive per-band affine ops (gain, brightness, contrast, spectral
     jitter, colour jitter) into one multiply-add over the image, computing the spatial mean a
     contrast op needs once, as an affine function of the mean of the run's input;
  3. runs the remaining pixel ops only on the samples their `p` gate selects, in place.
`AugmentedView.reference` runs the same ops one by one through Kornia with the same parameters;
the two agree within float rounding (tests/test_augment_parity.py), except that chaining
several interpolating geometric ops one by one resamples several times, which is exactly the
blur the single resampling avoids.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from rs_ssl.augment._common import bc11
from rs_ssl.augment.geometric import (
    AffineAugmentation,
    RandomResizedCrop,
    sample_image,
    sample_mask,
    sampling_grid,
)
from rs_ssl.augment.pixel import BandAffineAugmentation, PixelAugmentation

Params = list[dict[str, Tensor]]


def _check_input(x: Tensor, mask: Tensor | None) -> None:
    if not isinstance(x, Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"augmentations expect a (B, C, H, W) batch, found {shape}")
    if not x.is_floating_point():
        raise ValueError(
            f"augmentations expect a float batch (standardised reflectance), found {x.dtype}; "
            "convert DN to reflectance and standardise first"
        )
    if mask is not None:
        ok = mask.dim() == 4 and mask.shape[1] == 1 and mask.shape[0] == x.shape[0]
        if not ok or mask.shape[-2:] != x.shape[-2:]:
            raise ValueError(
                f"the nodata mask must be (B, 1, H, W) = {(x.shape[0], 1, *x.shape[-2:])}, found {tuple(mask.shape)}"
            )


def _affine_(y: Tensor, scale: Tensor, shift: Tensor) -> Tensor:
    """y <- scale * y + shift per (sample, band), in one pass over `y` and without a new buffer."""
    # Writing into `y` (our own buffer) saves the allocation, which on CPU costs page faults
    # comparable to the arithmetic for batches of this size.
    return torch.addcmul(bc11(shift, y), y, bc11(scale, y), out=y)


class AugmentedView(nn.Module):
    """One augmented view: Kornia ops run fused (one resampling, one affine pass per run)."""

    def __init__(self, ops: Sequence[nn.Module]) -> None:
        super().__init__()
        geometric, pixel = [], []
        for op in ops:
            if isinstance(op, AffineAugmentation):
                if isinstance(op, RandomResizedCrop) and geometric:
                    raise ValueError(
                        f"{type(op).__name__} must be the first geometric op of a view: the single "
                        "resampling reads one crop box of the input"
                    )
                if pixel:
                    raise ValueError(
                        f"{type(op).__name__} comes after a pixel op; put geometric ops first "
                        "(they are composed into one resampling)"
                    )
                geometric.append(op)
            elif isinstance(op, PixelAugmentation):
                pixel.append(op)
            else:
                raise ValueError(
                    f"{type(op).__name__} is not an rs_ssl.augment op; use the classes of "
                    "rs_ssl.augment.geometric and rs_ssl.augment.pixel"
                )
        modes = {op.padding_mode for op in geometric}
        if len(modes) > 1:
            raise ValueError(
                f"geometric ops of one view must share one padding_mode, found {sorted(modes)}"
            )
        self.padding_mode = modes.pop() if modes else "reflection"
        self.geometric = nn.ModuleList(geometric)
        self.pixel = nn.ModuleList(pixel)

    @property
    def ops(self) -> list[nn.Module]:
        return [*self.geometric, *self.pixel]

    def output_hw(self, in_hw: tuple[int, int]) -> tuple[int, int]:
        for op in self.geometric:
            in_hw = op.output_hw(in_hw)
        return in_hw

    def sample(self, shape: Sequence[int], device: torch.device | str) -> Params:
        """Draw every op's parameters, in order, as each op's own Kornia forward would."""
        params = []
        shape = torch.Size(shape)
        for op in self.ops:
            op.set_rng_device_and_dtype(torch.device(device), torch.float32)
            params.append(op.forward_parameters(shape))
            if isinstance(op, AffineAugmentation):
                shape = torch.Size((*shape[:2], *op.output_hw((shape[-2], shape[-1]))))
        return params

    def forward(
        self, x: Tensor, mask: Tensor | None = None, params: Params | None = None
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Augment `x` (B, C, H, W); returns the view, or `(view, mask)` when a mask is given."""
        _check_input(x, mask)
        if params is None:
            params = self.sample(x.shape, x.device)
        # Half precision is augmented in float32 and cast back: bfloat16 sampling coordinates
        # and running means would be visibly wrong.
        work = x if x.dtype in (torch.float32, torch.float64) else x.float()
        y, mask = self._geometry(work, mask, params[: len(self.geometric)])
        y = self._pixels(y, params[len(self.geometric) :])
        y = y.to(x.dtype)
        return y if mask is None else (y, mask)

    def matrix(
        self, params: Params, in_hw: tuple[int, int], device
    ) -> tuple[Tensor | None, Tensor | None, bool]:
        """The composed (B, 3, 3) output->input pixel map, the crop box, and whether samples can leave it."""
        hw, total, box, leaves = in_hw, None, None, False
        for i, (op, p) in enumerate(zip(self.geometric, params, strict=False)):
            mat = op.gated_src_from_dst(p, hw).to(device)
            if i == 0:
                box = op.box(p, hw)  # a crop (always applied) is only ever the first op
            leaves = leaves or op.leaves_box(hw)
            # Output->input maps compose in the order the ops are applied.
            total = mat if total is None else total @ mat
            hw = op.output_hw(hw)
        return total, box, leaves

    def _geometry(
        self, x: Tensor, mask: Tensor | None, params: Params
    ) -> tuple[Tensor, Tensor | None]:
        in_hw = (x.shape[-2], x.shape[-1])
        total, box, leaves = self.matrix(params, in_hw, x.device)
        if total is None:
            return x.clone(), mask  # pixel ops work in place on their own buffer
        grid, inside = sampling_grid(
            total, in_hw, self.output_hw(in_hw), box, self.padding_mode, leaves
        )
        y = sample_image(x, grid, inside, self.padding_mode)
        if mask is not None:
            mask = sample_mask(mask, grid, inside)
        return y, mask

    def _pixels(self, y: Tensor, params: Params) -> Tensor:
        batch, channels = y.shape[0], y.shape[1]
        scale = shift = base_mean = None
        for op, p in zip(self.pixel, params, strict=True):
            if isinstance(op, BandAffineAugmentation):
                mean = None
                if op.needs_mean:
                    if base_mean is None:
                        base_mean = y.float().mean(dim=(-2, -1))
                    mean = base_mean if scale is None else scale * base_mean + shift
                s, t = op.gated_affine(p, channels, mean, batch, y.device)
                s, t = s.to(y.device), t.to(y.device)
                scale, shift = (s, t) if scale is None else (s * scale, s * shift + t)
                continue
            if scale is not None:
                y = _affine_(y, scale, shift)
                scale = shift = None
            base_mean = None
            y = op.apply_gated(y, p)
        if scale is not None:
            y = _affine_(y, scale, shift)
        return y

    def reference(
        self, x: Tensor, params: Params, mask: Tensor | None = None
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Op-by-op Kornia composition with the given parameters (the parity reference)."""
        for op, p in zip(self.ops, params, strict=True):
            if mask is not None and isinstance(op, AffineAugmentation):
                mask = op.transform_masks(mask.float(), params=p, flags=op.flags) > 0.5
            x = op(x, params=p)
        return x if mask is None else (x, mask)


class TwoViews(nn.Module):
    """The two views of a contrastive method: `forward(x, mask=None) -> (v1, v2)`.

    With a nodata mask (B, 1, H, W; True / 1 = valid) it returns `((v1, m1), (v2, m2))`, each
    mask resampled with its view's geometry. Views are `size` x `size`, on `x`'s device and in
    its dtype; parameters come from torch's global generator of that device, so
    `torch.manual_seed` (or a restored CPU/CUDA RNG state) reproduces them.
    """

    def __init__(
        self, view1: AugmentedView, view2: AugmentedView, size: int, config: dict | None = None
    ):
        super().__init__()
        self.view1, self.view2 = view1, view2
        self.size = int(size)
        self.config = config or {}

    def forward(self, x: Tensor, mask: Tensor | None = None):
        _check_input(x, mask)
        for view in (self.view1, self.view2):
            out_hw = view.output_hw((x.shape[-2], x.shape[-1]))
            if out_hw != (self.size, self.size):
                raise ValueError(
                    f"this view pipeline turns a {tuple(x.shape[-2:])} input into {out_hw}, not "
                    f"{(self.size, self.size)}; start each view with a crop to size"
                )
        return self.view1(x, mask), self.view2(x, mask)
