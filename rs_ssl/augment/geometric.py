"""Geometric augmentations as Kornia modules that each describe themselves by one affine matrix.

Every op maps output pixel coordinates to input pixel coordinates with a (B, 3, 3) matrix
(`src_from_dst`), in continuous pixel units where pixel j covers [j, j + 1) (the convention of
`F.interpolate(..., align_corners=False)`). Composing ops is a matrix product, so a view pipeline
resamples once (`fused.AugmentedView`), while each op still runs on its own through Kornia
(`op(x)`, `K.AugmentationSequential`). The same geometry applies to every band of an image.

Images are sampled bilinearly with `padding_mode` ("reflection" by default: inside the image it
equals edge clamping, as `F.interpolate` does; outside it mirrors rather than writing zeros,
which are the dataset mean after standardisation but still a false edge). The nodata mask
(1 / True = valid) follows the same coordinates: an output pixel is valid only if it lies inside
the input and every input pixel its bilinear sample reads is valid.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from kornia.augmentation import GeometricAugmentationBase2D
from torch import Tensor

from rs_ssl.augment._common import as_range, constant, gate, uniform

# "circular" wraps samples that leave the image around to its other side (a roll, as `np.roll`).
PADDING_MODES = ("reflection", "border", "zeros", "circular")
_MASK_VALID = 0.999  # bilinear weights of valid neighbours sum to 1 up to float rounding


def _eye(batch: int, device) -> Tensor:
    return torch.eye(3, device=device, dtype=torch.float32).expand(batch, 3, 3).clone()


def pixel_to_normalized(height: int, width: int, device) -> Tensor:
    """3x3 map from pixel coordinates to `grid_sample` coordinates (align_corners=False)."""
    return constant([[2.0 / width, 0.0, -1.0], [0.0, 2.0 / height, -1.0], [0.0, 0.0, 1.0]], device)


def normalized_theta(
    src_from_dst: Tensor, in_hw: tuple[int, int], out_hw: tuple[int, int]
) -> Tensor:
    """(B, 2, 3) `affine_grid` matrix for a pixel-space output->input map."""
    dev = src_from_dst.device
    n_in = pixel_to_normalized(*in_hw, dev)
    h, w = out_hw
    # Closed-form inverse of pixel_to_normalized(h, w): no linear solver on the GPU.
    n_out_inv = constant([[w / 2.0, 0.0, w / 2.0], [0.0, h / 2.0, h / 2.0], [0.0, 0.0, 1.0]], dev)
    return (n_in @ src_from_dst.float() @ n_out_inv)[:, :2, :]


def _box_normalized(box: Tensor, in_hw: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """(B, 1, 1, 2) low and high edges of a pixel box (x0, y0, x1, y1) in grid coordinates."""
    scale = constant([2.0 / in_hw[1], 2.0 / in_hw[0]], box.device)
    lo = box[:, :2].float() * scale - 1.0
    hi = box[:, 2:].float() * scale - 1.0
    return lo[:, None, None, :], hi[:, None, None, :]


def sampling_grid(
    src_from_dst: Tensor,
    in_hw: tuple[int, int],
    out_hw: tuple[int, int],
    box: Tensor | None = None,
    padding_mode: str = "reflection",
    leaves_box: bool = True,
) -> tuple[Tensor, Tensor | None]:
    """`grid_sample` grid (float32) and, if samples can leave `box`, the (B, 1, h, w) inside mask.

    `box` (B, 4: x0, y0, x1, y1 in input pixels; default the whole input) is the image the
    first op sees after a crop. Samples are reflected into it ("reflection") or clamped, and
    always clamped to its outer pixel centres, so a crop + resize reads only the crop, exactly
    as `crop` then `F.interpolate(..., align_corners=False)` does.
    """
    batch = src_from_dst.shape[0]
    theta = normalized_theta(src_from_dst, in_hw, out_hw)
    grid = F.affine_grid(theta, [batch, 1, *out_hw], align_corners=False)
    if box is None:
        box = constant([0.0, 0.0, in_hw[1], in_hw[0]], grid.device).expand(batch, 4)
    lo, hi = _box_normalized(box.to(grid.device), in_hw)
    inside = None
    if leaves_box and padding_mode == "circular":
        # Wrapped samples are image content, not padding: no inside mask.
        grid = lo + torch.remainder(grid - lo, hi - lo)
    elif leaves_box:
        eps = 1e-5
        inside = ((grid >= lo - eps) & (grid <= hi + eps)).all(dim=-1).unsqueeze(1)
        if padding_mode == "reflection":
            span = hi - lo
            t = torch.remainder(grid - lo, 2.0 * span)
            grid = lo + torch.where(t > span, 2.0 * span - t, t)
    half = constant([1.0 / in_hw[1], 1.0 / in_hw[0]], grid.device)
    grid = grid.clamp_(min=lo + half, max=hi - half)
    return grid, inside


def sample_image(x: Tensor, grid: Tensor, inside: Tensor | None, padding_mode: str) -> Tensor:
    """Bilinear samples of `x` at `grid` (already inside the image); zeros outside if asked."""
    # Sample in float32 for half-precision images: a bfloat16 grid coordinate of 224 px is off
    # by up to half a pixel.
    src = x if x.dtype in (torch.float32, torch.float64) else x.float()
    out = F.grid_sample(
        src, grid.to(src.dtype), mode="bilinear", padding_mode="border", align_corners=False
    )
    if padding_mode == "zeros" and inside is not None:
        out = out * inside.to(out.dtype)
    return out.to(x.dtype)


def sample_mask(mask: Tensor, grid: Tensor, inside: Tensor | None) -> Tensor:
    """A validity mask (B, 1, H, W; bool or 0/1 float) carried through the same sampling.

    Valid where every input pixel the bilinear sample reads is valid and the sample lies inside
    the image (not in a rotated corner, shifted-in strip or zoomed-out margin).
    """
    soft = F.grid_sample(
        mask.float(), grid, mode="bilinear", padding_mode="border", align_corners=False
    )
    valid = soft >= _MASK_VALID
    if inside is not None:
        valid &= inside
    return valid if mask.dtype == torch.bool else valid.to(mask.dtype)


def resample(
    x: Tensor,
    src_from_dst: Tensor,
    out_hw: tuple[int, int],
    padding_mode: str = "reflection",
    box: Tensor | None = None,
    leaves_box: bool = True,
) -> Tensor:
    """Bilinearly resample `x` (B, C, H, W) through a pixel-space output->input matrix."""
    in_hw = (x.shape[-2], x.shape[-1])
    grid, inside = sampling_grid(src_from_dst, in_hw, out_hw, box, padding_mode, leaves_box)
    return sample_image(x, grid, inside, padding_mode)


def resample_mask(
    mask: Tensor,
    src_from_dst: Tensor,
    out_hw: tuple[int, int],
    box: Tensor | None = None,
    leaves_box: bool = True,
    padding_mode: str = "border",
) -> Tensor:
    """Carry a validity mask through the resampling of `resample` (wrapped if "circular")."""
    in_hw = (mask.shape[-2], mask.shape[-1])
    mode = "circular" if padding_mode == "circular" else "border"
    grid, inside = sampling_grid(src_from_dst, in_hw, out_hw, box, mode, leaves_box)
    return sample_mask(mask, grid, inside)


def _batch_device(params: dict[str, Tensor]) -> tuple[int, torch.device]:
    """Batch size and device of a parameter-free op, read from its Kornia gate."""
    prob = params["batch_prob"]  # one entry per sample; its shape is read without a host sync
    return prob.shape[0], prob.device


def _kornia_convention(src_from_dst: Tensor) -> Tensor:
    """Kornia's `transform_matrix`: input->output, pixel centres at integer coordinates."""
    shift = torch.eye(3, device=src_from_dst.device, dtype=torch.float32)
    shift_back = shift.clone()
    shift[:2, 2] = -0.5
    shift_back[:2, 2] = 0.5
    return shift @ torch.linalg.inv(src_from_dst.float()) @ shift_back


