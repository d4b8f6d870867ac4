"""QGIS-exported tile folders, read as one mosaic through a GDAL VRT.

(a) Georeferenced tiles (GeoTIFF, or PNG/JPG with `.wld`/`.pgw`/`.aux.xml` sidecars, as written by
QGIS "Export raster" with tiling or `gdal_retile.py`): the `.vrt` written beside them is used when
present, else a VRT mosaic is built in memory from the tiles' own georeference.
(b) XYZ/TMS directories `z/x/y.png` ("Generate XYZ tiles (Directory)", `gdal2tiles.py`): one zoom
level (`--zoom`, default the deepest) in EPSG:3857; `tilemapresource.xml` marks the TMS row order.
"""

from __future__ import annotations

import math
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import rasterio
from rasterio.transform import Affine

from rs_ssl.data.base import IMAGE_SUFFIXES, Catalog, Format, Record, Source
from rs_ssl.data.readers import StackedRaster
from rs_ssl.errors import DataError, UsageError

WORLD_FILES = (".wld", ".pgw", ".pngw", ".jgw", ".jpgw", ".tfw", ".tifw")
TILE_SUFFIXES = (".png", ".jpg", ".jpeg")
WEB_MERCATOR_HALF = 20037508.342789244  # EPSG:3857 half-extent in metres
_GDAL_TYPES = {
    "uint8": "Byte",
    "uint16": "UInt16",
    "int16": "Int16",
    "uint32": "UInt32",
    "int32": "Int32",
    "float32": "Float32",
    "float64": "Float64",
}


def _digit_dirs(p: Path) -> list[Path]:
    return sorted(
        (c for c in p.iterdir() if c.is_dir() and c.name.isdigit()), key=lambda c: int(c.name)
    )


def is_xyz(path: Path) -> bool:
    for z in _digit_dirs(path)[:3]:
        for x in _digit_dirs(z)[:3]:
            if any(f.suffix.lower() in TILE_SUFFIXES and f.stem.isdigit() for f in x.iterdir()):
                return True
    return False


def scan_xyz(path: Path, zoom: int | None) -> tuple[list[Record], int, str]:
    """The tiles of one zoom level (deepest by default) and the row scheme (`xyz` or `tms`)."""
    levels = [int(z.name) for z in _digit_dirs(path) if is_xyz_level(z)]
    if not levels:
        raise DataError(f"{path}: no z/x/y.png tiles found")
    z = max(levels) if zoom is None else zoom
    if z not in levels:
        raise UsageError(f"--zoom {zoom}: {path} has zoom levels {', '.join(map(str, levels))}")
    recs = [
        Record(str(f))
        for x in _digit_dirs(path / str(z))
        for f in sorted(x.iterdir())
        if f.suffix.lower() in TILE_SUFFIXES and f.stem.isdigit()
    ]
    scheme = "tms" if (path / "tilemapresource.xml").is_file() else "xyz"
    return recs, z, scheme


def is_xyz_level(z: Path) -> bool:
    return any(f.suffix.lower() in TILE_SUFFIXES for x in _digit_dirs(z)[:2] for f in x.iterdir())


def _has_world_file(p: Path) -> bool:
    return any(p.with_suffix(s).is_file() for s in WORLD_FILES) or Path(f"{p}.aux.xml").is_file()


