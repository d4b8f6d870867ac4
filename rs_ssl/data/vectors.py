"""Reading user vector files (`--region`, `--labels`): one place for the checks every caller needs."""

from __future__ import annotations

from pathlib import Path

from rs_ssl.errors import UsageError


def read_vector(path: str | Path, option: str):
    """The vector file as a GeoDataFrame with features and a CRS; errors name the option and the file."""
    import geopandas as gpd

    p = Path(path)
    if not p.exists():
        raise UsageError(f"{option} {p}: no such file")
    try:
        gdf = gpd.read_file(p)
    except Exception as e:  # noqa: BLE001 - pyogrio raises several types for unreadable files
        raise UsageError(f"{option} {p}: cannot be read as a vector file ({e})") from None
    if gdf.empty:
        raise UsageError(f"{option} {p}: contains no features")
    if gdf.crs is None:
        raise UsageError(f"{option} {p}: has no CRS; save it with one (e.g. EPSG:4326)")
    return gdf
