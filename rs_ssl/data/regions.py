"""`--region`: a named region (data_manifests/regions/*.geojson), any vector file, or a lon/lat bbox."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rasterio.features import rasterize
from rasterio.warp import transform_bounds, transform_geom
from shapely.geometry import box, mapping
from shapely.ops import unary_union

from rs_ssl.errors import DataError, UsageError
from rs_ssl.manifests import manifest_path


def region_names() -> list[str]:
    return sorted(p.stem for p in manifest_path("regions").glob("*.geojson"))


def load_region(spec: str):
    """Return the region as one shapely geometry in EPSG:4326 (lon/lat)."""
    parts = spec.split(",")
    if len(parts) == 4:
        try:
            minx, miny, maxx, maxy = (float(v) for v in parts)
        except ValueError:
            raise UsageError(
                f"--region {spec}: a bbox needs four numbers minx,miny,maxx,maxy (lon/lat)"
            ) from None
        if not (-180 <= minx < maxx <= 180 and -90 <= miny < maxy <= 90):
            raise UsageError(
                f"--region {spec}: not a lon/lat bbox (need -180<=minx<maxx<=180, -90<=miny<maxy<=90)"
            )
        return box(minx, miny, maxx, maxy)
    named = manifest_path("regions", f"{spec}.geojson")
    path = named if named.is_file() else Path(spec)
    if not path.exists():
        raise UsageError(
            f"--region {spec}: not a known region ({', '.join(region_names())}), an existing vector file, "
            "or a bbox minx,miny,maxx,maxy"
        )
    from rs_ssl.data.vectors import read_vector

    return unary_union(read_vector(path, "--region").to_crs(4326).geometry.values)


def allowed_corners(raster, region_4326, patch: int) -> np.ndarray:
    """Boolean (rows, cols) mask of top-left corners whose whole patch lies inside the region."""
    g = raster.grid
    geom = transform_geom("EPSG:4326", g.crs, mapping(region_4326))
    inside = rasterize(
        [(geom, 1)], out_shape=(g.height, g.width), transform=g.transform, fill=0, dtype="uint8"
    )
    # Integral image: the count of inside pixels in every patch window in O(1) each.
    ii = np.pad(inside.astype(np.int64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    p = patch
    sums = ii[p:, p:] - ii[:-p, p:] - ii[p:, :-p] + ii[:-p, :-p]
    return sums == p * p


def restrict_to_region(rasters: list, spec: str, patch: int) -> list[np.ndarray]:
    """Masks of allowed patch corners per raster; fails with both extents when nothing is inside."""
    region = load_region(spec)
    masks = [allowed_corners(r, region, patch) for r in rasters]
    if not any(m.any() for m in masks):
        rb = tuple(round(v, 3) for v in region.bounds)
        data_bounds = []
        for r in rasters[:5]:
            b = transform_bounds(r.grid.crs, "EPSG:4326", *r.grid.bounds)
            data_bounds.append(tuple(round(v, 3) for v in b))
        more = f" (+{len(rasters) - 5} more)" if len(rasters) > 5 else ""
        raise DataError(
            f"--region {spec}: no {patch}x{patch} px patch of the data lies inside it; region bounds "
            f"(lon/lat) {rb}, data bounds {', '.join(map(str, data_bounds))}{more}"
        )
    return masks


def records_in_region(catalog, records: list, selection, spec: str) -> list:
    """Samples whose whole footprint lies inside the region; fails with both extents when none does."""
    from rs_ssl.data.datasets import open_record

    region = load_region(spec)
    kept, extents = [], []
    for r in records:
        g = open_record(catalog, r, selection).grid
        if g.crs is None:
            raise DataError(f"{r.path}: no CRS; --region needs georeferenced samples")
        b = transform_bounds(g.crs, "EPSG:4326", *g.bounds)
        extents.append(b)
        if region.contains(box(*b)):
            kept.append(r)
    if not kept:
        rb = tuple(round(v, 3) for v in region.bounds)
        data = tuple(
            round(v, 3)
            for v in (
                min(e[0] for e in extents),
                min(e[1] for e in extents),
                max(e[2] for e in extents),
                max(e[3] for e in extents),
            )
        )
        raise DataError(
            f"--region {spec}: no sample of {catalog.root} lies inside it; region bounds (lon/lat) {rb}, data bounds {data}"
        )
    return kept
