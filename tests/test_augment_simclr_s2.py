"""`--augs simclr-s2`: the SimCLR-S2 study's protocol, two of nine ops per view, never an excluded pair.

Statistics over many draws for the pair table; magnitudes on real BigEarthNet v2 patches
(standardised, as the study fed them), each op isolated by forcing its slot's gate.
"""

from __future__ import annotations

import collections
import itertools
from pathlib import Path

import kornia
import pytest
import torch
import yaml

from rs_ssl.augment import geometric as G
from rs_ssl.augment import make_views
from rs_ssl.augment import pixel as P
from rs_ssl.augment.pairs import OWN_COIN, PairedView, allowed_pairs
from rs_ssl.augment.presets import SIMCLR_S2_EXCLUDED, SIMCLR_S2_SLOTS
from tests.test_augment import batch, gate_mode  # noqa: F401 (gate_mode: a fixture)

SLOTS = list(SIMCLR_S2_SLOTS)


def _view(bands: int = 12, size: int = 48) -> PairedView:
    return make_views("simclr-s2", bands, size).view1


def _patches(copies: int = 8) -> torch.Tensor:
    """48 standardised 12-band BigEarthNet patches (6 real patches, each repeated)."""
    x, _, _ = batch(12)
    return x.repeat(copies, 1, 1, 1)


def test_the_table_has_nine_slots_and_the_studys_nine_excluded_pairs() -> None:
    assert SLOTS == [
        "shift",
        "zoom",
        "rotation",
        "flip",
        "brightness",
        "contrast",
        "gain",
        "blur",
        "speckle",
    ]
    assert len(set(SIMCLR_S2_EXCLUDED)) == 9
    assert frozenset({"flip", "blur"}) in SIMCLR_S2_EXCLUDED
    assert len(allowed_pairs(SLOTS, SIMCLR_S2_EXCLUDED)) == 36 - 9


def test_every_view_draws_two_ops_never_an_excluded_pair_and_every_allowed_pair_occurs() -> None:
    view = _view()
    torch.manual_seed(0)
    n = 6000
    params = view.sample((n, 12, 48, 48), "cpu")
    pairs = view.chosen_pairs(params)
    assert all(len(set(p)) == 2 for p in pairs)
    assert not {frozenset(p) for p in pairs} & set(SIMCLR_S2_EXCLUDED)
    counts = collections.Counter(frozenset(p) for p in pairs)
    allowed = {frozenset(p) for p in allowed_pairs(SLOTS, SIMCLR_S2_EXCLUDED)}
    assert set(counts) == allowed
    # Uniform over the 27 allowed pairs (redrawing excluded pairs of a uniform draw): each count
    # within 5 standard deviations of n / 27.
    expected, sd = n / 27, (n / 27 * (1 - 1 / 27)) ** 0.5
    assert all(abs(c - expected) < 5 * sd for c in counts.values()), counts
    # The gates agree: an op acts only if its slot is in the sample's pair, and an op without a
    # coin of its own acts whenever it is.
    for op_params, slot, mode in zip(params, view.op_slots, view.op_modes, strict=False):
        if slot is None:
            continue
        on = op_params["batch_prob"] > 0.5
        has = torch.tensor([slot in p for p in pairs])
        assert not (on & ~has).any()
        if mode == OWN_COIN:  # the flips: each axis with probability 0.5 when "flip" is drawn
            assert abs(on[has].float().mean().item() - 0.5) < 0.05
        else:
            assert torch.equal(on, has)


def test_two_ops_per_view_change_the_image_and_views_differ() -> None:
    x = _patches(2)[:, :, :48, :48]
    views = make_views("simclr-s2", 12, 48)
    torch.manual_seed(3)
    v1, v2 = views(x)
    assert v1.shape == v2.shape == x.shape
    assert not torch.equal(v1, v2)
    assert torch.isfinite(v1).all()


def _only(view: PairedView, params, slot: str):
    """The parameters with every op off except those of `slot` (flips: a fair coin each)."""
    out = [dict(p) for p in params]
    coins = torch.Generator().manual_seed(5)
    for p, s, mode in zip(out, view.op_slots, view.op_modes, strict=False):
        if s is None:
            continue
        if s != slot:
            p["batch_prob"] = torch.zeros_like(p["batch_prob"])
        elif mode == OWN_COIN:
            p["batch_prob"] = (torch.rand(p["batch_prob"].shape, generator=coins) < 0.5).to(
                p["batch_prob"].dtype
            )
        else:
            p["batch_prob"] = torch.ones_like(p["batch_prob"])
    return out


