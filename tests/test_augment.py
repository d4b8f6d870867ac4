"""Tests of rs_ssl.augment on real patches from ../shared/data.

Patches are read with rasterio, converted from DN to reflectance (DN * 1e-4; 8-bit RGB: DN / 255)
and standardised per band. Synthetic tensors appear only for edge cases, with distinct values
in every band.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import kornia.augmentation as K
import numpy as np
import pytest
import rasterio
import torch
import torch.nn.functional as F
from rasterio.enums import Resampling

from rs_ssl.augment import AUG_NAMES, VIEW_PRESETS, make_views
from rs_ssl.augment import geometric as G
from rs_ssl.augment import pixel as P
from rs_ssl.augment.fused import AugmentedView
from rs_ssl.bands import get_sensor

# Missing real data fails (conftest's shared_data fixture does the same), never skips silently.
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# Band names and centre wavelengths from the band registry (data_manifests/bands.yaml).
L1C_BANDS = get_sensor("s2_l1c").names
L1C_NM = tuple(b.wavelength_nm for b in get_sensor("s2_l1c").bands)
L2A_BANDS = get_sensor("s2_l2a").names


def _read(path: Path, side: int) -> np.ndarray:
    """All bands of a GeoTIFF on a side x side grid (average down, nearest up)."""
    with rasterio.open(path) as src:
        method = Resampling.average if src.height >= side else Resampling.nearest
        return src.read(out_shape=(src.count, side, side), resampling=method).astype(np.float64)


def _standardise(reflectance: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B, C, H, W) reflectance -> standardised float32 batch, per-band mean and std."""
    mean = reflectance.mean(axis=(0, 2, 3))
    std = reflectance.std(axis=(0, 2, 3))
    z = (reflectance - mean[None, :, None, None]) / std[None, :, None, None]
    return (
        torch.from_numpy(z).float(),
        torch.from_numpy(mean).float(),
        torch.from_numpy(std).float(),
    )


@cache
def l1c_scene(side: int = 240) -> np.ndarray:
    """The 13-band Sentinel-2 L1C scene as reflectance on one side x side grid, (13, side, side)."""
    bands = [_read(DATA / "sentinel2_l1c_scene" / f"s2_{b}.tif", side)[0] for b in L1C_BANDS]
    return np.stack(bands) * 1e-4


