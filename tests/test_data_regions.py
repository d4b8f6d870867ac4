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
    with pytest.raises(DataError, match=r"no sample of .* lies inside it; region bounds .* data bounds"):
        pretrain_dataset(root, "auto", SEL, patch=120, samples_per_epoch=1, region="-122.5,35.1,-119,40")