def _op(view: PairedView, cls: type):
    i = next(i for i, op in enumerate(view.ops) if type(op) is cls)
    return i, view.ops[i]


def _draw(slot: str, seed: int = 0, x: torch.Tensor | None = None):
    view = _view()
    x = _patches() if x is None else x
    x = x[:, :, :48, :48].contiguous()
    torch.manual_seed(seed)
    params = _only(view, view.sample(x.shape, x.device), slot)
    return view, x, params, view(x, params=params)


def test_rotation_is_a_whole_number_of_quarter_turns() -> None:
    view, x, params, y = _draw("rotation")
    turns = set()
    for i in range(x.shape[0]):
        k = next(
            k
            for k in range(4)
            if torch.allclose(y[i], torch.rot90(x[i], k, dims=(1, 2)), atol=1e-5)
        )
        turns.add(k)
    assert turns == {0, 1, 2, 3}


def test_flip_is_left_right_and_up_down_at_random() -> None:
    view, x, params, y = _draw("flip")
    seen = collections.Counter()
    for i in range(x.shape[0]):
        for dims in ((), (2,), (1,), (1, 2)):
            if torch.allclose(y[i], torch.flip(x[i], dims) if dims else x[i], atol=1e-5):
                seen[dims] += 1
                break
        else:
            raise AssertionError(f"sample {i} is no flip of its input")
    assert set(seen) == {(), (1,), (2,), (1, 2)}


def test_shift_is_a_circular_roll_of_at_most_a_tenth_of_the_side() -> None:
    view, x, params, y = _draw("shift")
    i, op = _op(view, G.RandomShift)
    shift = params[i]["shift"]
    assert shift.abs().max() <= 0.1 and shift.abs().max() > 0.08
    for b in range(x.shape[0]):
        dx, dy = (torch.round(shift[b] * 48)).long().tolist()
        torch.testing.assert_close(
            y[b], torch.roll(x[b], shifts=(dy, dx), dims=(1, 2)), atol=1e-4, rtol=0
        )


def test_zoom_crops_a_box_inside_the_image_and_resizes_it_back() -> None:
    # A horizontal ramp (value = column) shows the box: slope = side, values within the image.
    ramp = torch.arange(48.0)[None, None, None, :].expand(40, 1, 48, 48).contiguous()
    view = make_views("simclr-s2", 1, 48).view1
    torch.manual_seed(1)
    params = _only(view, view.sample(ramp.shape, "cpu"), "zoom")
    i, _ = _op(view, G.RandomBoxZoom)
    side = params[i]["side"]
    assert side.min() >= 0.8 and side.max() <= 1.0 and side.min() < 0.82
    y, m = view(ramp, torch.ones(40, 1, 48, 48, dtype=torch.bool), params=params)
    assert m.all()  # never reads outside the image
    slope = (y[:, 0, :, 40] - y[:, 0, :, 8]).mean(dim=1) / 32
    torch.testing.assert_close(slope, side, atol=1e-3, rtol=0)
    assert y.min() >= 0 and y.max() <= 47


def test_brightness_adds_one_shift_up_to_0_4_to_every_band() -> None:
    view, x, params, y = _draw("brightness")
    d = (y - x).flatten(1)
    torch.testing.assert_close(d.max(1).values, d.min(1).values, atol=1e-5, rtol=0)
    assert d.abs().max() <= 0.4 + 1e-6 and d.abs().max() > 0.35


def test_contrast_scales_each_band_about_its_mean_by_0_6_to_1_4() -> None:
    view, x, params, y = _draw("contrast")
    xm = x - x.mean(dim=(2, 3), keepdim=True)
    ym = y - y.mean(dim=(2, 3), keepdim=True)
    factor = (ym * xm).sum(dim=(1, 2, 3)) / (xm * xm).sum(dim=(1, 2, 3))
    torch.testing.assert_close(ym, factor[:, None, None, None] * xm, atol=1e-4, rtol=0)
    assert factor.min() >= 0.6 - 1e-5 and factor.max() <= 1.4 + 1e-5
    assert factor.min() < 0.7 and factor.max() > 1.3


