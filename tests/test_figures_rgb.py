"""Report figures show RGB photographs as they are; stretched renders stay for multispectral sensors."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from rs_ssl.bands import resolve_bands
from rs_ssl.eval.figures import display_scale, sample_grid, true_colour


def _meadow(shared_data, name: str = "meadow_103.jpg") -> torch.Tensor:
    """A real AID meadow scene as (3, H, W) DN."""
    a = np.asarray(Image.open(shared_data / "aid_scenes" / "Meadow" / name)).astype(np.float32)
    return torch.from_numpy(a).permute(2, 0, 1).contiguous()


def test_rgb_photographs_are_shown_as_they_are_and_meadows_stay_green(shared_data, tmp_path):
    rgb = resolve_bands("3")
    img = _meadow(shared_data)
    shown = true_colour(img, rgb.rgb_indices(), display_scale(rgb))
    np.testing.assert_allclose(shown, img.permute(1, 2, 0).numpy() / 255.0, atol=1e-6)
    r, g, _ = shown.reshape(-1, 3).mean(0)
    assert g > r  # green, as photographed
    # The per-band stretch (still used for multispectral sensors) tints this meadow red: the bug fixed here.
    r_s, g_s, _ = true_colour(img, rgb.rgb_indices()).reshape(-1, 3).mean(0)
    assert r_s > g_s
    path = sample_grid(
        [img], ["meadow"], [True], rgb.rgb_indices(), tmp_path / "s.png", as_is=display_scale(rgb)
    )
    assert path.is_file()


def test_sentinel2_keeps_its_stretch():
    assert display_scale(resolve_bands("13")) is None
    assert display_scale(resolve_bands("B02,B03,B04", sensor="s2_l2a")) is None
