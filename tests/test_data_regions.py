"""--region on patch datasets: samples whose footprint lies wholly inside are kept, in order."""

from __future__ import annotations

import pytest
from rasterio.warp import transform_bounds

from rs_ssl.bands import resolve_bands
from rs_ssl.data import pretrain_dataset
from rs_ssl.data.datasets import open_record
from rs_ssl.errors import DataError

SEL = resolve_bands(12)


def test_bigearthnet_samples_inside_a_bbox(shared_data):
    root = shared_data / "bigearthnet_v2"
    everything, _ = pretrain_dataset(root, "auto", SEL, patch=120, samples_per_epoch=1)
    footprints = []
    for r in everything.records:
        g = open_record(everything.catalog, r, SEL).grid
        footprints.append(transform_bounds(g.crs, "EPSG:4326", *g.bounds))
    # a bbox around the western half of the patches (by footprint centre longitude)
    centres = sorted((b[0] + b[2]) / 2 for b in footprints)
    cut = (centres[len(centres) // 2 - 1] + centres[len(centres) // 2]) / 2
    miny, maxy = min(b[1] for b in footprints) - 0.01, max(b[3] for b in footprints) + 0.01
    bbox = f"{min(b[0] for b in footprints) - 0.01},{miny},{cut},{maxy}"
    inside, info = pretrain_dataset(root, "auto", SEL, patch=120, samples_per_epoch=1, region=bbox)
    want = [r.path for r, b in zip(everything.records, footprints, strict=True) if b[2] <= cut]
    assert 0 < len(want) < len(everything) and [r.path for r in inside.records] == want
    assert info["samples"] == len(want)
    with pytest.raises(
        DataError, match=r"no sample of .* lies inside it; region bounds .* data bounds"
    ):
        pretrain_dataset(
            root, "auto", SEL, patch=120, samples_per_epoch=1, region="-122.5,35.1,-119,40"
        )


def test_region_positions_are_the_seeded_draw_over_allowed_corners():
    """Each position is the j-th allowed corner in row-major order, j drawn from the patch's own RNG."""
    import numpy as np
    from rasterio.warp import transform_bounds as tb

    from rs_ssl.data import sample_path
    from rs_ssl.data.patches import RandomPatchDataset
    from rs_ssl.data.regions import allowed_corners, load_region
    from rs_ssl.data.sentinel2 import Sentinel2Scene

    scene = Sentinel2Scene(sample_path(), resolve_bands(13))
    w, s, e, n = tb(scene.grid.crs, "EPSG:4326", *scene.grid.bounds)
    # a triangle-ish region (a bbox's south-west half) so that rows hold different corner counts
    mask = allowed_corners(scene, load_region(f"{w},{s},{(w + e) / 2},{(s + n) / 2}"), 32)
    mask &= np.tri(*mask.shape, k=0, dtype=bool)[::-1]
    ds = RandomPatchDataset([scene], 32, 64, seed=3, allowed=[mask])
    rows, cols = np.nonzero(mask)
    for i in range(64):
        rng = np.random.default_rng([3, 0, i])
        rng.random()  # the raster choice
        j = int(rng.integers(len(rows)))
        assert ds.position(i) == (0, int(rows[j]), int(cols[j]))
        assert mask[ds.position(i)[1], ds.position(i)[2]]