class AffineAugmentation(GeometricAugmentationBase2D):
    """Base of the geometric ops: one pixel-space output->input matrix per sample.

    Subclasses implement `generate_parameters` and `src_from_dst`; crops also `output_hw`.
    """

    def __init__(self, p: float, same_on_batch: bool, padding_mode: str) -> None:
        super().__init__(p=p, same_on_batch=same_on_batch, keepdim=False)
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {PADDING_MODES}, found {padding_mode!r}")
        self.padding_mode = padding_mode

    def output_hw(self, in_hw: tuple[int, int]) -> tuple[int, int]:
        """Spatial size of the output for an input of spatial size `in_hw`."""
        return in_hw

    def src_from_dst(self, params: dict[str, Tensor], in_hw: tuple[int, int]) -> Tensor:
        """(B, 3, 3) output->input pixel map for the sampled parameters (gate not applied)."""
        raise NotImplementedError

    def box(self, params: dict[str, Tensor], in_hw: tuple[int, int]) -> Tensor | None:
        """(B, 4) input region the output is read from (x0, y0, x1, y1); None: the whole input."""
        return None

    def leaves_box(self, in_hw: tuple[int, int]) -> bool:
        """Whether samples can fall outside the input (and need padding and masking)."""
        return True

    def gated_src_from_dst(self, params: dict[str, Tensor], in_hw: tuple[int, int]) -> Tensor:
        """The same map with the identity for the samples the `p` gate skips."""
        mat = self.src_from_dst(params, in_hw)
        on = gate(self, params, mat.shape[0], mat.device)
        if self.output_hw(in_hw) != in_hw:
            return mat  # size-changing ops are always applied (p = 1)
        return torch.where(on[:, None, None], mat, _eye(mat.shape[0], mat.device))

    # --- Kornia hooks -------------------------------------------------------------------------
    def compute_transformation(
        self, input: Tensor, params: dict[str, Tensor], flags: dict[str, Any]
    ) -> Tensor:
        mat = self.src_from_dst(params, (input.shape[-2], input.shape[-1]))
        return _kornia_convention(mat).to(input.device, input.dtype)

    def apply_transform(
        self,
        input: Tensor,
        params: dict[str, Tensor],
        flags: dict[str, Any],
        transform: Tensor | None = None,
    ) -> Tensor:
        in_hw = (input.shape[-2], input.shape[-1])
        mat = self.src_from_dst(params, in_hw).to(input.device)
        box = self.box(params, in_hw)
        return resample(
            input, mat, self.output_hw(in_hw), self.padding_mode, box, self.leaves_box(in_hw)
        )

    def apply_transform_mask(
        self,
        input: Tensor,
        params: dict[str, Tensor],
        flags: dict[str, Any],
        transform: Tensor | None = None,
    ) -> Tensor:
        in_hw = (input.shape[-2], input.shape[-1])
        mat = self.src_from_dst(params, in_hw).to(input.device)
        return resample_mask(
            input,
            mat,
            self.output_hw(in_hw),
            self.box(params, in_hw),
            self.leaves_box(in_hw),
            self.padding_mode,
        )


