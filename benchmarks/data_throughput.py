"""Patches per second per core: per-band GeoTIFFs vs their zarr conversion vs TorchGeo's RasterDataset.

Same data for all: the 13-band Sentinel-2 L1C scene (one GeoTIFF per band, ../shared/data/
sentinel2_l1c_scene, 960 x 960 px at 10 m), 120 x 120 px patches, one process, one thread.

    .venv/bin/python benchmarks/data_throughput.py [--scene DIR] [--n 300]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("GDAL_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)
PATCH = 120


def _rate(fn, n: int) -> float:
    fn(0)  # warm-up: opens files, fills caches of the first reads
    t0 = time.perf_counter()
    for i in range(1, n + 1):
        fn(i)
    return n / (time.perf_counter() - t0)


def ours(scene: Path, n: int, store: Path) -> dict[str, float]:
    from rasterio.windows import Window

    from rs_ssl.bands import resolve_bands
    from rs_ssl.data import open_rasters
    from rs_ssl.data.patches import RandomPatchDataset
    from rs_ssl.data.zarr_store import write_raster

    sel = resolve_bands(13)
    rasters, _ = open_rasters(scene, "sentinel2", sel)
    tif = RandomPatchDataset(rasters, PATCH, n + 1, seed=0)
    out = {"geotiff (per-band files, WarpedVRT), random": _rate(lambda i: tif[i], n)}
    write_raster(store, rasters[0], sel, PATCH, "uint16")
    zr, _ = open_rasters(store, "zarr", sel)
    zds = RandomPatchDataset(zr, PATCH, n + 1, seed=0)
    out["zarr chunks (13,120,120), random (unaligned)"] = _rate(lambda i: zds[i], n)
    g = zr[0].grid
    rng = np.random.default_rng(0)
    corners = [(int(rng.integers(g.height // PATCH)) * PATCH, int(rng.integers(g.width // PATCH)) * PATCH) for _ in range(n + 1)]
    out["zarr chunks (13,120,120), chunk-aligned"] = _rate(
        lambda i: torch.from_numpy(zr[0].read(Window(corners[i][1], corners[i][0], PATCH, PATCH))), n)
    return out


def torchgeo_rate(scene: Path, n: int) -> float:
    from torchgeo.datasets import RasterDataset
    from torchgeo.samplers import RandomGeoSampler

    class Scene(RasterDataset):
        filename_glob = "s2_B02.tif"
        filename_regex = r"^s2_(?P<band>B[0-9A]{2})\.tif$"
        separate_files = True
        all_bands = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")

    ds = Scene(paths=str(scene), res=10.0)
    sampler = RandomGeoSampler(ds, size=PATCH, length=n + 1)
    queries = list(sampler)
    return _rate(lambda i: ds[queries[i]]["image"], n)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scene", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "sentinel2_l1c_scene"))
    ap.add_argument("--n", type=int, default=300)
    args = ap.parse_args()
    scene = Path(args.scene)
    with tempfile.TemporaryDirectory() as tmp:
        rates = ours(scene, args.n, Path(tmp) / "scene.zarr")
    rates["torchgeo RasterDataset + RandomGeoSampler"] = torchgeo_rate(scene, args.n)
    base = rates["torchgeo RasterDataset + RandomGeoSampler"]
    print(f"| reader ({PATCH}x{PATCH} px, 13 bands, 1 core) | patches/s | vs TorchGeo |")
    print("|---|---:|---:|")
    for k, v in rates.items():
        print(f"| {k} | {v:,.0f} | {v / base:.1f}x |")


if __name__ == "__main__":
    main()