def _tile_files(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def is_tile_folder(path: Path) -> bool:
    """A `.vrt` mosaic, images with world files, or GeoTIFFs on one pixel grid (gdal_retile output)."""
    if any(path.glob("*.vrt")):
        return True
    files = _tile_files(path)
    if any(p.suffix.lower() in TILE_SUFFIXES and _has_world_file(p) for p in files[:20]):
        return True
    tifs = [p for p in files if p.suffix.lower() in (".tif", ".tiff")][:20]
    if len(tifs) < 2:
        return False
    try:
        heads = [_header(p) for p in tifs]
    except DataError:
        return False
    return _same_grid(heads)


def scan_tiles(path: Path) -> list[Record]:
    if path.is_file():
        return [Record(str(path))]
    vrts = sorted(path.glob("*.vrt"))
    if vrts:
        return [Record(str(p)) for p in vrts]
    return [Record(str(p)) for p in _tile_files(path)]


def _header(p: Path) -> dict:
    try:
        with rasterio.open(p) as src:
            return {
                "path": str(p),
                "crs": src.crs,
                "t": src.transform,
                "w": src.width,
                "h": src.height,
                "count": src.count,
                "dtype": src.dtypes[0],
                "desc": src.descriptions,
                "ci": src.colorinterp,
                "nodata": src.nodata,
            }
    except rasterio.errors.RasterioIOError as e:
        raise DataError(f"{p}: cannot be opened as a raster ({e})") from None


def _same_grid(heads: list[dict]) -> bool:
    h0 = heads[0]
    if h0["crs"] is None or h0["t"].is_identity:
        return False
    for h in heads:
        if h["crs"] != h0["crs"] or not np.allclose([h["t"].a, h["t"].e], [h0["t"].a, h0["t"].e]):
            return False
        dx, dy = (h["t"].c - h0["t"].c) / h0["t"].a, (h["t"].f - h0["t"].f) / h0["t"].e
        if abs(dx - round(dx)) > 1e-6 or abs(dy - round(dy)) > 1e-6:
            return False
    return True


def mosaic_vrt(tiles: list[Path], name: str) -> str:
    """VRT XML mosaicking georeferenced tiles that share one CRS, resolution and pixel grid."""
    heads = [_header(p) for p in tiles]
    h0 = heads[0]
    for h in heads:
        if h["crs"] is None or h["t"].is_identity:
            raise DataError(
                f"{h['path']}: tile without georeference (no CRS or world file); cannot place it in the mosaic of {name}"
            )
        for key in ("count", "dtype"):
            if h[key] != h0[key]:
                raise DataError(
                    f"{h['path']}: {key} {h[key]} differs from {h0['path']} ({h0[key]})"
                )
    if not _same_grid(heads):
        raise DataError(
            f"{name}: tiles are not on one pixel grid (CRS, resolution or alignment differ)"
        )
    res_x, res_y = h0["t"].a, h0["t"].e
    left = min(h["t"].c for h in heads)
    top = max(h["t"].f for h in heads)
    right = max(h["t"].c + res_x * h["w"] for h in heads)
    bottom = min(h["t"].f + res_y * h["h"] for h in heads)
    width, height = round((right - left) / res_x), round((bottom - top) / res_y)
    placed = [
        (
            h["path"],
            round((h["t"].c - left) / res_x),
            round((h["t"].f - top) / res_y),
            h["w"],
            h["h"],
        )
        for h in heads
    ]
    return vrt_xml(
        placed, width, height, h0["crs"].to_wkt(), Affine(res_x, 0, left, 0, res_y, top), h0
    )


def xyz_mosaic(tiles: list[Path], zoom: int, scheme: str) -> str:
    """VRT XML of the z/x/y tiles of one zoom level in EPSG:3857."""
    xy = [(int(p.parent.name), int(p.stem)) for p in tiles]
    n = 2**zoom
    if scheme == "tms":  # TMS counts rows from the south
        xy = [(x, n - 1 - y) for x, y in xy]
    h0 = _header(tiles[0])
    ts = h0["w"]
    x0, x1 = min(x for x, _ in xy), max(x for x, _ in xy)
    y0, y1 = min(y for _, y in xy), max(y for _, y in xy)
    tile_m = 2 * WEB_MERCATOR_HALF / n
    res = tile_m / ts
    transform = Affine(
        res, 0, -WEB_MERCATOR_HALF + x0 * tile_m, 0, -res, WEB_MERCATOR_HALF - y0 * tile_m
    )
    placed = [
        (str(p), (x - x0) * ts, (y - y0) * ts, ts, ts) for p, (x, y) in zip(tiles, xy, strict=True)
    ]
    crs = rasterio.crs.CRS.from_epsg(3857).to_wkt()
    return vrt_xml(placed, (x1 - x0 + 1) * ts, (y1 - y0 + 1) * ts, crs, transform, h0)


def vrt_xml(
    placed: list[tuple[str, int, int, int, int]],
    width: int,
    height: int,
    crs_wkt: str,
    transform: Affine,
    h0: dict,
) -> str:
    """A GDAL VRT document placing each (path, col, row, w, h) source in a width x height mosaic."""
    gt = ",".join(repr(float(v)) for v in transform.to_gdal())
    dtype = _GDAL_TYPES.get(h0["dtype"])
    if dtype is None:
        raise DataError(f"{h0['path']}: dtype {h0['dtype']} not supported in a tile mosaic")
    bands = []
    for b in range(1, h0["count"] + 1):
        desc = h0["desc"][b - 1] or ""
        ci = h0["ci"][b - 1].name.capitalize()
        nodata = f"<NoDataValue>{h0['nodata']}</NoDataValue>" if h0["nodata"] is not None else ""
        sources = "".join(
            f'<SimpleSource><SourceFilename relativeToVRT="0">{escape(p)}</SourceFilename><SourceBand>{b}</SourceBand>'
            f'<SrcRect xOff="0" yOff="0" xSize="{w}" ySize="{h}"/><DstRect xOff="{c}" yOff="{r}" xSize="{w}" ySize="{h}"/></SimpleSource>'
            for p, c, r, w, h in placed
        )
        bands.append(
            f'<VRTRasterBand dataType="{dtype}" band="{b}"><Description>{escape(desc)}</Description>'
            f"<ColorInterp>{ci}</ColorInterp>{nodata}{sources}</VRTRasterBand>"
        )
    return (
        f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}"><SRS>{escape(crs_wkt)}</SRS>'
        f"<GeoTransform>{gt}</GeoTransform>{''.join(bands)}</VRTDataset>"
    )