class RandomResizedCrop(AffineAugmentation):
    """Random resized crop (Szegedy et al. 2015, as torchvision samples it) to `size` x `size`.

    Area fraction in `scale` (SimCLR/MoCo v3: (0.08, 1); MoCo v2: (0.2, 1)), aspect ratio
    log-uniform in `ratio` (3/4, 4/3); 10 attempts, then the central crop clamped to `ratio`.
    Crop boxes are whole pixels, as in torchvision, so the result equals `crop + F.interpolate`.
    """

    def __init__(
        self,
        size: int,
        scale: Sequence[float] = (0.08, 1.0),
        ratio: Sequence[float] = (3 / 4, 4 / 3),
        same_on_batch: bool = False,
        padding_mode: str = "reflection",
    ) -> None:
        super().__init__(p=1.0, same_on_batch=same_on_batch, padding_mode=padding_mode)
        self.size = int(size)
        self.scale = as_range(tuple(scale), "scale", 0.0, 0.0)
        self.ratio = as_range(tuple(ratio), "ratio", 0.0, 1e-6)
        if self.size < 1 or self.scale[1] > 1.0 or self.scale[0] <= 0.0:
            raise ValueError(f"size must be >= 1 and scale within (0, 1], found {size}, {scale}")
        self.flags = {"size": (self.size, self.size)}

    def output_hw(self, in_hw: tuple[int, int]) -> tuple[int, int]:
        return (self.size, self.size)

    def generate_parameters(self, batch_shape: tuple[int, ...]) -> dict[str, Tensor]:
        batch, height, width = batch_shape[0], batch_shape[-2], batch_shape[-1]
        n = 1 if self.same_on_batch else batch
        dev, tries = self.device, 10
        area = height * width * uniform(*self.scale, (n, tries), False, dev)
        log_r = uniform(math.log(self.ratio[0]), math.log(self.ratio[1]), (n, tries), False, dev)
        ratio = torch.exp(log_r)
        w = torch.round(torch.sqrt(area * ratio))
        h = torch.round(torch.sqrt(area / ratio))
        ok = (w > 0) & (w <= width) & (h > 0) & (h <= height)
        first = ok.float().argmax(dim=1, keepdim=True)
        w, h = w.gather(1, first)[:, 0], h.gather(1, first)[:, 0]
        # torchvision's fallback: the whole image, its aspect ratio clamped into `ratio`.
        in_ratio = width / height
        if in_ratio < self.ratio[0]:
            fw, fh = width, round(width / self.ratio[0])
        elif in_ratio > self.ratio[1]:
            fw, fh = round(height * self.ratio[1]), height
        else:
            fw, fh = width, height
        any_ok = ok.any(dim=1)
        w = torch.where(any_ok, w, torch.full_like(w, fw))
        h = torch.where(any_ok, h, torch.full_like(h, fh))
        offsets = uniform(0.0, 1.0, (n, 2), False, dev)
        x0 = torch.floor(offsets[:, 0] * (width - w + 1)).clamp(max=width - w)
        y0 = torch.floor(offsets[:, 1] * (height - h + 1)).clamp(max=height - h)
        crop = torch.stack([x0, y0, w, h], dim=1).expand(batch, 4)
        out = constant([self.size, self.size], dev, torch.long).expand(batch, 2)
        return {"crop": crop, "output_size": out}

    def box(self, params: dict[str, Tensor], in_hw: tuple[int, int]) -> Tensor:
        crop = params["crop"].float()
        return torch.cat([crop[:, :2], crop[:, :2] + crop[:, 2:]], dim=1)

    def leaves_box(self, in_hw: tuple[int, int]) -> bool:
        return False

    def src_from_dst(self, params: dict[str, Tensor], in_hw: tuple[int, int]) -> Tensor:
        crop = params["crop"].float()
        mat = _eye(crop.shape[0], crop.device)
        mat[:, 0, 0] = crop[:, 2] / self.size
        mat[:, 1, 1] = crop[:, 3] / self.size
        mat[:, 0, 2] = crop[:, 0]
        mat[:, 1, 2] = crop[:, 1]
        return mat