def test_gain_multiplies_the_standardised_image_by_a_factor_in_minus_half_to_half() -> None:
    view, x, params, y = _draw("gain")
    g = (y * x).sum(dim=(1, 2, 3)) / (x * x).sum(dim=(1, 2, 3))
    torch.testing.assert_close(y, g[:, None, None, None] * x, atol=1e-5, rtol=0)
    assert g.min() >= -0.5 and g.max() <= 0.5
    assert (g < -0.3).any() and (g > 0.3).any()  # negative gains occur, as in the study


def test_blur_is_a_5x5_gaussian_with_sigma_0_1_to_2() -> None:
    view, x, params, y = _draw("blur")
    i, op = _op(view, P.RandomGaussianBlur)
    sigma = params[i]["sigma"]
    assert op.kernel_size == 5 and sigma.min() >= 0.1 and sigma.max() <= 2.0
    ref = torch.stack(
        [
            kornia.filters.gaussian_blur2d(
                x[b : b + 1], (5, 5), (float(s), float(s)), border_type="reflect"
            )[0]
            for b, s in enumerate(sigma)
        ]
    )
    torch.testing.assert_close(y, ref, atol=1e-4, rtol=1e-4)


def test_speckle_is_salt_and_pepper_at_minus_5_and_plus_5_on_up_to_2_percent() -> None:
    view, x, params, y = _draw("speckle")
    i, _ = _op(view, P.RandomImpulseNoise)
    f = params[i]["fraction"]
    assert f.min() >= 0 and f.max() <= 0.02
    changed = (y - x).abs() > 1e-4
    assert torch.isin(y[changed], torch.tensor([-5.0, 5.0])).all()
    low = (y == -5.0).flatten(1).float().mean(1)
    high = (y == 5.0).flatten(1).float().mean(1)
    n = y[0].numel()
    tol = 4 * (0.02 / n) ** 0.5 + 1e-3
    torch.testing.assert_close(low, f, atol=tol, rtol=0)
    torch.testing.assert_close(high, f, atol=tol, rtol=0)


def test_radar_speckle_and_impulse_noise_are_different_ops() -> None:
    assert make_views("custom", 3, 32, augs=["speckle"]).view1.ops[-1].__class__ is P.RandomSpeckle
    assert (
        make_views("custom", 3, 32, augs=["impulse"]).view1.ops[-1].__class__
        is P.RandomImpulseNoise
    )


@pytest.mark.usefixtures(
    "gate_mode"
)  # gates read on the host (CPU) and applied on the device (GPU)
@pytest.mark.parametrize("channels", [3, 13])
def test_fused_matches_op_by_op_and_masks_stay_aligned(channels: int) -> None:
    x, _, _ = batch(channels)
    x = x.repeat(8, 1, 1, 1)
    view = make_views("simclr-s2", channels, 48).view1
    mask = torch.ones(x.shape[0], 1, 64, 64, dtype=torch.bool)
    mask[:, :, 20:30, 5:50] = False
    torch.manual_seed(8)
    params = view.sample(x.shape, x.device)
    fused, fused_mask = view(x, mask, params=params)
    ref, ref_mask = view.reference(x, params, mask)
    # Shift then zoom: op by op, the zoom interpolates across the roll's seam; the single
    # resampling reads the nearest pixel there (a one-pixel column). Every other pair is exact.
    exact = torch.tensor([set(p) != {"shift", "zoom"} for p in view.chosen_pairs(params)])
    assert exact.sum() > 0.9 * len(exact)
    torch.testing.assert_close(fused[exact], ref[exact], rtol=1e-4, atol=1e-4)
    assert torch.equal(fused_mask[exact], ref_mask[exact])


def test_the_protocol_rejects_op_overrides() -> None:
    with pytest.raises(ValueError, match="fixed protocol"):
        make_views("simclr-s2", 3, 32, blur={"p": 1.0})


