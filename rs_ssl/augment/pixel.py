"""Pixel (intensity) augmentations for any number of bands, as Kornia modules.

Inputs are standardised reflectance (per band: z = (r - mean) / std), so nothing here clips to
[0, 1]: clipping a standardised image throws away everything below the band mean. Magnitudes
are in standard deviations unless stated. Where an op has a physical meaning in reflectance
(gain, speckle, solarize threshold) it takes the per-band `mean`/`std` the data were
standardised with and acts on reflectance; without them it acts on the values as given.

Every op draws all of its randomness in `forward_parameters` (noise fields included, as Kornia's
`RandomGaussianNoise` does), so replaying `params` reproduces an output exactly; the fused view
pipeline relies on this to match the op-by-op Kornia composition.

Ops whose effect is a per-sample, per-band affine map (`BandAffineAugmentation`) are folded by
the fused pipeline into one multiply-add; the others run as one gated elementwise step each.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from kornia.augmentation import IntensityAugmentationBase2D
from torch import Tensor

from rs_ssl.augment._common import (
    as_range,
    bc11,
    check_bands,
    gate,
    per_band,
    reflectance_offset,
    uniform,
)

_NOT_PER_SAMPLE = ("batch_prob", "forward_input_shape")


def gate_on_host(device) -> bool:
    """Whether gated ops read their gate back and work only on the samples it selects.

    On the CPU that read is free (the work is synchronous anyway) and skipping the other samples
    saves their work (MoCo v3 blurs 10% of its second view). On a GPU the read would stall the
    training step until the device catches up, so there every sample is transformed (or given a
    noise field) and the gate selects on the device; these ops are elementwise or a small blur.
    """
    return torch.device(device).type == "cpu"


def take(params: dict[str, Tensor], index: Tensor) -> dict[str, Tensor]:
    """The parameters of the samples in `index` (per-sample tensors are indexed on dim 0)."""
    return {k: (v if k in _NOT_PER_SAMPLE else v[index]) for k, v in params.items()}


class PixelAugmentation(IntensityAugmentationBase2D):
    """Base of the pixel ops: `apply` transforms every sample; Kornia's `p` gate blends."""

    def __init__(self, p: float, same_on_batch: bool) -> None:
        super().__init__(p=p, same_on_batch=same_on_batch, keepdim=False)

    def apply(self, x: Tensor, params: dict[str, Tensor]) -> Tensor:
        """Transform every sample of `x` (B, C, H, W) with its parameters."""
        raise NotImplementedError

    def apply_transform(
        self,
        input: Tensor,
        params: dict[str, Tensor],
        flags: dict[str, Any],
        transform: Tensor | None = None,
    ) -> Tensor:
        return self.apply(input, params)

    def apply_gated(self, y: Tensor, params: dict[str, Tensor]) -> Tensor:
        """Transform the samples the gate selects, keep the others; `y` may be overwritten in place."""
        if self.p == 1.0 and self.p_batch == 1.0:
            return self.apply(y, params)
        on = gate(self, params, y.shape[0], y.device)
        if not gate_on_host(y.device):
            return torch.where(on[:, None, None, None], self.apply(y, params), y)
        index = on.nonzero().flatten()
        if index.numel() == 0:
            return y
        if index.numel() == y.shape[0]:
            return self.apply(y, params)
        y[index] = self.apply(y[index], take(params, index))
        return y