class RandomCrop(RandomResizedCrop):
    """Crop a random `size` x `size` window (whole pixels); a smaller input is resized up to `size`.

    The geometry-only pipelines (`s2`, custom lists) start with it so that every view has the
    requested size whatever the patch size of the dataset.
    """

    def __init__(
        self, size: int, same_on_batch: bool = False, padding_mode: str = "reflection"
    ) -> None:
        super().__init__(
            size,
            scale=(1.0, 1.0),
            ratio=(1.0, 1.0),
            same_on_batch=same_on_batch,
            padding_mode=padding_mode,
        )

    def generate_parameters(self, batch_shape: tuple[int, ...]) -> dict[str, Tensor]:
        batch, height, width = batch_shape[0], batch_shape[-2], batch_shape[-1]
        h, w = min(self.size, height), min(self.size, width)
        offsets = uniform(0.0, 1.0, (batch, 2), self.same_on_batch, self.device)
        x0 = torch.floor(offsets[:, 0] * (width - w + 1)).clamp(max=width - w)
        y0 = torch.floor(offsets[:, 1] * (height - h + 1)).clamp(max=height - h)
        wh = constant([w, h], self.device).expand(batch, 2)
        crop = torch.cat([torch.stack([x0, y0], dim=1), wh], dim=1)
        out = constant([self.size, self.size], self.device, torch.long).expand(batch, 2)
        return {"crop": crop, "output_size": out}


class _AxisFlip(AffineAugmentation):
    """Mirror along one image axis with probability `p` (0 = columns: left-right, 1 = rows)."""

    AXIS: int

    def __init__(
        self, p: float = 0.5, same_on_batch: bool = False, padding_mode: str = "reflection"
    ) -> None:
        super().__init__(p=p, same_on_batch=same_on_batch, padding_mode=padding_mode)

    def leaves_box(self, in_hw: tuple[int, int]) -> bool:
        return False

    def generate_parameters(self, batch_shape: tuple[int, ...]) -> dict[str, Tensor]:
        return {}

    def src_from_dst(self, params: dict[str, Tensor], in_hw: tuple[int, int]) -> Tensor:
        mat = _eye(*_batch_device(params))
        a = self.AXIS
        mat[:, a, a] = -1.0
        mat[:, a, 2] = float(in_hw[1 - a])  # x' = W - x, or y' = H - y
        return mat


