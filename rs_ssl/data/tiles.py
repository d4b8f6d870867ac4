"""QGIS-exported tile folders, read as one mosaic through a GDAL VRT.

(a) Georeferenced tiles (GeoTIFF, or PNG/JPG with `.wld`/`.pgw`/`.aux.xml` sidecars, as written by
QGIS "Save Raster Layer As" with tiling or `gdal_retile.py`): each tile is one record (`manifest`
counts them), and the whole is read as one surface: the `.vrt` written beside them (or given) when
its tiles agree, else a VRT mosaic built in memory from the tiles' own georeference. Tiles whose
band count, dtype, CRS or pixel grid differ from the others are an error naming the tile, or with
`--skip-bad` left out of the mosaic and counted.
(b) XYZ/TMS directories `z/x/y.png` ("Generate XYZ tiles (Directory)", `gdal2tiles.py`): one zoom
level (`--zoom`, default the deepest) georeferenced in EPSG:3857 from z/x/y; `tilemapresource.xml`
(gdal2tiles) marks the TMS row order, `--format tms` names it for trees without it (QGIS's
"TMS convention"). The alpha band is a validity mask, not a band: transparent pixels and missing
tiles are nodata, and a random patch mostly transparent is redrawn.
"""

from __future__ import annotations

import math
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import rasterio
from rasterio.transform import Affine

from rs_ssl.data.base import IMAGE_SUFFIXES, Catalog, Format, Record, Source
from rs_ssl.data.readers import StackedRaster, alpha_index, crs_name
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


def scan_xyz(
    path: Path, zoom: int | None, scheme: str | None = None
) -> tuple[list[Record], int, str]:
    """The tiles of one zoom level (deepest by default) and the row scheme (`xyz` or `tms`; from
    `tilemapresource.xml` unless `scheme` names it)."""
    levels = [int(z.name) for z in _digit_dirs(path) if is_xyz_level(z)]
    if not levels:
        raise DataError(f"{path}: no z/x/y.png tiles found")
    z = max(levels) if zoom is None else zoom
    if z not in levels:
        raise UsageError(
            f"--zoom {zoom}: {path} has no tiles at zoom {zoom}; its zoom levels are "
            f"{', '.join(map(str, levels))}"
        )
    n = 2**z
    recs = []
    for x in _digit_dirs(path / str(z)):
        for f in sorted(x.iterdir(), key=lambda f: (len(f.stem), f.stem)):
            if f.suffix.lower() in TILE_SUFFIXES and f.stem.isdigit():
                if int(x.name) >= n or int(f.stem) >= n:
                    raise DataError(
                        f"{f}: tile {x.name}/{f.stem} lies outside zoom {z} (0..{n - 1}); "
                        "is this a z/x/y tile tree?"
                    )
                recs.append(Record(str(f)))
    scheme = scheme or ("tms" if (path / "tilemapresource.xml").is_file() else "xyz")
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


def vrt_sources(vrt: Path) -> list[Path]:
    """The files a `.vrt` mosaics (each once, in the order of its first band)."""
    import xml.etree.ElementTree as ET

    try:
        root = ET.parse(vrt).getroot()
    except (ET.ParseError, OSError) as e:
        raise DataError(f"{vrt}: cannot be read as a VRT ({e})") from None
    out: list[Path] = []
    for el in root.iter("SourceFilename"):
        p = Path(el.text or "")
        if el.get("relativeToVRT") == "1" or not p.is_absolute():
            p = vrt.parent / p
        if p not in out:
            out.append(p)
    return out


def scan_tiles(path: Path) -> tuple[list[Record], Path | None]:
    """One record per tile, and the `.vrt` mosaicking them (given, or found beside them), if any."""
    vrt = path if path.is_file() else next(iter(sorted(path.glob("*.vrt"))), None)
    if vrt is None:
        return [Record(str(p)) for p in _tile_files(path)], None
    tiles = vrt_sources(vrt)
    missing = [p for p in tiles if not p.is_file()]
    if missing:
        raise DataError(
            f"{vrt}: its tile {missing[0]} is missing"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
            + "; restore the tiles or rewrite the VRT (gdalbuildvrt)"
        )
    return [Record(str(p)) for p in tiles], vrt


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


