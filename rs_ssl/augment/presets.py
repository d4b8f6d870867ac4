"""Named view pipelines (`mocov2`, `mocov3`, `simclr`, `s2`), explicit lists, and `make_views`.

Each preset is data: per view, an ordered list of `(augmentation name, parameters)`. Sizes that
depend on the crop (crop size, blur kernel) are filled in by `make_views`. Differences from the
papers are marked "MS substitution" (an RGB op replaced by its multispectral counterpart) or
"RS addition" (an op added because overhead imagery has no canonical orientation).

Exact parameters (p = probability per image; blur kernel = odd ~10% of `size`, 23 at 224):

| preset | view | ops |
|---|---|---|
| mocov2 | both | resized_crop scale (0.2, 1); hflip p=0.5 + vflip p=0.5 [RS addition]; blur sigma (0.1, 2) p=0.5; color_jitter p=0.8 [MS substitution: brightness 0.4, contrast 0.4, gain 0.1, spectral 0.05]; grayscale p=0.2 [MS: N-band] |
| mocov3 | 1 | resized_crop scale (0.08, 1); flips as above; blur p=1.0; color_jitter p=0.8 [MS: brightness 0.4, contrast 0.4, gain 0.05, spectral 0.05]; grayscale p=0.2 [MS] |
| mocov3 | 2 | as view 1 but blur p=0.1, plus solarize p=0.2 [MS: in reflectance, threshold = band mean unless given] |
| simclr | both | resized_crop scale (0.08, 1) ratio (3/4, 4/3); flips; blur p=0.5; color_jitter p=0.8 [MS: brightness 0.8, contrast 0.8, gain 0.2, spectral 0.1]; grayscale p=0.2 [MS] |
| light | both | resized_crop scale (0.2, 1) ratio (3/4, 4/3); flips; gain 0.4 p=1 on standardised values; brightness 0.4 p=1; grayscale p=0.2 (SimCLR's default: short runs, small images) |
| s2 | both | crop to size; flips; rot90 p=1; shift 0.1 p=0.5; zoom (0.8, 1.25) p=0.5; blur p=0.5; brightness 0.2 p=0.8; contrast 0.2 p=0.8; gain 0.1 p=0.8; speckle looks (4, 16) p=0.5 |

Sources: MoCo v2 = Chen, Fan, Girshick, He 2020, "Improved Baselines with Momentum Contrastive
Learning" (arXiv:2003.04297; `aug_plus` in facebookresearch/moco). MoCo v3 = Chen, Xie, He 2021,
"An Empirical Study of Training Self-Supervised Vision Transformers" (arXiv:2104.02057, appendix:
the BYOL augmentations with asymmetric blur p = 1.0 / 0.1 and solarize p = 0 / 0.2). SimCLR =
Chen, Kornblith, Norouzi, Hinton 2020 (arXiv:2002.05709, Appendix A, colour strength s = 1).
s2 = the op table of the SimCLR-S2 study (blur, brightness, contrast, gain, speckle; flip,
rotation, shift, zoom); its magnitudes above are rs-ssl's choices, not the study's.

Colour jitter, MS substitution: ColorJitter(brightness b, contrast c, saturation s, hue h) becomes
`MultispectralColorJitter` with brightness b (additive, in standard deviations), contrast c,
per-band gain s / 4 and spectral jitter h / 2. Saturation and hue do not exist beyond three
bands; the scaling of their replacements is rs-ssl's choice, made so that band ratios such as
NDVI stay plausible (+-10% gain for s = 0.4).

Geometric ops are listed first because the fused view composes them into one resampling;
flips commute with every pixel op here, so this equals the papers' order. Blur is listed
before colour jitter / grayscale (the papers blur after them): blur is linear and the same for
every band, so it commutes with per-band affine maps and band averaging; the only difference
is that contrast then uses the blurred image's band means.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from rs_ssl.augment import geometric as G
from rs_ssl.augment import pixel as P
from rs_ssl.augment.fused import AugmentedView, TwoViews
from rs_ssl.augment.pairs import ALWAYS, OWN_COIN, PairedView, allowed_pairs

Spec = list[tuple[str, dict[str, Any]]]


@dataclass(frozen=True)
class Context:
    """What the ops of one pipeline share: band count, view size and band facts."""

    bands: int
    size: int
    mean: Sequence[float] | None = None
    std: Sequence[float] | None = None
    wavelengths: Sequence[float] | None = None
    gray_weights: Sequence[float] | None = None
    padding_mode: str = "reflection"


def _geo(cls) -> Callable[..., list[nn.Module]]:
    return lambda ctx, **kw: [cls(padding_mode=ctx.padding_mode, **kw)]


def _flip(ctx: Context, p: float = 0.5, same_on_batch: bool = False) -> list[nn.Module]:
    return [
        G.RandomHorizontalFlip(p=p, same_on_batch=same_on_batch, padding_mode=ctx.padding_mode),
        G.RandomVerticalFlip(p=p, same_on_batch=same_on_batch, padding_mode=ctx.padding_mode),
    ]


# name -> factory(ctx, **params) -> ops. The order of this table is the canonical order of a
# pipeline given as a list of names.
_FACTORIES: dict[str, Callable[..., list[nn.Module]]] = {
    "resized_crop": lambda ctx, **kw: [
        G.RandomResizedCrop(ctx.size, padding_mode=ctx.padding_mode, **kw)
    ],
    "crop": lambda ctx, **kw: [G.RandomCrop(ctx.size, padding_mode=ctx.padding_mode, **kw)],
    "flip": _flip,  # horizontal and vertical, each with p
    "hflip": _geo(G.RandomHorizontalFlip),
    "vflip": _geo(G.RandomVerticalFlip),
    "rot90": _geo(G.RandomRotation90),
    "rotate": _geo(G.RandomRotation),
    "shift": _geo(G.RandomShift),
    "zoom": _geo(G.RandomZoom),
    "box_zoom": _geo(G.RandomBoxZoom),
    "blur": lambda ctx, **kw: [
        P.RandomGaussianBlur(kw.pop("kernel_size", P.blur_kernel_size(ctx.size)), **kw)
    ],
    "color_jitter": lambda ctx, **kw: [
        P.MultispectralColorJitter(mean=ctx.mean, std=ctx.std, wavelengths=ctx.wavelengths, **kw)
    ],
    "brightness": lambda ctx, **kw: [P.RandomBrightness(**kw)],
    "contrast": lambda ctx, **kw: [P.RandomContrast(**kw)],
    "gain": lambda ctx, **kw: [P.RandomGain(mean=ctx.mean, std=ctx.std, **kw)],
    "image_gain": lambda ctx, **kw: [P.RandomImageGain(**kw)],
    "spectral_jitter": lambda ctx, **kw: [
        P.RandomSpectralJitter(wavelengths=ctx.wavelengths, **kw)
    ],
    "grayscale": lambda ctx, **kw: [P.RandomGrayscale(weights=ctx.gray_weights, **kw)],
    "solarize": lambda ctx, **kw: [P.RandomSolarize(mean=ctx.mean, std=ctx.std, **kw)],
    "speckle": lambda ctx, **kw: [P.RandomSpeckle(mean=ctx.mean, std=ctx.std, **kw)],
    "impulse": lambda ctx, **kw: [P.RandomImpulseNoise(**kw)],
    "noise": lambda ctx, **kw: [P.RandomGaussianNoise(**kw)],
    "band_dropout": lambda ctx, **kw: [P.RandomBandDropout(**kw)],
}

# The classes behind each name, for checking parameter names before building.
_CLASSES: dict[str, type] = {
    "resized_crop": G.RandomResizedCrop,
    "crop": G.RandomCrop,
    "flip": G.RandomHorizontalFlip,
    "hflip": G.RandomHorizontalFlip,
    "vflip": G.RandomVerticalFlip,
    "rot90": G.RandomRotation90,
    "rotate": G.RandomRotation,
    "shift": G.RandomShift,
    "zoom": G.RandomZoom,
    "box_zoom": G.RandomBoxZoom,
    "blur": P.RandomGaussianBlur,
    "color_jitter": P.MultispectralColorJitter,
    "brightness": P.RandomBrightness,
    "contrast": P.RandomContrast,
    "gain": P.RandomGain,
    "image_gain": P.RandomImageGain,
    "spectral_jitter": P.RandomSpectralJitter,
    "grayscale": P.RandomGrayscale,
    "solarize": P.RandomSolarize,
    "speckle": P.RandomSpeckle,
    "impulse": P.RandomImpulseNoise,
    "noise": P.RandomGaussianNoise,
    "band_dropout": P.RandomBandDropout,
}
# Set by make_views from the context, not per augmentation.
_FROM_CONTEXT = {"size", "padding_mode", "mean", "std", "wavelengths", "weights"}

AUG_NAMES: tuple[str, ...] = tuple(_FACTORIES)

# MoCo v2: Chen, Fan, Girshick, He 2020, "Improved Baselines with Momentum Contrastive
# Learning" (arXiv:2003.04297), `aug_plus` of facebookresearch/moco main_moco.py: RandomResizedCrop
# scale (0.2, 1); ColorJitter(0.4, 0.4, 0.4, 0.1) p=0.8; grayscale p=0.2; blur sigma (0.1, 2)
# p=0.5; horizontal flip. Same distribution for both views.
# MS substitution of ColorJitter(b, c, s, h): brightness b, contrast c, per-band gain s / 4 and
# spectral jitter h / 2. Saturation and hue do not exist beyond three bands; the gain and
# jitter magnitudes are scaled down (a choice of rs-ssl, not of a paper) so that band ratios
# such as NDVI stay physically plausible: +-10% gain for s = 0.4.
_MOCOV2_VIEW: Spec = [
    ("resized_crop", {"scale": (0.2, 1.0)}),
    ("flip", {"p": 0.5}),  # RS addition: vertical flip next to the paper's horizontal one
    ("blur", {"sigma": (0.1, 2.0), "p": 0.5}),
    (
        "color_jitter",
        {"brightness": 0.4, "contrast": 0.4, "gain": 0.4 / 4, "spectral": 0.1 / 2, "p": 0.8},
    ),
    ("grayscale", {"p": 0.2}),  # MS substitution: N-band grayscale (band-weighted mean)
]

# MoCo v3: Chen, Xie, He 2021, "An Empirical Study of Training Self-Supervised Vision
# Transformers" (arXiv:2104.02057), appendix and facebookresearch/moco-v3 main_moco.py (the BYOL
# recipe): RandomResizedCrop scale (0.08, 1); ColorJitter(0.4, 0.4, 0.2, 0.1) p=0.8; grayscale
# p=0.2; blur sigma (0.1, 2) with p=1.0 in view 1 and p=0.1 in view 2; solarize p=0 / 0.2;
# horizontal flip. MS substitutions as for MoCo v2 (gain 0.2 / 4, spectral jitter 0.1 / 2).
_MOCOV3_COMMON: Spec = [
    ("resized_crop", {"scale": (0.08, 1.0)}),
    ("flip", {"p": 0.5}),  # RS addition: vertical flip
]
_MOCOV3_JITTER: Spec = [
    (
        "color_jitter",
        {"brightness": 0.4, "contrast": 0.4, "gain": 0.2 / 4, "spectral": 0.1 / 2, "p": 0.8},
    ),
    ("grayscale", {"p": 0.2}),  # MS substitution: N-band grayscale
]
_MOCOV3_VIEW1: Spec = [*_MOCOV3_COMMON, ("blur", {"sigma": (0.1, 2.0), "p": 1.0}), *_MOCOV3_JITTER]
_MOCOV3_VIEW2: Spec = [
    *_MOCOV3_COMMON,
    ("blur", {"sigma": (0.1, 2.0), "p": 0.1}),
    *_MOCOV3_JITTER,
    ("solarize", {"p": 0.2}),  # MS substitution: solarize in reflectance (threshold: band mean)
]

# SimCLR: Chen, Kornblith, Norouzi, Hinton 2020, "A Simple Framework for Contrastive Learning of
# Visual Representations" (arXiv:2002.05709), Appendix A: random crop and resize (scale
# (0.08, 1), ratio (3/4, 4/3)) with horizontal flip; colour distortion of strength s = 1:
# ColorJitter(0.8s, 0.8s, 0.8s, 0.2s) p=0.8 and grayscale p=0.2; Gaussian blur p=0.5, sigma
# (0.1, 2), kernel 10% of the image side. MS substitutions as for MoCo v2 (gain 0.8 / 4,
# spectral jitter 0.2 / 2).
_SIMCLR_VIEW: Spec = [
    ("resized_crop", {"scale": (0.08, 1.0), "ratio": (3 / 4, 4 / 3)}),
    ("flip", {"p": 0.5}),  # RS addition: vertical flip
    ("blur", {"sigma": (0.1, 2.0), "p": 0.5}),
    (
        "color_jitter",
        {"brightness": 0.8, "contrast": 0.8, "gain": 0.8 / 4, "spectral": 0.2 / 2, "p": 0.8},
    ),
    ("grayscale", {"p": 0.2}),  # MS substitution: N-band grayscale
]

# s2: the augmentation table of the SimCLR-S2 study: pixel ops blur, brightness, contrast,
# gain, speckle; geometric ops flip, rotation, shift, zoom. The table fixes which ops are used;
# the magnitudes and probabilities below are rs-ssl's defaults (not copied from the study); the
# study's own protocol (two ops per view, its magnitudes) is the preset "simclr-s2" below.
# "rotation" is taken as quarter turns (exact for nadir imagery, no padded corners); free
# rotation is available as "rotate". The leading crop only brings a larger patch to `size`.
_S2_VIEW: Spec = [
    ("crop", {}),
    ("flip", {"p": 0.5}),
    ("rot90", {"p": 1.0}),
    ("shift", {"fraction": 0.1, "p": 0.5}),
    ("zoom", {"scale": (0.8, 1.25), "p": 0.5}),
    ("blur", {"sigma": (0.1, 2.0), "p": 0.5}),
    ("brightness", {"brightness": 0.2, "p": 0.8}),
    ("contrast", {"contrast": 0.2, "p": 0.8}),
    ("gain", {"gain": 0.1, "p": 0.8}),
    ("speckle", {"looks": (4.0, 16.0), "p": 0.5}),
]

# light: rs-ssl's default for SimCLR (issue 15), made for short runs on small images: the recipe of
# the plain hand-written loop in benchmarks/quality.py. Crop of 20-100 % of the area (MoCo v2's
# scale, not SimCLR's 8 %: at 64 px an 8 % crop is 18 px upsampled), flips, per-band gain +-40 %
# of the standardised values and brightness +-0.4 standard deviations, grayscale p 0.2; no blur
# (SimCLR Appendix B.9 drops blur for CIFAR-10's 32 px images) and no contrast or spectral jitter.
# The gain multiplies standardised values, not reflectance: the same gain on reflectance also
# shifts each band by (g - 1) mean / std (+-0.8 std on RGB aerial, +-5.9 on Sentinel-2 L1C B01) and
# cost the plain loop 6.5 points of validation accuracy on AID (benchmarks/RESULTS.md, issue 15).
# `--augs simclr` is the paper's.
_LIGHT_VIEW: Spec = [
    ("resized_crop", {"scale": (0.2, 1.0), "ratio": (3 / 4, 4 / 3)}),
    ("flip", {"p": 0.5}),
    ("gain", {"gain": 0.4, "p": 1.0, "reflectance": False}),
    ("brightness", {"brightness": 0.4, "p": 1.0}),
    ("grayscale", {"p": 0.2}),
]

# simclr-s2: the augmentation protocol of the SimCLR-S2 study (MIDS-Irrigation-Capstone,
# Spring2021, training/simclr.py and training/utils.py `Augment`), on standardised bands: each
# view applies exactly two of nine augmentations drawn at random, a pair the study excludes being
# redrawn. Study name -> rs-ssl ops with the study's magnitudes:
#   shift: a circular roll (np.roll) by up to 10% of the side in each axis;
#   zoom: a random box cropped and resized back (box side 0.8..1: the study's ZOOM = 0.2);
#   rotation: a random number of quarter turns; flip: random left-right and up-down (each 0.5);
#   brightness: additive, up to +-0.4 (0.8 * scale 0.5); contrast: factor in [0.6, 1.4];
#   gain: one factor in [-0.5, 0.5] for the whole image (negative gains included, as the study
#   draws them; see RandomImageGain); blur: Gaussian, 5 x 5 kernel, sigma in [0.1, 2];
#   speckle: salt-and-pepper, a fraction f ~ U(0, 0.02) of the values set to -5, as many to +5
#   (named "impulse" here, apart from the multiplicative radar "speckle").
# Geometric ops act before pixel ops (Keras' ImageDataGenerator transforms, then calls the
# study's preprocessing_function); pixel ops in the study's order.
# `p` of 0.5 on an always-acting op only makes its gate readable: PairedView sets the gate.
SIMCLR_S2_SLOTS: dict[str, Spec] = {
    "shift": [("shift", {"fraction": 0.1, "whole_pixels": True, "p": 0.5})],
    "zoom": [("box_zoom", {"side": (0.8, 1.0), "p": 0.5})],
    "rotation": [("rot90", {"p": 0.5})],
    "flip": [("hflip", {"p": 0.5}), ("vflip", {"p": 0.5})],
    "brightness": [("brightness", {"brightness": 0.4, "p": 0.5})],
    "contrast": [("contrast", {"contrast": 0.4, "p": 0.5})],
    "gain": [("image_gain", {"gain": (-0.5, 0.5), "p": 0.5})],
    "blur": [("blur", {"kernel_size": 5, "sigma": (0.1, 2.0), "p": 0.5})],
    "speckle": [("impulse", {"fraction": (0.0, 0.02), "low": -5.0, "high": 5.0, "p": 0.5})],
}
_OWN_COIN_OPS = {"hflip", "vflip"}  # "flip" flips each axis with probability 0.5
SIMCLR_S2_EXCLUDED: tuple[frozenset[str], ...] = tuple(
    frozenset(pair)
    for pair in (
        ("brightness", "contrast"),
        ("rotation", "brightness"),
        ("flip", "blur"),
        ("zoom", "blur"),
        ("shift", "flip"),
        ("rotation", "blur"),
        ("flip", "gain"),
        ("brightness", "gain"),
        ("blur", "brightness"),
    )
)
SIMCLR_S2 = "simclr-s2"


def parse_pairs(text: str) -> list[tuple[str, str]]:
    """`"shift+zoom,flip+gain"` -> [("shift", "zoom"), ("flip", "gain")]: pairs of the SimCLR-S2 slots."""
    out = []
    for item in (t.strip() for t in text.split(",") if t.strip()):
        names = item.split("+")
        if len(names) != 2 or len(set(names)) != 2 or not set(names) <= set(SIMCLR_S2_SLOTS):
            raise ValueError(
                f"{item!r} is not a pair of two of {', '.join(SIMCLR_S2_SLOTS)} joined by '+'"
            )
        out.append((names[0], names[1]))
    if not out:
        raise ValueError(f"no pair given after '{SIMCLR_S2}:'; e.g. {SIMCLR_S2}:shift+zoom")
    return out


def is_preset(name: str) -> bool:
    """Whether `--augs name` names a preset (else it is a list of augmentations).

    `simclr-s2:a+b[,c+d]` is the SimCLR-S2 protocol restricted to the given pairs (one pair: both ops
    on every view), as the study's augmentation search trains each pair.
    """
    return name in PRESETS or name.startswith(SIMCLR_S2 + ":")


def build_paired_view(ctx: Context, pairs: list[tuple[str, str]] | None = None) -> PairedView:
    """One SimCLR-S2 view: a crop to size, then two of the nine augmentations per sample (drawn from
    the study's allowed pairs, or from `pairs`)."""
    # A circular padding mode makes the shift a roll; the other geometric ops never leave the image.
    ctx = dataclasses.replace(ctx, padding_mode="circular")
    ops: list[nn.Module] = list(_FACTORIES["crop"](ctx))
    op_slots: list[str | None] = [None] * len(ops)
    op_modes = [ALWAYS] * len(ops)
    for slot, spec in SIMCLR_S2_SLOTS.items():
        for name, params in spec:
            _check_params(name, params)
            built = _FACTORIES[name](ctx, **dict(params))
            ops.extend(built)
            op_slots.extend([slot] * len(built))
            op_modes.extend([OWN_COIN if name in _OWN_COIN_OPS else ALWAYS] * len(built))
    if pairs is None:
        pairs = allowed_pairs(list(SIMCLR_S2_SLOTS), SIMCLR_S2_EXCLUDED)
    return PairedView(ops, op_slots, op_modes, list(SIMCLR_S2_SLOTS), pairs)


VIEW_PRESETS: dict[str, tuple[Spec, Spec]] = {
    "mocov2": (_MOCOV2_VIEW, _MOCOV2_VIEW),
    "mocov3": (_MOCOV3_VIEW1, _MOCOV3_VIEW2),
    "simclr": (_SIMCLR_VIEW, _SIMCLR_VIEW),
    "s2": (_S2_VIEW, _S2_VIEW),
    "light": (_LIGHT_VIEW, _LIGHT_VIEW),
}
CUSTOM = "custom"
# Every preset name `make_views` (and `pretrain --augs`) accepts besides "custom".
PRESETS: tuple[str, ...] = (*VIEW_PRESETS, SIMCLR_S2)
_GLOBAL_OVERRIDES = ("mean", "std", "wavelengths", "gray_weights", "padding_mode")


def _check_params(name: str, params: dict[str, Any]) -> None:
    accepted = set(inspect.signature(_CLASSES[name].__init__).parameters) - {"self"} - _FROM_CONTEXT
    if name == "blur":
        accepted.add("kernel_size")
    unknown = set(params) - accepted
    if unknown:
        raise ValueError(
            f"augmentation {name!r} has no parameter(s) {sorted(unknown)}; valid: {sorted(accepted)}"
        )


def _check_name(name: str) -> None:
    if name not in _FACTORIES:
        raise ValueError(f"unknown augmentation {name!r}; valid names: {', '.join(AUG_NAMES)}")


def custom_spec(augs: Sequence[str]) -> Spec:
    """A view from a list of names, in canonical order, starting with a crop to size if none is named."""
    names = [a.strip() for a in augs if a.strip()]
    if not names:
        raise ValueError(f"augs is empty; give names from: {', '.join(AUG_NAMES)}")
    for name in names:
        _check_name(name)
    if len(set(names)) != len(names):
        raise ValueError(f"augs names an augmentation twice: {names}")
    if "resized_crop" in names and "crop" in names:
        raise ValueError("augs names both 'resized_crop' and 'crop'; a view has one crop, keep one")
    if "resized_crop" not in names and "crop" not in names:
        names.append("crop")
    return [(n, {}) for n in sorted(names, key=AUG_NAMES.index)]


def _apply_overrides(spec: Spec, overrides: dict[str, Any]) -> Spec:
    out = {name: dict(params) for name, params in spec}
    for name, params in overrides.items():
        _check_name(name)
        if params is None:
            out.pop(name, None)
            continue
        if not isinstance(params, dict):
            raise ValueError(
                f"override for {name!r} must be a dict of parameters or None, found {params!r}"
            )
        _check_params(name, params)
        out.setdefault(name, {}).update(params)
    if not {"resized_crop", "crop"} & set(out):
        raise ValueError(
            "a view needs 'resized_crop' or 'crop' to reach the output size; do not remove both"
        )
    # Added ops take their canonical place; presets are already in canonical order.
    return sorted(out.items(), key=lambda item: AUG_NAMES.index(item[0]))


def build_view(spec: Spec, ctx: Context) -> AugmentedView:
    """Instantiate one view's ops from its spec."""
    ops: list[nn.Module] = []
    for name, params in spec:
        _check_params(name, params)
        ops.extend(_FACTORIES[name](ctx, **params))
    return AugmentedView(ops)


def make_views(
    preset: str, bands: int, size: int, augs: list[str] | None = None, **overrides: Any
) -> TwoViews:
    """Build the two-view augmentation module of a preset or of an explicit list of augmentations.

    Args:
        preset: "mocov2", "mocov3", "simclr", "s2", "light", or "custom" together with `augs`.
        bands: number of bands C of the input (any C >= 1).
        size: side of the square output views; larger inputs are cropped, smaller ones resized.
        augs: names from `AUG_NAMES` for preset "custom" (both views alike, canonical order).
        **overrides: `mean`, `std` (per-band reflectance statistics of the standardisation; then
            gain, speckle and the solarize threshold act on reflectance), `wavelengths` (per band,
            for spectral jitter), `gray_weights` (per band), `padding_mode`; `<aug name>=dict` to
            change that augmentation's parameters in both views (adding it if absent) or
            `<aug name>=None` to remove it; `view1=` / `view2=` {name: dict | None} for one view.

    Returns:
        `TwoViews`: `forward(x, mask=None)` -> `(v1, v2)`, or `((v1, m1), (v2, m2))` with a mask.
    """
    if preset != CUSTOM and not is_preset(preset):
        raise ValueError(
            f"unknown view preset {preset!r}; valid presets: {', '.join([*PRESETS, CUSTOM])}"
        )
    if isinstance(bands, bool) or not isinstance(bands, int) or bands < 1:
        raise ValueError(f"bands must be a positive int, found {bands!r}")
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive int, found {size!r}")
    if preset == SIMCLR_S2 or preset.startswith(SIMCLR_S2 + ":"):
        pairs = parse_pairs(preset.split(":", 1)[1]) if ":" in preset else None
        return _simclr_s2_views(bands, size, augs, overrides, pairs)
    if preset == CUSTOM:
        if not augs:
            raise ValueError(f"preset 'custom' needs augs=[...] from: {', '.join(AUG_NAMES)}")
        spec1 = spec2 = custom_spec(augs)
    elif augs:
        raise ValueError(f"augs is only used with preset 'custom', not with {preset!r}")
    else:
        spec1, spec2 = VIEW_PRESETS[preset]

    context_kw = {k: overrides.pop(k) for k in _GLOBAL_OVERRIDES if k in overrides}
    per_view = [overrides.pop("view1", None) or {}, overrides.pop("view2", None) or {}]
    for key in overrides:
        if key not in _FACTORIES:
            raise ValueError(
                f"unknown override {key!r}; valid: {', '.join(_GLOBAL_OVERRIDES)}, view1, view2, "
                f"or an augmentation name ({', '.join(AUG_NAMES)})"
            )
    ctx = Context(bands=bands, size=size, **context_kw)
    for name in ("mean", "std", "wavelengths", "gray_weights"):
        values = getattr(ctx, name)
        if values is not None and len(values) != bands:
            raise ValueError(
                f"{name} has {len(values)} values but bands={bands}; give one value per band"
            )

    specs = [
        _apply_overrides(_apply_overrides(s, overrides), v)
        for s, v in zip((spec1, spec2), per_view, strict=True)
    ]
    config = {
        "preset": preset,
        "bands": bands,
        "size": size,
        **{
            k: (v if isinstance(v, str) else [float(a) for a in v])
            for k, v in context_kw.items()
            if v is not None
        },
        "view1": [[n, _plain(p)] for n, p in specs[0]],
        "view2": [[n, _plain(p)] for n, p in specs[1]],
    }
    return TwoViews(build_view(specs[0], ctx), build_view(specs[1], ctx), size, config)


def _plain(params: dict[str, Any]) -> dict[str, Any]:
    """Parameters as YAML/JSON-friendly values (tuples as lists)."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in params.items()}


def _simclr_s2_views(
    bands: int,
    size: int,
    augs,
    overrides: dict[str, Any],
    pairs: list[tuple[str, str]] | None = None,
) -> TwoViews:
    """Both views of the SimCLR-S2 protocol (the same distribution, independent draws)."""
    if augs:
        raise ValueError(f"augs is only used with preset 'custom', not with {SIMCLR_S2!r}")
    unknown = set(overrides) - set(_GLOBAL_OVERRIDES)
    if unknown:
        raise ValueError(
            f"preset {SIMCLR_S2!r} is the study's fixed protocol; it takes only {', '.join(_GLOBAL_OVERRIDES)}, "
            f"not {sorted(unknown)} (use a custom list to change ops)"
        )
    # mean/std/wavelengths are accepted and unused: the study's ops act on standardised values.
    ctx = Context(bands=bands, size=size, **overrides)
    config = {
        "preset": SIMCLR_S2,
        "bands": bands,
        "size": size,
        "slots": {
            slot: [[n, _plain(p)] for n, p in spec] for slot, spec in SIMCLR_S2_SLOTS.items()
        },
        "excluded_pairs": [sorted(p) for p in SIMCLR_S2_EXCLUDED] if pairs is None else None,
        "pairs": None if pairs is None else [list(p) for p in pairs],
        "ops_per_view": 2,
    }
    return TwoViews(build_paired_view(ctx, pairs), build_paired_view(ctx, pairs), size, config)
