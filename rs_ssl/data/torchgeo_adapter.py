"""Our georeferenced rasters as a TorchGeo `GeoDataset`, so TorchGeo's samplers can drive them.

    from torchgeo.samplers import GridGeoSampler, RandomGeoSampler
    ds = torchgeo_dataset("../shared/data/s2_tile_folder", resolve_bands(12), crs="EPSG:32633")
    for query in RandomGeoSampler(ds, size=120, length=100):
        ds[query]["image"]  # float32 (12, 120, 120) DN, bands in registry order

Items are `{"image": float32 (C, h, w), "crs", "bounds"}` like TorchGeo's RasterDataset (0.8 API:
`__getitem__` takes a GeoSlice `(x, y, t)` of slices whose steps are the resolution). Pixels come
from our readers (`Sentinel2Scene`, `StackedRaster`, `ZarrRaster`), so a query returns exactly our
own window read of the same bounds. Rasters are not reprojected: the dataset holds the rasters of
one CRS (others are listed in `skipped`) and queries must use their resolution. The fast path of
`rs-ssl pretrain` stays our own `RandomPatchDataset`; this adapter is for TorchGeo pipelines.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from geopandas import GeoDataFrame
from rasterio.crs import CRS
from rasterio.windows import Window
from shapely.geometry import box
from torchgeo.datasets import GeoDataset
from torchgeo.datasets.utils import GeoSlice

from rs_ssl.bands import BandSelection
from rs_ssl.errors import DataError


class TorchGeoRasters(GeoDataset):
    """Windowed rasters of one CRS and resolution as a GeoDataset (mosaicked where they meet)."""

    def __init__(
        self,
        rasters: Sequence,
        band_names: Sequence[str],
        crs: str | CRS | None = None,
        transforms: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ):
        if not rasters:
            raise DataError("no raster to index")
        georef = [r for r in rasters if r.grid.crs is not None]
        if not georef:
            raise DataError(
                f"{rasters[0].name}: no CRS; TorchGeo samplers need georeferenced rasters"
            )
        found = sorted({r.grid.crs.to_string() for r in georef})
        if crs is None and len(found) > 1:
            raise DataError(
                f"rasters in {len(found)} CRSs ({', '.join(found)}); pick one with crs=..., "
                "TorchGeo indexes one CRS and this adapter does not reproject"
            )
        self._crs = CRS.from_user_input(crs) if crs is not None else georef[0].grid.crs
        self.rasters = [r for r in georef if r.grid.crs == self._crs]
        self.skipped = [r.name for r in rasters if r not in self.rasters]
        if not self.rasters:
            raise DataError(f"no raster in {self._crs} (the rasters are in {', '.join(found)})")
        res = {(r.grid.transform.a, -r.grid.transform.e) for r in self.rasters}
        if len(res) > 1:
            raise DataError(
                f"rasters of different resolutions {sorted(res)} in one CRS; convert them to one grid first"
            )
        self._res = res.pop()
        self.band_names = tuple(band_names)
        self.transforms = transforms
        n = len(self.rasters)
        times = pd.IntervalIndex.from_tuples(
            [(pd.Timestamp.min, pd.Timestamp.max)] * n, closed="both", name="datetime"
        )
        self.index = GeoDataFrame(
            {"raster": range(n)},
            index=times,
            geometry=[box(*r.grid.bounds) for r in self.rasters],
            crs=self._crs,
        )
        self._boxes = np.array([r.grid.bounds for r in self.rasters], dtype=np.float64)

    @property
    def crs(self) -> CRS:
        return self._crs

    @crs.setter
    def crs(self, new_crs: str | CRS) -> None:
        # GeoDataset's setter reprojects the index only; our pixels would stay in the old CRS.
        if CRS.from_user_input(new_crs) != self._crs:
            raise DataError(
                f"cannot reproject to {new_crs}: this adapter reads native pixels in {self._crs} only"
            )

    def overlaps(self, query: GeoSlice) -> bool:
        """Whether a query's box overlaps a raster (GridGeoSampler's float arithmetic can add a row
        or column of cells just outside the data, which `__getitem__` refuses as TorchGeo does)."""
        x, y = query[0], query[1]
        b = self._boxes
        return bool(
            (
                (b[:, 0] < x.stop) & (b[:, 2] > x.start) & (b[:, 1] < y.stop) & (b[:, 3] > y.start)
            ).any()
        )

    def __getitem__(self, query: GeoSlice) -> dict[str, Any]:
        x, y, t = self._disambiguate_slice(query)
        xres, yres = self._res
        if not (np.isclose(x.step, xres) and np.isclose(y.step, yres)):
            raise DataError(
                f"query resolution ({x.step}, {y.step}) differs from the rasters' ({xres}, {yres}); "
                "this adapter reads native pixels only"
            )
        w, h = round((x.stop - x.start) / xres), round((y.stop - y.start) / yres)
        # Every raster spans all time (no dates), so only the footprints decide; a plain numpy test
        # instead of the GeoDataFrame query, which costs more than reading a small patch.
        b = self._boxes
        hits = np.flatnonzero(
            (b[:, 0] < x.stop) & (b[:, 2] > x.start) & (b[:, 1] < y.stop) & (b[:, 3] > y.start)
        )
        if not len(hits):
            raise IndexError(f"query {query} not found in index with bounds {self.bounds}")
        out = np.zeros((len(self.band_names), h, w), dtype=np.float32)
        # The first raster wins where rasters overlap (rasterio.merge's default), so paste in reverse.
        for k in hits[::-1]:
            r = self.rasters[k]
            col0 = round((x.start - r.grid.transform.c) / xres)
            row0 = round((r.grid.transform.f - y.stop) / yres)
            c0, c1 = max(col0, 0), min(col0 + w, r.grid.width)
            r0, r1 = max(row0, 0), min(row0 + h, r.grid.height)
            if c1 > c0 and r1 > r0:
                win = Window(c0, r0, c1 - c0, r1 - r0)
                # XYZ tiles: transparent pixels read as 0 (nodata), as rs-ssl's own patches
                masked = getattr(r, "alpha", None) is not None
                out[:, r0 - row0 : r1 - row0, c0 - col0 : c1 - col0] = (
                    r.read_masked(win)[0] if masked else r.read(win)
                )
        sample = {"image": torch.from_numpy(out), "crs": self.crs, "bounds": (x, y, t)}
        return self.transforms(sample) if self.transforms is not None else sample


def torchgeo_dataset(
    data: str | Path | None,
    selection: BandSelection,
    *,
    fmt: str = "auto",
    crs: str | CRS | None = None,
    skip_bad: bool = False,
) -> TorchGeoRasters:
    """`--data` (any georeferenced raster format; None: the embedded sample) as a TorchGeo GeoDataset."""
    from rs_ssl.data import open_rasters

    rasters, _ = open_rasters(data, fmt, selection, skip_bad=skip_bad)
    return TorchGeoRasters(rasters, selection.names, crs=crs)