class BandAffineAugmentation(PixelAugmentation):
    """An op of the form x -> scale[b, c] * x + shift[b, c] (shift may use the band means)."""

    needs_mean = False

    def affine(
        self, params: dict[str, Tensor], channels: int, mean: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        """(B, C) scale and shift in float32; `mean` is the (B, C) spatial mean when `needs_mean`."""
        raise NotImplementedError

    def apply(self, x: Tensor, params: dict[str, Tensor]) -> Tensor:
        mean = x.float().mean(dim=(-2, -1)) if self.needs_mean else None
        scale, shift = self.affine(params, x.shape[1], mean)
        return x * bc11(scale, x) + bc11(shift, x)

    def gated_affine(
        self, params: dict[str, Tensor], channels: int, mean: Tensor | None, batch: int, device
    ) -> tuple[Tensor, Tensor]:
        """`affine` with the identity for the samples the gate skips."""
        scale, shift = self.affine(params, channels, mean)
        scale, shift = scale.expand(batch, channels), shift.expand(batch, channels)
        on = gate(self, params, batch, device)[:, None].to(scale.device)
        return torch.where(on, scale, 1.0), torch.where(on, shift, 0.0)


class RandomBrightness(BandAffineAugmentation):
    """Add one shift, uniform in [-brightness, brightness] standard deviations, to every band.

    Multispectral substitution for torchvision's multiplicative brightness on [0, 1] RGB (and
    Kornia's additive brightness, which then clips): the same shift of all bands, unclipped.
    """

    def __init__(
        self, brightness: float | Sequence[float] = 0.4, p: float = 1.0, same_on_batch: bool = False
    ):
        super().__init__(p=p, same_on_batch=same_on_batch)
        self.brightness = as_range(brightness, "brightness", 0.0, float("-inf"))

    def generate_parameters(self, batch_shape: tuple[int, ...]) -> dict[str, Tensor]:
        return {
            "brightness": uniform(
                *self.brightness, (batch_shape[0],), self.same_on_batch, self.device
            )
        }

    def affine(self, params, channels, mean):
        shift = params["brightness"].float()[:, None].expand(-1, channels)
        return torch.ones_like(shift), shift


class RandomContrast(BandAffineAugmentation):
    """Scale each band's deviation from its own spatial mean by one factor in 1 +- contrast.

    Per-band means (not one grey mean as torchvision) so that the spectrum of the mean pixel is
    kept; unclipped.
    """

    needs_mean = True

    def __init__(
        self, contrast: float | Sequence[float] = 0.4, p: float = 1.0, same_on_batch: bool = False
    ):
        super().__init__(p=p, same_on_batch=same_on_batch)
        self.contrast = as_range(contrast, "contrast", 1.0, 0.0)

    def generate_parameters(self, batch_shape: tuple[int, ...]) -> dict[str, Tensor]:
        return {
            "contrast": uniform(*self.contrast, (batch_shape[0],), self.same_on_batch, self.device)
        }

    def affine(self, params, channels, mean):
        factor = params["contrast"].float()[:, None].to(mean.device)
        return factor.expand_as(mean), (1.0 - factor) * mean


class RandomGain(BandAffineAugmentation):
    """Multiply each band by its own gain, uniform in 1 +- gain (a per-band calibration change).

    With `mean`/`std` the gain multiplies reflectance: z' = g z + (g - 1) mean / std.
    `reflectance=False` ignores them and multiplies the standardised values, z' = g z (a per-band
    contrast about the band mean): the shift (g - 1) mean / std is large where a band's mean is
    many standard deviations (Sentinel-2 L1C B01: mean / std = 14.6, so a 40 % gain moves it by
    5.9 standard deviations, RGB aerial about 2).
    """

    def __init__(
        self,
        gain: float | Sequence[float] = 0.1,
        p: float = 1.0,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        same_on_batch: bool = False,
        reflectance: bool = True,
    ):
        super().__init__(p=p, same_on_batch=same_on_batch)
        self.gain = as_range(gain, "gain", 1.0, 0.0)
        offset = reflectance_offset(mean, std) if reflectance else None
        self.register_buffer("offset", offset, persistent=False)

    def generate_parameters(self, batch_shape: tuple[int, ...]) -> dict[str, Tensor]:
        check_bands(self.offset, batch_shape[1], "gain: mean/std")
        shape = (batch_shape[0], batch_shape[1])
        return {"gain": uniform(*self.gain, shape, self.same_on_batch, self.device)}

    def affine(self, params, channels, mean):
        g = params["gain"].float()
        if self.offset is None:
            return g, torch.zeros_like(g)
        return g, (g - 1.0) * self.offset.to(g.device)


class RandomImageGain(BandAffineAugmentation):
    """Multiply the whole standardised image (every band alike) by one factor uniform in `gain`.

    SimCLR-S2's gain (`tf.image.adjust_gamma(x, gamma=1, gain=g)`, g ~ U(-0.5, 0.5) on the
    standardised bands). A factor in (0, 1) pulls every value towards the band means (lower
    contrast); a negative factor also inverts the image about the band means (bright fields
    become dark, in every band at once), which no sensor does: it is the study's value, kept
    so that its protocol can be repeated; pass e.g. (0.5, 1.5) for a physical gain.
    Not `RandomGain`, which is per band, around 1 and acts on reflectance.
    """

    def __init__(
        self,
        gain: Sequence[float] = (-0.5, 0.5),
        p: float = 1.0,
        same_on_batch: bool = False,
    ):
        super().__init__(p=p, same_on_batch=same_on_batch)
        self.gain = as_range(tuple(gain), "image gain", 0.0, float("-inf"))

    def generate_parameters(self, batch_shape: tuple[int, ...]) -> dict[str, Tensor]:
        return {"gain": uniform(*self.gain, (batch_shape[0],), self.same_on_batch, self.device)}

    def affine(self, params, channels, mean):
        g = params["gain"].float()[:, None].expand(-1, channels)
        return g, torch.zeros_like(g)


def band_positions(channels: int, wavelengths: Tensor | None, device) -> Tensor:
    """Each band's place on the spectrum in [-1, 1] (by wavelength if known, else by index)."""
    if wavelengths is None:
        if channels == 1:
            return torch.zeros(1, device=device)
        return torch.linspace(-1.0, 1.0, channels, device=device)
    check_bands(wavelengths, channels, "spectral jitter: wavelengths")
    wl = wavelengths.to(device)
    span = (wl.max() - wl.min()).clamp(min=1e-6)
    return 2.0 * (wl - wl.min()) / span - 1.0


class RandomSpectralJitter(BandAffineAugmentation):
    """Small per-band scale and shift that keep the spectrum's shape plausible.

    Multispectral substitution for hue jitter (hue has no meaning beyond three bands). The
    scale is 1 + a * t_c + e_c and the shift b * t_c + d_c, where t_c in [-1, 1] is the band's
    place on the spectrum, the tilts a, b are uniform in +-`scale`, +-`shift` per sample, and the
    per-band terms e_c, d_c are uniform in half those ranges: a smooth tilt of the spectrum
    plus a smaller independent wobble, never a reordering of bands.
    """

    def __init__(
        self,
        scale: float = 0.05,
        shift: float = 0.05,
        p: float = 1.0,
        wavelengths: Sequence[float] | None = None,
        same_on_batch: bool = False,
    ):
        super().__init__(p=p, same_on_batch=same_on_batch)
        if scale < 0 or shift < 0:
            raise ValueError(
                f"spectral jitter scale and shift must be >= 0, found {scale}, {shift}"
            )
        self.scale, self.shift = float(scale), float(shift)
        self.register_buffer("wavelengths", per_band(wavelengths, "wavelengths"), persistent=False)

    def generate_parameters(self, batch_shape: tuple[int, ...]) -> dict[str, Tensor]:
        b, c = batch_shape[0], batch_shape[1]
        tilt = uniform(-1.0, 1.0, (b, 2), self.same_on_batch, self.device)
        wobble = uniform(-0.5, 0.5, (b, 2, c), self.same_on_batch, self.device)
        pos = band_positions(c, self.wavelengths, self.device)
        unit = tilt[:, :, None] * pos + wobble  # (B, 2, C) in units of the magnitudes
        return {"band_scale": 1.0 + self.scale * unit[:, 0], "band_shift": self.shift * unit[:, 1]}

    def affine(self, params, channels, mean):
        return params["band_scale"].float(), params["band_shift"].float()


class MultispectralColorJitter(BandAffineAugmentation):
    """Colour jitter for N bands, applied as one op with one probability `p` (RandomApply in torchvision).

    Multispectral substitution for ColorJitter(brightness, contrast, saturation, hue): brightness
    -> `RandomBrightness`, contrast -> `RandomContrast`, saturation -> per-band `RandomGain`, hue
    -> `RandomSpectralJitter`, in this fixed order (torchvision shuffles the order per call).
    """

    needs_mean = True

    def __init__(
        self,
        brightness: float = 0.4,
        contrast: float = 0.4,
        gain: float = 0.1,
        spectral: float = 0.05,
        p: float = 0.8,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        wavelengths: Sequence[float] | None = None,
        same_on_batch: bool = False,
    ):
        super().__init__(p=p, same_on_batch=same_on_batch)
        self.parts = torch.nn.ModuleDict(
            {
                "brightness": RandomBrightness(brightness, same_on_batch=same_on_batch),
                "contrast": RandomContrast(contrast, same_on_batch=same_on_batch),
                "gain": RandomGain(gain, mean=mean, std=std, same_on_batch=same_on_batch),
                "spectral": RandomSpectralJitter(
                    spectral, spectral, wavelengths=wavelengths, same_on_batch=same_on_batch
                ),
            }
        )

    def set_rng_device_and_dtype(self, device: torch.device, dtype: torch.dtype) -> None:
        super().set_rng_device_and_dtype(device, dtype)
        for part in getattr(self, "parts", {}).values():
            part.set_rng_device_and_dtype(device, dtype)

    def generate_parameters(self, batch_shape: tuple[int, ...]) -> dict[str, Tensor]:
        out = {}
        for name, part in self.parts.items():
            out.update({f"{name}.{k}": v for k, v in part.generate_parameters(batch_shape).items()})
        return out

    def affine(self, params, channels, mean):
        scale = torch.ones_like(mean)
        shift = torch.zeros_like(mean)
        for name, part in self.parts.items():
            sub = {k.split(".", 1)[1]: v for k, v in params.items() if k.startswith(name + ".")}
            current_mean = scale * mean + shift
            s, t = part.affine(sub, channels, current_mean)
            scale, shift = s * scale, s * shift + t
        return scale, shift


def gray_weights(weights: Tensor | None, channels: int, device) -> Tensor:
    """Band weights of the N-band grey value, summing to 1 (the plain band mean by default)."""
    if weights is None:
        return torch.full((channels,), 1.0 / channels, device=device)
    check_bands(weights, channels, "grayscale: weights")
    w = weights.to(device)
    return w / w.sum()


class RandomGrayscale(PixelAugmentation):
    """N-band grayscale: the band-weighted mean copied to every band.

    Multispectral substitution for RGB grayscale (0.299 R + 0.587 G + 0.114 B); `weights` (one
    per band, rescaled to sum to 1) default to the plain mean of all bands.
    """

    def __init__(
        self, p: float = 0.2, weights: Sequence[float] | None = None, same_on_batch: bool = False
    ):
        super().__init__(p=p, same_on_batch=same_on_batch)
        w = per_band(weights, "grayscale weights")
        if w is not None and float(w.sum()) <= 0:
            raise ValueError(f"grayscale weights must have a positive sum, found {w.tolist()}")
        self.register_buffer("weights", w, persistent=False)

    def generate_parameters(self, batch_shape: tuple[int, ...]) -> dict[str, Tensor]:
        check_bands(self.weights, batch_shape[1], "grayscale: weights")
        return {}

    def apply(self, x: Tensor, params: dict[str, Tensor]) -> Tensor:
        w = gray_weights(self.weights, x.shape[1], x.device).to(x.dtype)
        grey = torch.einsum("bchw,c->bhw", x, w).unsqueeze(1)
        return grey.expand_as(x).contiguous()


class RandomSolarize(PixelAugmentation):
    """Solarize in reflectance units: values above a per-band threshold t are mirrored to 2t - r.

    For [0, 1] images with t = 0.5 this is PIL's solarize (r -> 1 - r above the threshold).
    `threshold` is a reflectance and needs the per-band `mean`/`std` of the standardisation;
    left as None the threshold is each band's dataset mean (z = 0), where roughly half the
    pixels lie, as half of an 8-bit image lies above 128.
    """

    def __init__(
        self,
        p: float = 0.2,
        threshold: float | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        same_on_batch: bool = False,
    ):
        super().__init__(p=p, same_on_batch=same_on_batch)
        if threshold is not None and mean is None:
            raise ValueError("solarize: a reflectance threshold needs the per-band mean and std")
        if threshold is None:
            z = None
        else:
            m, s = per_band(mean, "mean"), per_band(std, "std")
            reflectance_offset(mean, std)  # validates lengths and signs
            z = (float(threshold) - m) / s
        self.register_buffer("z_threshold", z, persistent=False)

    def generate_parameters(self, batch_shape: tuple[int, ...]) -> dict[str, Tensor]:
        check_bands(self.z_threshold, batch_shape[1], "solarize: mean/std")
        return {}

    def apply(self, x: Tensor, params: dict[str, Tensor]) -> Tensor:
        if self.z_threshold is None:
            return torch.minimum(x, -x)
        t = self.z_threshold.to(x.device, x.dtype)[None, :, None, None]
        return torch.minimum(x, 2.0 * t - x)


class _FieldAugmentation(PixelAugmentation):
    """An op with a per-pixel random field; samples the gate skips get the identity field."""

    field = ""
    identity = 0.0

    def draw(self, batch_shape: tuple[int, ...], params: dict[str, Tensor]) -> Tensor:
        """Field values for a (n, C, H, W) batch, float32 on `self.device`."""
        raise NotImplementedError

    def forward_parameters(self, batch_shape: tuple[int, ...]) -> dict[str, Tensor]:
        params = super().forward_parameters(batch_shape)
        b = batch_shape[0]
        on = gate(self, params, b, self.device)
        all_on = self.p == 1.0 and self.p_batch == 1.0
        if self.same_on_batch and b > 0:
            # One gate and one field for the whole batch.
            one = self.draw((1, *batch_shape[1:]), take(params, slice(0, 1)))
            if not all_on:
                one = torch.where(on[:1, None, None, None], one, self.identity)
            params[self.field] = one.expand(b, *batch_shape[1:])
            return params
        if all_on:
            params[self.field] = self.draw(tuple(batch_shape), params)
        elif not gate_on_host(self.device or "cpu"):
            # Drawn for every sample, the gate applied on the device (see `gate_on_host`).
            field = self.draw(tuple(batch_shape), params)
            params[self.field] = torch.where(on[:, None, None, None], field, self.identity)
        else:
            index = on.nonzero().flatten()
            field = torch.full(
                tuple(batch_shape), self.identity, device=self.device, dtype=torch.float32
            )
            if index.numel():
                field[index] = self.draw((index.numel(), *batch_shape[1:]), take(params, index))
            params[self.field] = field
        return params


class RandomSpeckle(_FieldAugmentation):
    """Multiplicative speckle: r -> r * n with n ~ Gamma(L, 1/L) (mean 1, variance 1/L).

    L (the number of looks) is drawn per sample, uniform in `looks`; L = 1 is fully developed
    single-look speckle. With `mean`/`std` the noise multiplies reflectance (as speckle does),
    otherwise the values as given.
    """

    field, identity = "speckle", 1.0

    def __init__(
        self,
        looks: float | Sequence[float] = (4.0, 16.0),
        p: float = 0.5,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        same_on_batch: bool = False,
    ):
        super().__init__(p=p, same_on_batch=same_on_batch)
        self.looks = (
            (float(looks), float(looks))
            if isinstance(looks, (int, float))
            else tuple(map(float, looks))
        )
        if len(self.looks) != 2 or not 0 < self.looks[0] <= self.looks[1]:
            raise ValueError(f"speckle looks must be > 0, as L or (low, high), found {looks!r}")
        self.register_buffer("offset", reflectance_offset(mean, std), persistent=False)

    def generate_parameters(self, batch_shape: tuple[int, ...]) -> dict[str, Tensor]:
        check_bands(self.offset, batch_shape[1], "speckle: mean/std")
        return {"looks": uniform(*self.looks, (batch_shape[0],), self.same_on_batch, self.device)}

    def draw(self, batch_shape, params):
        looks = params["looks"].float()[:, None, None, None]
        alpha = looks.expand(*batch_shape).contiguous()
        return torch._standard_gamma(alpha) / looks

    def apply(self, x: Tensor, params: dict[str, Tensor]) -> Tensor:
        n = params["speckle"].to(x.device, x.dtype)
        if self.offset is None:
            return x * n
        o = self.offset.to(x.device, x.dtype)[None, :, None, None]
        return (x + o) * n - o

    def apply_gated(self, y: Tensor, params: dict[str, Tensor]) -> Tensor:
        # Skipped samples carry n = 1, which leaves them unchanged exactly.
        n = params["speckle"].to(y.device, y.dtype)
        if self.offset is None:
            return y.mul_(n)
        o = self.offset.to(y.device, y.dtype)[None, :, None, None]
        return y.add_(o).mul_(n).sub_(o)


class RandomGaussianNoise(_FieldAugmentation):
    """Additive white noise with a per-sample standard deviation uniform in `std` (in std units)."""

    field, identity = "noise", 0.0

    def __init__(
        self, std: float | Sequence[float] = (0.0, 0.1), p: float = 0.5, same_on_batch: bool = False
    ):
        super().__init__(p=p, same_on_batch=same_on_batch)
        if isinstance(std, (int, float)):
            if std < 0:
                raise ValueError(f"noise std must be >= 0, found {std!r}")
            self.std = (float(std), float(std))
        else:
            self.std = as_range(std, "noise std", 0.0, 0.0)

    def generate_parameters(self, batch_shape: tuple[int, ...]) -> dict[str, Tensor]:
        return {"sigma": uniform(*self.std, (batch_shape[0],), self.same_on_batch, self.device)}

    def draw(self, batch_shape, params):
        sigma = params["sigma"].float()[:, None, None, None]
        return torch.randn(batch_shape, device=self.device) * sigma

    def apply(self, x: Tensor, params: dict[str, Tensor]) -> Tensor:
        return x + params["noise"].to(x.device, x.dtype)

    def apply_gated(self, y: Tensor, params: dict[str, Tensor]) -> Tensor:
        return y.add_(params["noise"].to(y.device, y.dtype))  # zeros for skipped samples


class RandomBandDropout(PixelAugmentation):
    """Set each band to 0 (its dataset mean after standardisation) with probability `drop_prob`.

    At least one band of every image is kept. Values are not rescaled (unlike inverted dropout),
    so kept bands keep their statistics.
    """

    def __init__(self, drop_prob: float = 0.2, p: float = 0.5, same_on_batch: bool = False):
        super().__init__(p=p, same_on_batch=same_on_batch)
        if not 0.0 <= drop_prob < 1.0:
            raise ValueError(f"band dropout drop_prob must be in [0, 1), found {drop_prob}")
        self.drop_prob = float(drop_prob)

    def generate_parameters(self, batch_shape: tuple[int, ...]) -> dict[str, Tensor]:
        b, c = batch_shape[0], batch_shape[1]
        drop = uniform(0.0, 1.0, (b, c), self.same_on_batch, self.device) < self.drop_prob
        rescue = torch.floor(uniform(0.0, float(c), (b,), self.same_on_batch, self.device)).clamp(
            max=c - 1
        )
        all_dropped = drop.all(dim=1, keepdim=True)
        rescued = torch.arange(c, device=self.device)[None, :] == rescue.long()[:, None]
        return {"keep": ~(drop & ~(all_dropped & rescued))}

    def apply(self, x: Tensor, params: dict[str, Tensor]) -> Tensor:
        return x * bc11(params["keep"], x)

    def apply_gated(self, y: Tensor, params: dict[str, Tensor]) -> Tensor:
        on = gate(self, params, y.shape[0], y.device)
        keep = params["keep"].to(y.device) | ~on[:, None]
        return y.mul_(bc11(keep, y))


class RandomImpulseNoise(PixelAugmentation):
    """Salt-and-pepper impulse noise: a fraction f ~ U(`fraction`) of the values set to `low`
    and the same fraction to `high` (standard deviations; SimCLR-S2: f in (0, 0.02), -5 / +5).

    The SimCLR-S2 study calls this "speckle"; it is not the multiplicative radar speckle of
    `RandomSpeckle`. Each band value is hit independently (a pixel may be hit in some bands
    only), as salt and pepper on an (H, W, C) array is. The uniform field deciding which values
    are hit is drawn for every sample in `forward_parameters`, so replaying `params` reproduces
    the output and the gate can be changed after the draw.
    """

    def __init__(
        self,
        fraction: float | Sequence[float] = (0.0, 0.02),
        low: float = -5.0,
        high: float = 5.0,
        p: float = 1.0,
        same_on_batch: bool = False,
    ):
        super().__init__(p=p, same_on_batch=same_on_batch)
        self.fraction = (
            (0.0, float(fraction))
            if isinstance(fraction, (int, float))
            else tuple(map(float, fraction))
        )
        if len(self.fraction) != 2 or not 0.0 <= self.fraction[0] <= self.fraction[1] <= 0.5:
            raise ValueError(
                f"impulse fraction must be within [0, 0.5], as f or (low, high), found {fraction!r}"
            )
        if not low < high:
            raise ValueError(f"impulse low {low} must be below high {high}")
        self.low, self.high = float(low), float(high)

    def generate_parameters(self, batch_shape: tuple[int, ...]) -> dict[str, Tensor]:
        return {
            "fraction": uniform(*self.fraction, (batch_shape[0],), self.same_on_batch, self.device),
            "field": uniform(0.0, 1.0, tuple(batch_shape), self.same_on_batch, self.device),
        }

    def apply(self, x: Tensor, params: dict[str, Tensor]) -> Tensor:
        u = params["field"].to(x.device)
        f = params["fraction"].float().to(x.device)[:, None, None, None]
        out = torch.where(u < f, torch.full_like(x, self.low), x)
        return torch.where(u >= 1.0 - f, torch.full_like(x, self.high), out)


def blur_kernel_size(size: int) -> int:
    """Odd kernel of about 10% of the image side (SimCLR App. A; 23 at 224 px)."""
    return max(3, size // 10 // 2 * 2 + 1)


def gaussian_blur(x: Tensor, sigma: Tensor, kernel_size: int) -> Tensor:
    """Separable Gaussian blur with one sigma per sample and reflect padding (as Kornia's)."""
    n, c, h, w = x.shape
    r = kernel_size // 2
    if r >= min(h, w):
        raise ValueError(
            f"blur kernel {kernel_size} is too large for a {h}x{w} image; pass a smaller kernel_size"
        )
    t = torch.arange(kernel_size, device=x.device, dtype=torch.float32) - r
    s = sigma.to(x.device, torch.float32)[:, None]
    k = torch.exp(-(t[None, :] ** 2) / (2.0 * s**2))
    k = (k / k.sum(dim=1, keepdim=True)).to(x.dtype).repeat_interleave(c, dim=0)
    planes = F.pad(x.reshape(1, n * c, h, w), (r, r, r, r), mode="reflect")
    planes = F.conv2d(planes, k[:, None, None, :], groups=n * c)
    planes = F.conv2d(planes, k[:, None, :, None], groups=n * c)
    return planes.reshape(n, c, h, w)


class RandomGaussianBlur(PixelAugmentation):
    """Gaussian blur, sigma uniform in `sigma` per sample ((0.1, 2.0) in SimCLR, MoCo v2/v3, BYOL).

    The kernel is `kernel_size` wide (SimCLR: 10% of the image side, see `blur_kernel_size`),
    the same for every band; reflect padding.
    """

    def __init__(
        self,
        kernel_size: int,
        sigma: Sequence[float] = (0.1, 2.0),
        p: float = 0.5,
        same_on_batch: bool = False,
    ):
        super().__init__(p=p, same_on_batch=same_on_batch)
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"blur kernel_size must be odd and positive, found {kernel_size}")
        self.kernel_size = int(kernel_size)
        self.sigma = as_range(tuple(sigma), "blur sigma", 0.0, 1e-6)

    def generate_parameters(self, batch_shape: tuple[int, ...]) -> dict[str, Tensor]:
        return {"sigma": uniform(*self.sigma, (batch_shape[0],), self.same_on_batch, self.device)}

    def apply(self, x: Tensor, params: dict[str, Tensor]) -> Tensor:
        return gaussian_blur(x, params["sigma"], self.kernel_size)