def tile_problem(h: dict, h0: dict) -> str | None:
    """Why tile `h` cannot join the mosaic of tiles like `h0` (the most common kind), or None."""
    if h["crs"] is None or h["t"].is_identity:
        return "tile without georeference (no CRS or world file)"
    what = {"count": "band count", "dtype": "dtype", "crs": "CRS"}
    for key in ("count", "dtype", "crs"):
        if h[key] != h0[key]:
            v, v0 = (crs_name(x[key]) if key == "crs" else x[key] for x in (h, h0))
            return f"{what[key]} {v} differs from the other tiles' ({v0}, e.g. {h0['path']})"
    if not _same_grid([h0, h]):
        return f"not on the pixel grid of the other tiles (resolution or alignment differ from {h0['path']})"
    return None


def check_tiles(tiles: list[Path], name: str, skip_bad: bool) -> tuple[list[dict], list[str]]:
    """Headers of the tiles that fit one mosaic, and (with skip_bad) why the others were left out."""
    from collections import Counter

    heads, skipped = [], []
    for p in tiles:
        try:
            heads.append(_header(p))
        except DataError as e:
            if not skip_bad:
                raise
            skipped.append(str(e))
    if not heads:
        raise DataError(f"{name}: no readable tile ({len(skipped)} skipped)")

    def kind(h):
        return (h["count"], h["dtype"], crs_name(h["crs"]), round(h["t"].a, 9), round(h["t"].e, 9))

    common = Counter(kind(h) for h in heads).most_common(1)[0][0]
    h0 = next(h for h in heads if kind(h) == common)
    good = []
    for h in heads:
        problem = tile_problem(h, h0)
        if problem is None:
            good.append(h)
        elif not skip_bad:
            raise DataError(
                f"{h['path']}: {problem}; cannot place it in the mosaic of {name}: fix or remove "
                "the tile, or pass --skip-bad to leave it out"
            )
        else:
            skipped.append(f"{h['path']}: {problem}")
    return good, skipped


def mosaic_vrt(tiles: list[Path] | list[dict], name: str) -> str:
    """VRT XML mosaicking georeferenced tiles (paths, or headers from `check_tiles`) that share one
    CRS, resolution and pixel grid."""
    heads = tiles if tiles and isinstance(tiles[0], dict) else check_tiles(tiles, name, False)[0]
    h0 = heads[0]
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
    n = 2**zoom
    xy = [xyz_index(p, zoom, scheme) for p in tiles]
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
    width, height = (x1 - x0 + 1) * ts, (y1 - y0 + 1) * ts
    no_alpha = alpha_index(h0["ci"]) is None  # JPEG tiles: missing tiles still masked
    return vrt_xml(placed, width, height, crs, transform, h0, coverage_alpha=no_alpha)


def vrt_xml(
    placed: list[tuple[str, int, int, int, int]],
    width: int,
    height: int,
    crs_wkt: str,
    transform: Affine,
    h0: dict,
    coverage_alpha: bool = False,
) -> str:
    """A GDAL VRT document placing each (path, col, row, w, h) source in a width x height mosaic.

    `coverage_alpha` adds an alpha band that is opaque where a tile lies and transparent in the
    holes (XYZ trees of JPEG tiles, which carry no alpha of their own)."""
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
    if coverage_alpha:  # band 1 of each tile scaled to a constant 255: opaque wherever a tile is
        sources = "".join(
            f'<ComplexSource><SourceFilename relativeToVRT="0">{escape(p)}</SourceFilename><SourceBand>1</SourceBand>'
            f'<SrcRect xOff="0" yOff="0" xSize="{w}" ySize="{h}"/><DstRect xOff="{c}" yOff="{r}" xSize="{w}" ySize="{h}"/>'
            "<ScaleOffset>255</ScaleOffset><ScaleRatio>0</ScaleRatio></ComplexSource>"
            for p, c, r, w, h in placed
        )
        bands.append(
            f'<VRTRasterBand dataType="{dtype}" band="{h0["count"] + 1}">'
            f"<ColorInterp>Alpha</ColorInterp>{sources}</VRTRasterBand>"
        )
    return (
        f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}"><SRS>{escape(crs_wkt)}</SRS>'
        f"<GeoTransform>{gt}</GeoTransform>{''.join(bands)}</VRTDataset>"
    )


def xyz_index(tile: Path, zoom: int, scheme: str) -> tuple[int, int]:
    """(x, y) of a tile file `.../x/y.png` in XYZ numbering (TMS counts rows from the south)."""
    x, y = int(tile.parent.name), int(tile.stem)
    return (x, 2**zoom - 1 - y) if scheme == "tms" else (x, y)