def test_allowed_pairs_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match="unknown"):
        allowed_pairs(["a", "b"], [frozenset({"a", "c"})])
    assert list(itertools.combinations("abc", 2)) == allowed_pairs(list("abc"), [])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_protocol_on_cuda_is_deterministic_keeps_dtype_and_draws_two_ops(
    dtype: torch.dtype,
) -> None:
    x = _patches().cuda().to(dtype)
    views = make_views("simclr-s2", 12, 48).cuda()
    mask = torch.ones(x.shape[0], 1, 64, 64, dtype=torch.bool, device="cuda")
    torch.manual_seed(0)
    (a, ma), _ = views(x, mask)
    torch.manual_seed(0)
    (a2, _), _ = views(x, mask)
    assert a.dtype == dtype and a.device.type == "cuda" and ma.device.type == "cuda"
    assert torch.equal(a, a2) and torch.isfinite(a.float()).all()
    params = views.view1.sample((4000, 12, 48, 48), "cuda")
    pairs = {frozenset(p) for p in views.view1.chosen_pairs(params)}
    assert pairs == {frozenset(p) for p in allowed_pairs(SLOTS, SIMCLR_S2_EXCLUDED)}


# --- one pair only (`simclr-s2:a+b`) and the study's augmentation search -----------------------------


def test_a_single_pair_applies_both_ops_to_every_view() -> None:
    view = make_views("simclr-s2:gain+speckle", 12, 48).view1
    torch.manual_seed(0)
    params = view.sample((64, 12, 48, 48), "cpu")
    assert set(view.chosen_pairs(params)) == {("gain", "speckle")}
    for p, slot in zip(params, view.op_slots, strict=False):
        if slot is not None:
            assert (p["batch_prob"] > 0.5).all() == (slot in ("gain", "speckle"))


@pytest.mark.parametrize(
    "text", ["simclr-s2:gain", "simclr-s2:gain+gain", "simclr-s2:gain+teleport", "simclr-s2:"]
)
def test_bad_pair_lists_raise(text: str) -> None:
    with pytest.raises(ValueError):
        make_views(text, 3, 32)


def test_the_search_drops_the_lowest_quarter_of_the_pairs() -> None:
    from rs_ssl.eval.augment_search import bottom_pairs, study_names

    assert study_names("simclr-s2") == SLOTS
    assert study_names("simclr-s2:shift,zoom") == ["shift", "zoom"]
    assert study_names("flip,gain") is None
    pairs = list(itertools.combinations(SLOTS, 2))
    scores = {p: float(i) for i, p in enumerate(pairs)}
    assert bottom_pairs(scores, 0.25) == pairs[:9]  # 36 pairs: the study's nine


@pytest.mark.slow
def test_augsearch_follows_the_study_with_finetuning(shared_data, tmp_path) -> None:
    import json

    from rs_ssl.cli import main

    out = tmp_path / "aug"
    assert (
        main(
            [
                "augsearch",
                "--data",
                str(shared_data / "bigearthnet_v2"),
                "--bands",
                "12",
                "--dataset",
                "bigearthnet",
                "--augs",
                "simclr-s2:shift,zoom,gain",
                "--evaluate",
                "finetune",
                "--label-fraction",
                "0.5",
                "--finetune-epochs",
                "1",
                "--fraction",
                "1.0",
                "--steps",
                "1",
                "--size",
                "32",
                "--batch-size",
                "4",
                "--drop-bottom",
                "0.34",
                "--devices",
                "cpu",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    m = json.loads((out / "metrics.json").read_text())
    assert m["protocol"] == "simclr-s2" and m["evaluate"] == "finetune"
    assert {tuple(r["augs"]) for r in m["runs"]} == {
        ("shift", "zoom"),
        ("shift", "gain"),
        ("zoom", "gain"),
    }
    assert len(m["runs"]) == 3 and all(len(r["augs"]) == 2 for r in m["runs"])
    worst = min(m["runs"], key=lambda r: r[m["metric"]])
    assert (out / "excluded_pairs.txt").read_text() == "+".join(worst["augs"]) + "\n"
    for r in m["runs"]:
        cfg = yaml.safe_load((Path(r["folder"]) / "pretrain" / "config.yaml").read_text())
        assert cfg["augs"] == "simclr-s2:" + "+".join(r["augs"])
        assert (
            json.loads((Path(r["folder"]) / "finetune" / "metrics.json").read_text())[m["metric"]]
            == r[m["metric"]]
        )
