"""A georeferenced raster file (GeoTIFF/COG, JPEG 2000, PNG/JPG), or a folder of GeoTIFFs, as rasters."""

from __future__ import annotations

from rs_ssl.data.base import IMAGE_SUFFIXES, Catalog, Format, Record, Source
from rs_ssl.data.roots import images_below

TIF_SUFFIXES = (".tif", ".tiff")


def _detect(src: Source) -> bool:
    if src.root.is_file():
        return src.root.suffix.lower() in IMAGE_SUFFIXES
    return src.inner.is_dir() and any(
        p.suffix.lower() in TIF_SUFFIXES and p.is_file() for p in src.inner.iterdir()
    )


def _scan(src: Source) -> Catalog:
    if src.root.is_file():
        files = [src.root]
    else:
        files = [p for p in images_below(src.inner) if p.suffix.lower() in TIF_SUFFIXES]
    return Catalog(src.root, "geotiff", [Record(str(p)) for p in files], kind="rasters")


FORMAT = Format(
    "geotiff",
    _detect,
    _scan,
    kind="rasters",
    describe="a raster file, or a folder of GeoTIFFs (searched recursively)",
)