def xyz_georef(catalog: Catalog, r: Record) -> dict:
    """Manifest facts of one XYZ tile: EPSG:3857 and its bounds from z/x/y; bands without alpha."""
    z = catalog.notes["zoom"]
    x, y = xyz_index(Path(r.path), z, catalog.notes["scheme"])
    return {"crs": "EPSG:3857", "bounds": list(tile_bounds_3857(z, x, y))}


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
    records, vrt = scan_tiles(path)
    return Catalog(
        src.root, "tiles", records, kind="rasters", notes={"vrt": str(vrt)} if vrt else {}
    )


def _scan_xyz(scheme: str | None):
    def scan(src: Source) -> Catalog:
        recs, z, found = scan_xyz(src.inner, src.zoom, scheme)
        xy = [xyz_index(Path(r.path), z, found) for r in recs]
        box = (max(x for x, _ in xy) - min(x for x, _ in xy) + 1) * (
            max(y for _, y in xy) - min(y for _, y in xy) + 1
        )
        notes = {"zoom": z, "scheme": found, "missing_tiles": box - len(recs)}
        return Catalog(src.root, "xyz", recs, kind="rasters", notes=notes)

    return scan


def _tiles_mosaic(catalog: Catalog, selection, skip_bad: bool = False):
    """A tile folder as one VRT mosaic: its `.vrt` as it is when every tile fits, else one built
    from the tiles that do (with skip_bad; the others are counted)."""
    paths = [Path(r.path) for r in catalog.records]
    name = f"{catalog.root} (mosaic of {len(paths)} tiles)"
    heads, skipped = check_tiles(paths, name, skip_bad)
    vrt = catalog.notes.get("vrt")
    if vrt and not skipped:
        return StackedRaster(vrt, selection, name=f"{vrt} ({len(paths)} tiles)"), []
    name = f"{catalog.root} (mosaic of {len(heads)} tiles)"
    return StackedRaster(mosaic_vrt(heads, name), selection, name=name), skipped


def _xyz_mosaic(catalog: Catalog, selection, skip_bad: bool = False):
    """The tiles of one zoom level as one EPSG:3857 mosaic; a tile unreadable or unlike the first
    (size, band count, dtype) is an error naming it, or with skip_bad left out (a hole) and counted."""
    paths, skipped = [], []
    h0 = None
    for r in catalog.records:
        try:
            h = _header(Path(r.path))
            h0 = h0 or h
            for key, what in (
                ("w", "width"),
                ("h", "height"),
                ("count", "band count"),
                ("dtype", "dtype"),
            ):
                if h[key] != h0[key]:
                    raise DataError(
                        f"{r.path}: {what} {h[key]} differs from the other tiles' ({h0[key]}, "
                        f"e.g. {h0['path']}); fix or remove the tile"
                    )
            paths.append(Path(r.path))
        except DataError as e:
            if not skip_bad:
                raise DataError(f"{e} (or pass --skip-bad to leave it out)") from None
            skipped.append(str(e))
    if not paths:
        raise DataError(f"{catalog.root}: no readable tile ({len(skipped)} skipped)")
    xml = xyz_mosaic(paths, catalog.notes["zoom"], catalog.notes["scheme"])
    name = f"{catalog.root} (zoom {catalog.notes['zoom']}, {len(paths)} tiles)"
    return StackedRaster(xml, selection, name=name), skipped


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


def _xyz_format(name: str, detect, scheme: str | None, describe: str) -> Format:
    """An XYZ/TMS directory format; `scheme`: the row order (None: from tilemapresource.xml)."""
    scan = _scan_xyz(scheme)
    return Format(
        name, detect, scan, kind="rasters", mosaic=_xyz_mosaic, georef=xyz_georef, describe=describe
    )


def _is_xyz_source(src: Source) -> bool:
    return src.inner.is_dir() and is_xyz(src.inner)


XYZ = _xyz_format("xyz", _is_xyz_source, None, "an XYZ/TMS tile directory z/x/y.png")
# Never detected: names the TMS row order of a tree without tilemapresource.xml (QGIS's option).
TMS = _xyz_format(
    "tms", lambda s: False, "tms", "z/x/y.png tiles in TMS row order (rows from the south)"
)
