"""The bands a dataset itself holds, read from file names and headers (no pixels), for band transfer.

Used where a model trained on other bands meets the data (`probe`, `finetune`, `embed` without
`--bands`): the model's first layer is then moved to these bands (`rs_ssl.models.transfer`).
"""

from __future__ import annotations

from pathlib import Path

from rs_ssl.bands import BandSelection, resolve_bands, sensors
from rs_ssl.errors import UsageError

# Formats whose files name Sentinel-2 bands one per file.
_PER_BAND = {"sentinel2", "bigearthnet", "ssl4eo"}
# Formats whose product level fixes the sensor (BigEarthNet is L2A).
_FORMAT_SENSOR = {"bigearthnet": "s2_l2a"}


def _sensor_of(names: list[str], fmt: str, sensor: str | None) -> BandSelection:
    """A selection of `names` in the sensor's order: `sensor`, else the format's, else the sensor whose
    full band set these are (12 Sentinel-2 bands without B10: L2A), else the first that has them all."""
    if sensor is None:
        sensor = _FORMAT_SENSOR.get(fmt)
    if sensor is None:
        exact = [s for s in sensors().values() if set(s.names) == set(names)]
        sensor = exact[0].key if exact else resolve_bands(names).sensor.key
    sel = resolve_bands(names, sensor)
    return BandSelection(sel.sensor, tuple(n for n in sel.sensor.names if n in sel.names))


def native_bands(data: str | Path | None, fmt: str = "auto", sensor: str | None = None) -> BandSelection | None:
    """The bands stored in `data` (its first record), or None where the format does not say (zarr, tiles)."""
    from rs_ssl.data import sample_path, scan
    from rs_ssl.data.readers import file_band_names, open_raster
    from rs_ssl.data.sentinel2 import band_files

    path = Path(data) if data else sample_path()
    if "://" in str(data or "") or not path.exists():
        return None
    try:
        cat = scan(path, fmt, sensor=sensor)
    except UsageError:
        return None  # an SSL4EO root with two modalities: the caller's --bands/--sensor decide
    first = Path(cat.records[0].path)
    if cat.format in _PER_BAND:
        names = list(band_files(first))
    elif cat.format in ("geotiff", "folder", "millionaid") and first.is_file():
        with open_raster(str(first)) as src:
            names = list(file_band_names(str(first), src.count, src.descriptions, src.colorinterp, cat.layout))
        names = [n for n in names if not n.startswith("extra")]
    else:
        return None
    if not names:
        return None
    if cat.format == "ssl4eo" and sensor is None:
        sensor = {"s2c": "s2_l1c", "s2a": "s2_l2a"}.get(cat.notes.get("modality", ""))
    return _sensor_of(names, cat.format, sensor)

