import numpy as np
import pytest

from rs_ssl.bands import canonical_band_name, get_sensor, load_stats, resolve_bands, sensors
from rs_ssl.errors import UsageError


def test_registry_has_the_sensors_with_their_band_counts():
    s = sensors()
    assert len(s["s2_l1c"].bands) == 13
    assert len(s["s2_l2a"].bands) == 12
    assert "B10" in s["s2_l1c"].names and "B10" not in s["s2_l2a"].names
    assert len(s["rgb"].bands) == 3
    assert s["landsat_oli"].names[:7] == ("B1", "B2", "B3", "B4", "B5", "B6", "B7")


def test_sentinel2_order_wavelengths_and_resolutions():
    l1c = get_sensor("s2_l1c")
    assert l1c.names == (
        "B01",
        "B02",
        "B03",
        "B04",
        "B05",
        "B06",
        "B07",
        "B08",
        "B8A",
        "B09",
        "B10",
        "B11",
        "B12",
    )
    res = {b.name: b.resolution_m for b in l1c.bands}
    assert {n for n, r in res.items() if r == 10} == {"B02", "B03", "B04", "B08"}
    assert {n for n, r in res.items() if r == 60} == {"B01", "B09", "B10"}
    wl = [b.wavelength_nm for b in l1c.bands]
    # canonical order is by band number, which is by wavelength except B8A after B08
    assert wl.index(864.7) == 8 and all(a < b for a, b in zip(wl, wl[1:], strict=False))


@pytest.mark.parametrize(
    "spec,sensor,n", [("13", "s2_l1c", 13), (12, "s2_l2a", 12), ("3", "rgb", 3)]
)
def test_counts_resolve_to_sensors(spec, sensor, n):
    sel = resolve_bands(spec)
    assert sel.sensor.key == sensor and len(sel) == n


def test_list_keeps_order_and_accepts_short_names():
    sel = resolve_bands("B08,b4,B3,B02")
    assert sel.names == ("B08", "B04", "B03", "B02")
    assert sel.sensor.key == "s2_l1c"
    assert sel.rgb_indices() == [1, 2, 3]


def test_list_with_sensor_landsat():
    sel = resolve_bands("B4,B3,B2", sensor="landsat_oli")
    assert sel.names == ("B4", "B3", "B2") and sel.sensor.key == "landsat_oli"


def test_unknown_band_lists_valid_ones():
    with pytest.raises(UsageError) as e:
        resolve_bands("B02,B99")
    msg = str(e.value)
    assert "B99" in msg and "B8A" in msg and "s2_l1c" in msg


def test_bad_count_and_duplicates():
    with pytest.raises(UsageError, match="no sensor is registered for 7 bands"):
        resolve_bands("7")
    with pytest.raises(UsageError, match="more than once"):
        resolve_bands("B02,B2")
    with pytest.raises(UsageError, match="has 12 bands"):
        resolve_bands("13", sensor="s2_l2a")


def test_canonical_names():
    assert canonical_band_name("b8a") == "B8A"
    assert canonical_band_name("B1") == "B01"
    assert canonical_band_name("B1", get_sensor("landsat_oli")) == "B1"


def test_stats_follow_the_selection_order_and_are_reflectance():
    full = load_stats(resolve_bands(13))
    sub = load_stats(resolve_bands("B12,B02"))
    l1c = get_sensor("s2_l1c")
    assert sub.mean[0] == full.mean[l1c.names.index("B12")]
    assert sub.mean[1] == full.mean[l1c.names.index("B02")]
    assert np.all(full.std > 0) and np.all(full.mean < 1.0) and np.all(full.mean > 0)


def test_no_imagenet_statistics_for_rgb():
    rgb = load_stats(resolve_bands(3))
    assert not np.allclose(rgb.mean, [0.485, 0.456, 0.406], atol=1e-3)