class RandomHorizontalFlip(_AxisFlip):
    """Mirror left-right with probability `p` (0.5 in every SSL recipe)."""

    AXIS = 0


class RandomVerticalFlip(_AxisFlip):
    """Mirror top-bottom with probability `p`: overhead imagery has no 'up' (added to RGB recipes)."""

    AXIS = 1


def _rotation_about_centre(cos: Tensor, sin: Tensor, in_hw: tuple[int, int]) -> Tensor:
    """Output->input map of a rotation about the image centre (positive = counter-clockwise as shown)."""
    cy, cx = in_hw[0] / 2.0, in_hw[1] / 2.0
    mat = _eye(cos.shape[0], cos.device)
    # With y pointing down, a counter-clockwise turn of the content samples the input at
    # R(+angle) applied to the output offset.
    mat[:, 0, 0], mat[:, 0, 1] = cos, -sin
    mat[:, 1, 0], mat[:, 1, 1] = sin, cos
    mat[:, 0, 2] = cx - cos * cx + sin * cy
    mat[:, 1, 2] = cy - sin * cx - cos * cy
    return mat


class RandomRotation90(AffineAugmentation):
    """Rotate by k * 90 degrees, k uniform in {0, 1, 2, 3}: exact for square images, no padding."""

    def __init__(
        self, p: float = 1.0, same_on_batch: bool = False, padding_mode: str = "reflection"
    ) -> None:
        super().__init__(p=p, same_on_batch=same_on_batch, padding_mode=padding_mode)

    def leaves_box(self, in_hw: tuple[int, int]) -> bool:
        return in_hw[0] != in_hw[1]

    def generate_parameters(self, batch_shape: tuple[int, ...]) -> dict[str, Tensor]:
        draw = uniform(0.0, 4.0, (batch_shape[0],), self.same_on_batch, self.device)
        return {"quarter_turns": torch.floor(draw).clamp(max=3.0)}

    def src_from_dst(self, params: dict[str, Tensor], in_hw: tuple[int, int]) -> Tensor:
        k = params["quarter_turns"].long() % 4
        # Exact cosines and sines: trigonometry in float32 would leave 1e-8 residues.
        cos = constant([1.0, 0.0, -1.0, 0.0], k.device)[k]
        sin = constant([0.0, 1.0, 0.0, -1.0], k.device)[k]
        return _rotation_about_centre(cos, sin, in_hw)


class RandomRotation(AffineAugmentation):
    """Free rotation by an angle uniform in `degrees` about the centre; corners are padded."""

    def __init__(
        self,
        degrees: float | Sequence[float] = 180.0,
        p: float = 0.5,
        same_on_batch: bool = False,
        padding_mode: str = "reflection",
    ) -> None:
        super().__init__(p=p, same_on_batch=same_on_batch, padding_mode=padding_mode)
        self.degrees = as_range(degrees, "degrees", 0.0, -360.0)

    def generate_parameters(self, batch_shape: tuple[int, ...]) -> dict[str, Tensor]:
        return {
            "degrees": uniform(*self.degrees, (batch_shape[0],), self.same_on_batch, self.device)
        }

    def src_from_dst(self, params: dict[str, Tensor], in_hw: tuple[int, int]) -> Tensor:
        rad = torch.deg2rad(params["degrees"].float())
        return _rotation_about_centre(torch.cos(rad), torch.sin(rad), in_hw)