def tile_bounds_3857(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """(left, bottom, right, top) of XYZ tile z/x/y in EPSG:3857 metres."""
    tile_m = 2 * WEB_MERCATOR_HALF / 2**z
    left, top = -WEB_MERCATOR_HALF + x * tile_m, WEB_MERCATOR_HALF - y * tile_m
    return (left, top - tile_m, left + tile_m, top)


def lonlat_to_tile(lon: float, lat: float, z: int) -> tuple[int, int]:
    """The XYZ tile (x, y) holding a lon/lat point at zoom z (slippy-map formula)."""
    n = 2**z
    x = int((lon + 180.0) / 360.0 * n)
    lat_r = math.radians(lat)
    y = int((1.0 - math.asinh(math.tan(lat_r)) / math.pi) / 2.0 * n)
    return x, y


def _scan_tile_format(src: Source) -> Catalog:
    path = src.root if src.root.is_file() else src.inner
    return Catalog(src.root, "tiles", scan_tiles(path), kind="rasters")


def _scan_xyz_format(src: Source) -> Catalog:
    recs, z, scheme = scan_xyz(src.inner, src.zoom)
    return Catalog(src.root, "xyz", recs, kind="rasters", notes={"zoom": z, "scheme": scheme})


def _tiles_mosaic(catalog: Catalog, selection):
    """A tile folder as one VRT mosaic (a `.vrt` given or found is read as it is)."""
    if catalog.records[0].path.lower().endswith(".vrt"):
        return None
    paths = [Path(r.path) for r in catalog.records]
    name = f"{catalog.root} (mosaic of {len(paths)} tiles)"
    return StackedRaster(mosaic_vrt(paths, name), selection, name=name)


def _xyz_mosaic(catalog: Catalog, selection):
    paths = [Path(r.path) for r in catalog.records]
    xml = xyz_mosaic(paths, catalog.notes["zoom"], catalog.notes["scheme"])
    return StackedRaster(
        xml, selection, name=f"{catalog.root} (zoom {catalog.notes['zoom']}, {len(paths)} tiles)"
    )


TILES = Format(
    "tiles",
    lambda s: (
        (s.root.is_file() and s.root.suffix.lower() == ".vrt")
        or (s.inner.is_dir() and is_tile_folder(s.inner))
    ),
    _scan_tile_format,
    kind="rasters",
    mosaic=_tiles_mosaic,
    describe="georeferenced tiles or a .vrt, read as one mosaic",
)
XYZ = Format(
    "xyz",
    lambda s: s.inner.is_dir() and is_xyz(s.inner),
    _scan_xyz_format,
    kind="rasters",
    mosaic=_xyz_mosaic,
    describe="an XYZ/TMS tile directory z/x/y.png",
)
