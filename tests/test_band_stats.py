"""One band-statistics routine: its nodata rule (per band, as GDAL), and `rs-ssl manifest --stats`
agreeing with the shipped normalisation tables on the samples they were computed from."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
import yaml
from rasterio.transform import from_origin

from rs_ssl import cli
from rs_ssl.data.stats import RunningStats
from rs_ssl.manifests import manifest_path


def _masked(x: np.ndarray, nodata: float) -> list[np.ndarray]:
    return [b[np.isfinite(b) & (b != nodata)] for b in x.reshape(x.shape[0], -1)]


def test_nodata_is_missing_in_its_own_band_only():
    rng = np.random.default_rng(0)
    # Three bands with distinct value ranges; band 0 has a nodata strip the others do not.
    x = np.stack([rng.integers(100 * (b + 1), 100 * (b + 2), (20, 30)) for b in range(3)]).astype(
        float
    )
    x[0, :, :5] = 0
    x[2, 3, 3] = np.nan
    rs = RunningStats(3, nodata=0)
    for chunk in np.array_split(x, 4, axis=1):  # streamed in blocks, as rasters are
        rs.update(chunk)
    ref = _masked(x, 0)
    assert rs.n.tolist() == [len(b) for b in ref] == [500, 600, 599]
    np.testing.assert_allclose(rs.mean, [b.mean() for b in ref], rtol=1e-12)
    np.testing.assert_allclose(rs.std, [b.std(ddof=1) for b in ref], rtol=1e-12)


def test_statistics_agree_with_gdal_on_a_geotiff(tmp_path):
    """GDAL's own band statistics (per band, nodata excluded) are the peer reading."""
    rng = np.random.default_rng(1)
    data = np.stack(
        [rng.integers(1000 * (b + 1), 1000 * (b + 1) + 500, (64, 48)) for b in range(4)]
    )
    data = data.astype("uint16")
    data[1, 10:20, :] = 0  # nodata in band 2 only
    data[:, 40:, 40:] = 0  # nodata in every band
    path = tmp_path / "stack.tif"
    profile = dict(driver="GTiff", width=48, height=64, count=4, dtype="uint16", nodata=0)
    with rasterio.open(path, "w", transform=from_origin(0, 64, 1, 1), **profile) as dst:
        dst.write(data)
    rs = RunningStats(4, nodata=0)
    with rasterio.open(path) as src:
        rs.update(src.read())
        gdal = [src.statistics(b, approx=False) for b in range(1, 5)]
    n = rs.n
    np.testing.assert_allclose(rs.mean, [s.mean for s in gdal], rtol=1e-9)
    # GDAL reports the population std (n), rs-ssl the sample std (n - 1).
    np.testing.assert_allclose(rs.std * np.sqrt((n - 1) / n), [s.std for s in gdal], rtol=1e-9)


@pytest.mark.parametrize(
    "folder, sensor",
    [("sentinel2_l1c_scene", "s2_l1c"), ("bigearthnet_v2", "s2_l2a"), ("rgb_aerial", "rgb")],
)
def test_manifest_stats_reproduce_the_shipped_tables(shared_data, tmp_path, folder, sensor):
    out = tmp_path / "m"
    assert cli.main(["manifest", str(shared_data / folder), "--stats", "--out", str(out)]) == 0
    got = json.loads((out / "summary.json").read_text())["stats"]
    shipped = yaml.safe_load(manifest_path("normalization", f"{sensor}.yaml").read_text())
    assert got["sensor"] == shipped["sensor"] and got["pixels"] == shipped["pixels"]
    assert got["bands"] == shipped["bands"]  # rounded to 6 decimals on both sides