class RandomShift(AffineAugmentation):
    """Translate by up to `fraction` of the width/height in each direction; strips are padded.

    With `whole_pixels` the shift is rounded to whole pixels; with `padding_mode="circular"` as
    well it is exactly a roll (`np.roll`), as the SimCLR-S2 study shifts.
    """

    def __init__(
        self,
        fraction: float = 0.1,
        p: float = 0.5,
        same_on_batch: bool = False,
        padding_mode: str = "reflection",
        whole_pixels: bool = False,
    ) -> None:
        super().__init__(p=p, same_on_batch=same_on_batch, padding_mode=padding_mode)
        if not 0.0 <= fraction < 1.0:
            raise ValueError(f"shift fraction must be in [0, 1), found {fraction}")
        self.fraction = float(fraction)
        self.whole_pixels = bool(whole_pixels)

    def generate_parameters(self, batch_shape: tuple[int, ...]) -> dict[str, Tensor]:
        f = self.fraction
        return {"shift": uniform(-f, f, (batch_shape[0], 2), self.same_on_batch, self.device)}

    def src_from_dst(self, params: dict[str, Tensor], in_hw: tuple[int, int]) -> Tensor:
        shift = params["shift"].float()
        mat = _eye(shift.shape[0], shift.device)
        dx, dy = shift[:, 0] * in_hw[1], shift[:, 1] * in_hw[0]
        if self.whole_pixels:
            dx, dy = torch.round(dx), torch.round(dy)
        mat[:, 0, 2] = -dx
        mat[:, 1, 2] = -dy
        return mat


class RandomZoom(AffineAugmentation):
    """Zoom about the centre by a factor log-uniform in `scale` (> 1 zooms in; < 1 pads margins)."""

    def __init__(
        self,
        scale: Sequence[float] = (0.8, 1.25),
        p: float = 0.5,
        same_on_batch: bool = False,
        padding_mode: str = "reflection",
    ) -> None:
        super().__init__(p=p, same_on_batch=same_on_batch, padding_mode=padding_mode)
        self.scale = as_range(tuple(scale), "zoom scale", 1.0, 1e-3)

    def generate_parameters(self, batch_shape: tuple[int, ...]) -> dict[str, Tensor]:
        lo, hi = math.log(self.scale[0]), math.log(self.scale[1])
        return {
            "zoom": torch.exp(uniform(lo, hi, (batch_shape[0],), self.same_on_batch, self.device))
        }

    def src_from_dst(self, params: dict[str, Tensor], in_hw: tuple[int, int]) -> Tensor:
        inv = 1.0 / params["zoom"].float()
        cy, cx = in_hw[0] / 2.0, in_hw[1] / 2.0
        mat = _eye(inv.shape[0], inv.device)
        mat[:, 0, 0], mat[:, 1, 1] = inv, inv
        mat[:, 0, 2] = cx * (1.0 - inv)
        mat[:, 1, 2] = cy * (1.0 - inv)
        return mat


class RandomBoxZoom(AffineAugmentation):
    """Zoom in: crop a random square box of side `side` (a fraction of the image side, uniform in
    that range) anywhere in the image and resize it back to the image's size.

    Unlike `RandomZoom` (about the centre, in or out) it never reads outside the image. SimCLR-S2
    zooms this way; its `ZOOM = 0.2` gives sides in (0.8, 1.0).
    """

    def __init__(
        self,
        side: Sequence[float] = (0.8, 1.0),
        p: float = 0.5,
        same_on_batch: bool = False,
        padding_mode: str = "reflection",
    ) -> None:
        super().__init__(p=p, same_on_batch=same_on_batch, padding_mode=padding_mode)
        self.side = as_range(tuple(side), "zoom box side", 0.0, 1e-3)
        if self.side[1] > 1.0:
            raise ValueError(f"zoom box side must be within (0, 1] of the image side, found {side}")

    def leaves_box(self, in_hw: tuple[int, int]) -> bool:
        return False

    def generate_parameters(self, batch_shape: tuple[int, ...]) -> dict[str, Tensor]:
        n = batch_shape[0]
        return {
            "side": uniform(*self.side, (n,), self.same_on_batch, self.device),
            "offset": uniform(0.0, 1.0, (n, 2), self.same_on_batch, self.device),
        }

    def src_from_dst(self, params: dict[str, Tensor], in_hw: tuple[int, int]) -> Tensor:
        s = params["side"].float()
        off = params["offset"].float()
        h, w = in_hw
        mat = _eye(s.shape[0], s.device)
        mat[:, 0, 0], mat[:, 1, 1] = s, s
        mat[:, 0, 2] = off[:, 0] * (1.0 - s) * w
        mat[:, 1, 2] = off[:, 1] * (1.0 - s) * h
        return mat