@cache
def batch(channels: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A standardised batch of real patches with `channels` bands, plus reflectance mean and std."""
    if channels == 13:  # Sentinel-2 L1C: EuroSAT-MS patches and tiles of the L1C scene
        euro = np.stack([_read(p, 64) for p in sorted(DATA.glob("eurosat_ms/*/*.tif"))]) * 1e-4
        scene = l1c_scene(128)
        tiles = np.stack([scene[:, i : i + 64, j : j + 64] for i in (0, 64) for j in (0, 64)])
        refl = np.concatenate([euro, tiles])
    elif channels == 12:  # Sentinel-2 L2A: BigEarthNet v2 patches, bands on the 10 m grid
        patches = sorted(p for p in DATA.glob("bigearthnet_v2/BigEarthNet-S2/*/*") if p.is_dir())[
            :6
        ]
        refl = (
            np.stack(
                [
                    np.stack([_read(p / f"{p.name}_{b}.tif", 64)[0] for b in L2A_BANDS])
                    for p in patches
                ]
            )
            * 1e-4
        )
    elif channels == 4:  # the 10 m bands B02, B03, B04, B08 of the L1C scene at full resolution
        bands = []
        for b in ("B02", "B03", "B04", "B08"):
            with rasterio.open(DATA / "sentinel2_l1c_scene" / f"s2_{b}.tif") as src:
                bands.append(src.read(1, window=((0, 128), (0, 384))).astype(np.float64))
        stack = np.stack(bands) * 1e-4
        refl = np.stack([stack[:, :64, j : j + 64] for j in range(0, 384, 64)])
    elif channels == 3:  # RGB aerial (USGS, 8-bit): DN / 255
        refl = (
            np.stack([_read(p, 64) for p in sorted(DATA.glob("rgb_aerial/usgs_rsvqa/**/*.tif"))])
            / 255.0
        )
    else:
        raise ValueError(channels)
    return _standardise(refl)


# --- make_views: presets, lists, errors -----------------------------------------------------------


@pytest.mark.parametrize("channels", [3, 4, 12, 13])
@pytest.mark.parametrize("preset", sorted(VIEW_PRESETS))
def test_presets_give_two_views_of_size(preset: str, channels: int) -> None:
    x, _, _ = batch(channels)
    torch.manual_seed(0)
    v1, v2 = make_views(preset, channels, 48)(x)
    assert v1.shape == v2.shape == (x.shape[0], channels, 48, 48)
    assert v1.dtype == v2.dtype == torch.float32
    assert torch.isfinite(v1).all() and torch.isfinite(v2).all()
    assert not torch.equal(v1, v2)


def test_custom_list_builds_every_name() -> None:
    x, mean, std = batch(13)
    every = [n for n in AUG_NAMES if n != "crop"]  # a view has one crop: resized_crop here
    views = make_views(
        "custom",
        13,
        40,
        augs=every[::-1],
        mean=mean.tolist(),
        std=std.tolist(),
        wavelengths=list(L1C_NM),
    )
    names = [n for n, _ in views.config["view1"]]
    assert names == every  # canonical order
    torch.manual_seed(1)
    v1, v2 = views(x)
    assert v1.shape == (x.shape[0], 13, 40, 40) and torch.isfinite(v1).all()


def test_custom_list_order_does_not_matter_and_adds_a_crop() -> None:
    a = make_views("custom", 4, 32, augs=["speckle", "gain", "flip"])
    b = make_views("custom", 4, 32, augs=["flip", "speckle", "gain"])
    assert a.config["view1"] == b.config["view1"]
    assert [n for n, _ in a.config["view1"]] == ["crop", "flip", "gain", "speckle"]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: make_views("byol", 13, 32),
            "valid presets: mocov2, mocov3, simclr, s2, light, simclr-s2, custom",
        ),
        (lambda: make_views("custom", 13, 32, augs=["hue"]), "valid names: resized_crop"),
        (lambda: make_views("custom", 13, 32), "needs augs"),
        (lambda: make_views("mocov3", 13, 32, augs=["gain"]), "only used with preset 'custom'"),
        (
            lambda: make_views("s2", 13, 32, gain={"gian": 0.1}),
            "valid: ['gain', 'p', 'reflectance', 'same_on_batch']",
        ),
        (lambda: make_views("s2", 13, 32, colour=1), "unknown override 'colour'"),
        (
            lambda: make_views("s2", 13, 32, mean=[0.1] * 12, std=[0.1] * 12),
            "mean has 12 values but bands=13",
        ),
        (lambda: make_views("s2", 13, 32, crop=None), "needs 'resized_crop' or 'crop'"),
        (lambda: make_views("s2", 0, 32), "bands must be a positive int"),
        (lambda: make_views("custom", 13, 32, augs=["crop", "resized_crop"]), "keep one"),
    ],
)
def test_bad_arguments_raise_value_error(call, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        call()


def test_wrong_input_raises_value_error() -> None:
    views = make_views("simclr", 13, 32)
    with pytest.raises(ValueError, match="float batch"):
        views(torch.zeros(2, 13, 64, 64, dtype=torch.int16))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        views(torch.zeros(13, 64, 64))
    with pytest.raises(ValueError, match="nodata mask"):
        views(torch.zeros(2, 13, 64, 64), torch.ones(2, 13, 64, 64))
    grey = make_views("custom", 13, 32, augs=["grayscale"], gray_weights=[1.0] * 13)
    with pytest.raises(ValueError, match="13 values but the input has 12 bands"):
        grey(torch.zeros(2, 12, 64, 64))


def test_overrides_change_parameters_per_view_and_remove_ops() -> None:
    views = make_views(
        "mocov3", 13, 32, blur={"sigma": (0.5, 0.5)}, view2={"solarize": None, "noise": {"p": 1.0}}
    )
    v1 = dict((n, p) for n, p in views.config["view1"])
    v2 = dict((n, p) for n, p in views.config["view2"])
    assert v1["blur"] == {"sigma": [0.5, 0.5], "p": 1.0}
    assert v2["blur"] == {"sigma": [0.5, 0.5], "p": 0.1}
    assert "solarize" not in v2 and v2["noise"] == {"p": 1.0}
    assert list(v2) == ["resized_crop", "flip", "blur", "color_jitter", "grayscale", "noise"]


def test_mocov3_views_are_asymmetric_as_in_the_paper() -> None:
    views = make_views("mocov3", 13, 224)
    blur1 = next(op for op in views.view1.ops if isinstance(op, P.RandomGaussianBlur))
    blur2 = next(op for op in views.view2.ops if isinstance(op, P.RandomGaussianBlur))
    assert (blur1.p, blur2.p, blur1.kernel_size) == (1.0, 0.1, 23)
    assert not any(isinstance(op, P.RandomSolarize) for op in views.view1.ops)
    assert next(op for op in views.view2.ops if isinstance(op, P.RandomSolarize)).p == 0.2


# --- determinism -----------------------------------------------------------------------------------


@pytest.mark.parametrize("preset", ["mocov3", "s2"])
def test_fixed_seed_reproduces_views(preset: str) -> None:
    x, _, _ = batch(12)
    views = make_views(preset, 12, 48)
    torch.manual_seed(123)
    a1, a2 = views(x)
    torch.manual_seed(123)
    b1, b2 = views(x)
    torch.manual_seed(124)
    c1, _ = views(x)
    assert torch.equal(a1, b1) and torch.equal(a2, b2)
    assert not torch.equal(a1, c1)


def test_restored_rng_state_reproduces_views() -> None:
    x, _, _ = batch(13)
    views = make_views("simclr", 13, 48)
    torch.manual_seed(5)
    views(x)
    state = torch.get_rng_state()
    first = views(x)
    torch.set_rng_state(state)
    again = views(x)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])


# --- no clipping, dtypes -----------------------------------------------------------------------------


def test_nothing_is_clipped() -> None:
    x, _, _ = batch(13)
    # A crop to the input's own size with no other op is the identity: values outside [0, 1] stay
    # (up to float32 rounding of grid_sample's sampling coordinates, ~1e-5 relative).
    torch.manual_seed(0)
    v1, _ = make_views("custom", 13, 64, augs=["crop"])(x)
    torch.testing.assert_close(v1, x, rtol=1e-5, atol=1e-4)
    assert x.min() < -1.0 and x.max() > 2.0
    torch.manual_seed(0)
    for view in make_views("simclr", 13, 48)(x):
        assert view.min() < -1.0 and view.max() > 2.0


def test_bfloat16_input_returns_bfloat16_close_to_float32() -> None:
    x, _, _ = batch(4)
    views = make_views("mocov3", 4, 48)
    torch.manual_seed(9)
    ref = views(x)
    torch.manual_seed(9)
    low = views(x.bfloat16())
    for r, lo in zip(ref, low, strict=True):
        assert lo.dtype == torch.bfloat16
        # The input rounding to bfloat16 (3 significant digits) is the only difference.
        torch.testing.assert_close(lo.float(), r, rtol=0.02, atol=0.05)


# --- pixel ops: statistics on real patches ---------------------------------------------------------


def _reflectance(z: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    return z.double() * std.double()[None, :, None, None] + mean.double()[None, :, None, None]


def _run(op, x: torch.Tensor, seed: int = 0) -> tuple[torch.Tensor, dict]:
    torch.manual_seed(seed)
    out = op(x)
    return out, op._params


@pytest.mark.parametrize("looks", [1.0, 4.0, 16.0])
def test_speckle_keeps_band_means_and_adds_variance_as_its_looks_say(looks: float) -> None:
    x, mean, std = batch(13)
    out, params = _run(P.RandomSpeckle(looks=looks, p=1.0, mean=mean.tolist(), std=std.tolist()), x)
    r, r2 = _reflectance(x, mean, std), _reflectance(out, mean, std)
    band_mean, band_mean2 = r.mean(dim=(0, 2, 3)), r2.mean(dim=(0, 2, 3))
    # Mean 1 noise keeps each band's mean: the sampling error is ~0.01 / sqrt(looks) here.
    torch.testing.assert_close(band_mean2, band_mean, rtol=0.04 / looks**0.5, atol=0)
    # Var(r n) = Var(r) + E[r^2] / L for independent n with mean 1 and variance 1 / L.
    added = (r2.var(dim=(0, 2, 3)) - r.var(dim=(0, 2, 3))) / (r**2).mean(dim=(0, 2, 3))
    torch.testing.assert_close(added, torch.full_like(added, 1.0 / looks), rtol=0.12, atol=0)
    # The noise field itself: Gamma(L, 1/L), independent of the band.
    n = params["speckle"].double()
    torch.testing.assert_close(
        n.mean(dim=(0, 2, 3)), torch.ones(13, dtype=torch.float64), rtol=0, atol=0.03
    )
    torch.testing.assert_close(
        n.var(dim=(0, 2, 3)), torch.full((13,), 1.0 / looks, dtype=torch.float64), rtol=0.08, atol=0
    )
    assert (
        out.min() < 0 and (r2 < 0).sum() == 0
    )  # standardised values stay unclipped, reflectance >= 0


def test_speckle_without_statistics_multiplies_the_values_as_given() -> None:
    x, _, _ = batch(12)
    out, params = _run(P.RandomSpeckle(looks=(2.0, 8.0), p=1.0), x)
    torch.testing.assert_close(out, x * params["speckle"])
    looks = params["looks"]
    assert looks.min() >= 2.0 and looks.max() <= 8.0 and looks.unique().numel() == x.shape[0]


def test_gain_is_one_factor_per_band_in_reflectance() -> None:
    x, mean, std = batch(13)
    out, params = _run(P.RandomGain(gain=0.2, p=1.0, mean=mean.tolist(), std=std.tolist()), x)
    ratio = _reflectance(out, mean, std) / _reflectance(x, mean, std)  # reflectance > 0 here
    per_band = ratio.mean(dim=(2, 3))
    assert ratio.std(dim=(2, 3)).max() < 1e-5  # constant over the pixels of a band
    torch.testing.assert_close(per_band, params["gain"].double(), rtol=1e-5, atol=0)
    assert per_band.std(dim=1).min() > 0.03  # and different between the bands of one image
    assert per_band.min() >= 0.8 - 1e-6 and per_band.max() <= 1.2 + 1e-6


def test_gain_with_reflectance_false_multiplies_the_standardised_values() -> None:
    x, mean, std = batch(13)
    op = P.RandomGain(gain=0.2, p=1.0, mean=mean.tolist(), std=std.tolist(), reflectance=False)
    out, params = _run(op, x)
    torch.testing.assert_close(out, x * params["gain"][:, :, None, None].to(x.dtype))
    refl, _ = _run(P.RandomGain(gain=0.2, p=1.0, mean=mean.tolist(), std=std.tolist()), x)
    assert not torch.allclose(out, refl)  # same draws; only the (g - 1) mean / std shift differs


def test_brightness_shifts_every_band_alike_and_contrast_keeps_band_means() -> None:
    x, _, _ = batch(4)
    out, params = _run(P.RandomBrightness(0.5, p=1.0), x)
    shift = (out - x).mean(dim=(2, 3))
    torch.testing.assert_close(
        shift, params["brightness"][:, None].expand(-1, 4), rtol=0, atol=1e-5
    )
    out, params = _run(P.RandomContrast(0.5, p=1.0), x)
    torch.testing.assert_close(out.mean(dim=(2, 3)), x.mean(dim=(2, 3)), rtol=0, atol=1e-5)
    ratio = out.std(dim=(2, 3)) / x.std(dim=(2, 3))
    torch.testing.assert_close(ratio, params["contrast"][:, None].expand(-1, 4), rtol=1e-4, atol=0)


def test_spectral_jitter_is_small_smooth_and_keeps_the_spectrum_shape() -> None:
    x, mean, std = batch(13)
    op = P.RandomSpectralJitter(scale=0.05, shift=0.05, p=1.0, wavelengths=list(L1C_NM))
    out, params = _run(op, x)
    scale, shift = params["band_scale"], params["band_shift"]
    torch.testing.assert_close(out, x * scale[:, :, None, None] + shift[:, :, None, None])
    assert (scale - 1).abs().max() <= 0.075 + 1e-6 and shift.abs().max() <= 0.075 + 1e-6
    assert (scale - 1).std(dim=1).min() > 0  # per band, not one factor
    spectrum, spectrum2 = (
        _reflectance(x, mean, std).mean(dim=(2, 3)),
        _reflectance(out, mean, std).mean(dim=(2, 3)),
    )
    for a, b in zip(spectrum, spectrum2, strict=True):
        assert torch.corrcoef(torch.stack([a, b]))[0, 1] > 0.99


def test_grayscale_copies_the_band_weighted_mean_to_every_band() -> None:
    x, _, _ = batch(12)
    weights = torch.arange(1.0, 13.0)
    out, _ = _run(P.RandomGrayscale(p=1.0, weights=weights.tolist()), x)
    expected = (x * (weights / weights.sum())[None, :, None, None]).sum(dim=1, keepdim=True)
    torch.testing.assert_close(out, expected.expand_as(x), rtol=1e-5, atol=1e-5)


def test_solarize_mirrors_reflectance_above_the_threshold() -> None:
    x, mean, std = batch(13)
    out, _ = _run(P.RandomSolarize(p=1.0, threshold=0.15, mean=mean.tolist(), std=std.tolist()), x)
    r, r2 = _reflectance(x, mean, std), _reflectance(out, mean, std)
    above = r > 0.15
    assert 0.05 < above.double().mean() < 0.95
    torch.testing.assert_close(r2[~above], r[~above], rtol=0, atol=1e-5)
    torch.testing.assert_close(r2[above], 0.3 - r[above], rtol=0, atol=1e-5)


def test_gaussian_noise_has_the_sampled_standard_deviation() -> None:
    x, _, _ = batch(13)
    out, params = _run(P.RandomGaussianNoise(std=(0.05, 0.2), p=1.0), x)
    residual_std = (out - x).std(dim=(1, 2, 3))
    torch.testing.assert_close(residual_std, params["sigma"], rtol=0.02, atol=0)


def test_band_dropout_zeroes_whole_bands_and_keeps_one() -> None:
    x, _, _ = batch(13)
    out, params = _run(P.RandomBandDropout(drop_prob=0.5, p=1.0), x, seed=3)
    keep = params["keep"]
    assert keep.any(dim=1).all() and 0.3 < (~keep).double().mean() < 0.7
    assert (out[~keep] == 0).all()
    torch.testing.assert_close(out[keep], x[keep], rtol=0, atol=0)
    # an image whose bands are all drawn for dropping keeps exactly one
    out, params = _run(P.RandomBandDropout(drop_prob=0.999, p=1.0), x, seed=4)
    assert (params["keep"].sum(dim=1) == 1).all()


def test_blur_matches_kornia_gaussian_blur2d() -> None:
    from kornia.filters import gaussian_blur2d

    x, _, _ = batch(13)
    out, params = _run(P.RandomGaussianBlur(kernel_size=7, sigma=(0.1, 2.0), p=1.0), x)
    sigma = params["sigma"][:, None].expand(-1, 2)
    expected = gaussian_blur2d(x, (7, 7), sigma, border_type="reflect")
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    assert out.std() < x.std()


@pytest.fixture(params=[True, False], ids=["gate-read-on-host", "gate-on-device"])
def gate_mode(request, monkeypatch) -> bool:
    """Runs a test with gated ops selecting samples by index (the CPU way) and by `torch.where`
    on every sample (the GPU way, no host sync; see `pixel.gate_on_host`)."""
    monkeypatch.setattr(P, "gate_on_host", lambda device: request.param)
    return request.param


def test_p_gate_leaves_skipped_samples_untouched(gate_mode) -> None:
    x, _, _ = batch(13)
    out, params = _run(P.RandomSpeckle(p=0.5, looks=4.0), x, seed=2)
    on = params["batch_prob"] > 0.5
    assert 0 < on.sum() < x.shape[0]
    assert torch.equal(out[~on], x[~on]) and not torch.equal(out[on], x[on])
    assert (params["speckle"][~on] == 1).all()


# --- geometry --------------------------------------------------------------------------------------

GEOMETRIC = ["resized_crop", "flip", "rot90", "rotate", "shift", "zoom"]


def test_geometry_is_identical_across_bands() -> None:
    x, _, _ = batch(13)
    views = make_views("custom", 13, 48, augs=GEOMETRIC)
    perm = torch.randperm(13, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(11)
    v1, v2 = views(x)
    torch.manual_seed(11)
    p1, p2 = views(x[:, perm])
    torch.testing.assert_close(p1, v1[:, perm])
    torch.testing.assert_close(p2, v2[:, perm])
    # A band repeated C times comes out as C identical bands.
    torch.manual_seed(11)
    r1, _ = views(x[:, 3:4].expand(-1, 13, -1, -1).contiguous())
    assert torch.equal(r1, r1[:, :1].expand_as(r1))


def test_resized_crop_matches_a_reference_crop_and_resize() -> None:
    x, _, _ = batch(12)
    op = G.RandomResizedCrop(40, scale=(0.08, 1.0))
    out, params = _run(op, x)
    for i, (x0, y0, w, h) in enumerate(params["crop"].long().tolist()):
        crop = x[i : i + 1, :, y0 : y0 + h, x0 : x0 + w]
        ref = F.interpolate(crop, size=(40, 40), mode="bilinear", align_corners=False)
        torch.testing.assert_close(out[i : i + 1], ref, rtol=1e-4, atol=1e-4)
    area = params["crop"][:, 2] * params["crop"][:, 3] / (64 * 64)
    assert area.min() >= 0.08 * 0.9 and area.max() <= 1.0


def test_flips_and_quarter_turns_match_torch_index_ops() -> None:
    x, _, _ = batch(4)
    out, _ = _run(G.RandomHorizontalFlip(p=1.0), x)
    torch.testing.assert_close(out, x.flip(-1), rtol=1e-5, atol=1e-4)
    out, _ = _run(G.RandomVerticalFlip(p=1.0), x)
    torch.testing.assert_close(out, x.flip(-2), rtol=1e-5, atol=1e-4)
    out, params = _run(G.RandomRotation90(p=1.0), x)
    for i, k in enumerate(params["quarter_turns"].long().tolist()):
        # positive = counter-clockwise as displayed, as torch.rot90 over (H, W)
        torch.testing.assert_close(
            out[i], torch.rot90(x[i], k, dims=(-2, -1)), rtol=1e-5, atol=1e-4
        )
    assert set(params["quarter_turns"].long().tolist()) > {0}


@pytest.mark.parametrize("augs", [["resized_crop", "flip", "rot90"], GEOMETRIC])
def test_nodata_mask_stays_aligned_with_the_image(augs: list[str]) -> None:
    x, mean, _ = batch(13)
    r = _reflectance(x, mean, torch.ones_like(mean))
    mask = (r[:, 2:3] > r[:, 2:3].median()).bool()  # a data-derived 'valid' pattern
    views = make_views("custom", 14, 48, augs=augs)
    with_band = torch.cat([x, mask.float()], dim=1)
    torch.manual_seed(2)
    (v, m), _ = views(with_band, mask)
    # The mask equals the resampled indicator band where all bilinear neighbours are valid ...
    carried = v[:, 13:14]
    assert m.dtype == torch.bool and m.shape == (x.shape[0], 1, 48, 48)
    assert (carried[m] > 0.999).all()
    if augs == ["resized_crop", "flip", "rot90"]:  # ... and nothing else when nothing is padded
        assert torch.equal(m, carried > 0.999)
    else:  # ... and padded margins (rotation corners, shifts, zoom-outs) are invalid
        assert (~m).sum() > (carried <= 0.999).sum()


def test_geometric_ops_run_inside_kornia_augmentation_sequential_with_masks() -> None:
    x, _, _ = batch(3)
    mask = torch.ones(x.shape[0], 1, 64, 64)
    seq = K.AugmentationSequential(
        G.RandomResizedCrop(32),
        G.RandomHorizontalFlip(),
        G.RandomRotation(30.0, p=1.0),
        P.RandomGain(0.1),
        P.RandomSpeckle(looks=8.0),
        data_keys=["input", "mask"],
    )
    torch.manual_seed(0)
    out, out_mask = seq(x, mask)
    assert out.shape == (x.shape[0], 3, 32, 32) and out_mask.shape == (x.shape[0], 1, 32, 32)
    assert out_mask.min() == 0 and out_mask.max() == 1  # rotated corners are flagged
    matrix = seq.transform_matrix
    assert matrix.shape == (x.shape[0], 3, 3)


# --- fused pipeline vs op-by-op Kornia composition -------------------------------------------------


def _views(preset: str, channels: int, size: int) -> list[AugmentedView]:
    views = make_views(preset, channels, size)
    return [views.view1, views.view2]


@pytest.mark.parametrize("preset", ["mocov2", "mocov3", "simclr"])
def test_fused_matches_kornia_image_sequential_under_one_seed(preset: str) -> None:
    x, _, _ = batch(13)
    for view in _views(preset, 13, 48):
        torch.manual_seed(21)
        fused = view(x)
        torch.manual_seed(21)
        op_by_op = K.ImageSequential(*view.ops)(x)
        torch.testing.assert_close(fused, op_by_op, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("preset", ["mocov2", "mocov3", "simclr", "s2"])
def test_fused_matches_op_by_op_with_the_same_parameters(preset: str, gate_mode) -> None:
    x, _, _ = batch(12)
    mask = torch.ones(x.shape[0], 1, 64, 64, dtype=torch.bool)
    mask[:, :, 20:30, 5:50] = False
    for view in _views(preset, 12, 48):
        torch.manual_seed(8)
        params = view.sample(x.shape, x.device)
        for op, p in zip(view.ops, params, strict=True):
            if isinstance(op, G.RandomShift | G.RandomZoom):
                # Op by op, each interpolating op resamples again (the blur fusion removes);
                # with them skipped, every geometric op but the crop maps pixel centres exactly.
                p["batch_prob"] = torch.zeros_like(p["batch_prob"])
        fused, fused_mask = view(x, mask, params=params)
        ref, ref_mask = view.reference(x, params, mask)
        torch.testing.assert_close(fused, ref, rtol=1e-4, atol=1e-4)
        assert torch.equal(fused_mask, ref_mask)


def test_every_pixel_op_fused_matches_op_by_op(gate_mode) -> None:
    x, mean, std = batch(13)
    pixel_names = [
        "blur",
        "color_jitter",
        "brightness",
        "contrast",
        "gain",
        "spectral_jitter",
        "grayscale",
        "solarize",
        "speckle",
        "noise",
        "band_dropout",
    ]
    # p = 0.5 everywhere so that every op's gate mixes applied and skipped samples.
    half = {name: {"p": 0.5} for name in pixel_names}
    views = make_views(
        "custom",
        13,
        64,
        augs=pixel_names,
        mean=mean.tolist(),
        std=std.tolist(),
        wavelengths=list(L1C_NM),
        **half,
    )
    for view in (views.view1, views.view2):
        torch.manual_seed(4)
        params = view.sample(x.shape, x.device)
        assert all(0 < p["batch_prob"].sum() < x.shape[0] for p in params[1:])
        torch.testing.assert_close(
            view(x, params=params), view.reference(x, params), rtol=1e-4, atol=1e-4
        )


@pytest.mark.parametrize("augs", [["crop", "flip", "rot90", "rotate", "shift", "zoom"], GEOMETRIC])
def test_fused_geometry_is_the_product_of_the_kornia_matrices(augs: list[str]) -> None:
    """Several interpolating ops: the single resampling uses the product of the ops' matrices."""
    from rs_ssl.augment.geometric import _kornia_convention

    x, _, _ = batch(4)
    view = make_views("custom", 4, 48, augs=augs).view1
    torch.manual_seed(6)
    params = view.sample(x.shape, x.device)
    total, _, _ = view.matrix(params, (64, 64), x.device)
    torch.manual_seed(6)
    seq = K.AugmentationSequential(*view.ops, data_keys=["input"])
    seq(x)
    torch.testing.assert_close(
        _kornia_convention(total), seq.transform_matrix, rtol=1e-5, atol=1e-4
    )


# --- presets as documented, same_on_batch, devices, benchmark ---------------------------------------


def test_preset_parameters_are_the_documented_ones() -> None:
    jitter = {
        "mocov2": (0.4, 0.4, 0.1, 0.05),
        "mocov3": (0.4, 0.4, 0.05, 0.05),
        "simclr": (0.8, 0.8, 0.2, 0.1),
    }
    crop_scale = {"mocov2": [0.2, 1.0], "mocov3": [0.08, 1.0], "simclr": [0.08, 1.0]}
    blur_p = {"mocov2": (0.5, 0.5), "mocov3": (1.0, 0.1), "simclr": (0.5, 0.5)}
    for preset, (b, c, g, s) in jitter.items():
        config = make_views(preset, 13, 224).config
        for i, view in enumerate((config["view1"], config["view2"])):
            ops = dict((n, p) for n, p in view)
            assert ops["resized_crop"]["scale"] == crop_scale[preset]
            cj = ops["color_jitter"]
            assert (cj["brightness"], cj["contrast"], cj["gain"], cj["spectral"], cj["p"]) == (
                b,
                c,
                g,
                s,
                0.8,
            )
            assert ops["grayscale"]["p"] == 0.2 and ops["flip"]["p"] == 0.5
            assert ops["blur"]["p"] == blur_p[preset][i] and ops["blur"]["sigma"] == [0.1, 2.0]
            assert ("solarize" in ops) == (preset == "mocov3" and i == 1)
    s2 = [n for n, _ in make_views("s2", 13, 224).config["view1"]]
    assert s2 == [
        "crop",
        "flip",
        "rot90",
        "shift",
        "zoom",
        "blur",
        "brightness",
        "contrast",
        "gain",
        "speckle",
    ]


def test_same_on_batch_shares_the_draw_across_the_batch() -> None:
    x, _, _ = batch(12)
    out, params = _run(P.RandomGain(0.2, p=1.0, same_on_batch=True), x)
    assert torch.equal(params["gain"], params["gain"][:1].expand_as(params["gain"]))
    out, params = _run(P.RandomSpeckle(looks=4.0, p=1.0, same_on_batch=True), x)
    assert torch.equal(params["speckle"][0], params["speckle"][-1])
    out, params = _run(G.RandomResizedCrop(32, same_on_batch=True), x)
    assert (params["crop"] == params["crop"][:1]).all()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_views_on_cuda_are_deterministic_and_keep_dtype(dtype: torch.dtype) -> None:
    x, _, _ = batch(13)
    x = x.cuda().to(dtype)
    mask = torch.ones(x.shape[0], 1, 64, 64, dtype=torch.bool, device="cuda")
    for preset in sorted(VIEW_PRESETS):
        views = make_views(preset, 13, 48)
        torch.manual_seed(0)
        (a, ma), (b, _) = views(x, mask)
        torch.manual_seed(0)
        (a2, _), _ = views(x, mask)
        assert a.device.type == "cuda" and a.dtype == dtype and ma.device.type == "cuda"
        assert torch.equal(a, a2) and torch.isfinite(a.float()).all()


def test_benchmark_script_runs_and_reports_every_pipeline() -> None:
    import argparse
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "augment_speed.py"
    spec = importlib.util.spec_from_file_location("augment_speed", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    args = argparse.Namespace(
        device="cpu",
        batch=2,
        bands=13,
        size=32,
        repeats=1,
        warmup=0,
        threads=0,
        input="real",
        pipelines="torchgeo-mocov3,rs_ssl-mocov3,rs_ssl-mocov3-ops,rs_ssl-s2",
        json=None,
    )
    report = bench.run(args)
    assert report["input"] == "L1C scene tiles"
    assert [r["pipeline"] for r in report["results"]] == args.pipelines.split(",")
    assert all(r["median_ms"] > 0 and r["views_per_s"] > 0 for r in report["results"])
    assert "| rs_ssl-mocov3 |" in bench.table(report)


def test_small_patches_are_resized_up_to_the_view_size() -> None:
    x, mean, std = batch(13)  # 64 x 64 patches
    views = make_views("s2", 13, 96, mean=mean, std=std)
    torch.manual_seed(0)
    v1, v2 = views(x)
    assert v1.shape == v2.shape == (x.shape[0], 13, 96, 96)
    assert views.config["mean"] == pytest.approx(mean.tolist())
