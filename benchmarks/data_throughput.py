"""Patches per second per core: per-band GeoTIFFs vs their zarr conversion vs TorchGeo's RasterDataset.

Same data for all: the 13-band Sentinel-2 L1C scene (one GeoTIFF per band, ../shared/data/
sentinel2_l1c_scene, a 959 x 958 px common grid at 10 m), 120 x 120 px patches, one process, one thread; the zarr
store is what `rs-ssl convert --size 120` writes (chunks (13, 120, 120), Blosc-LZ4). The readers
take turns in `--rounds` rounds of n/rounds reads each, so that load from other processes on a
shared core falls on all of them alike.

    taskset -c 0 .venv/bin/python benchmarks/data_throughput.py [--scene DIR] [--n 300] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("GDAL_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torchgeo  # noqa: E402

torch.set_num_threads(1)
PATCH = 120
Reader = Callable[[int], object]  # reads patch i (0 is the warm-up read)


def ours(scene: Path, n: int, tmp: Path) -> dict[str, Reader]:
    import zarr

    from rs_ssl.bands import resolve_bands
    from rs_ssl.data import open_rasters, pretrain_dataset
    from rs_ssl.data.convert import convert
    from rs_ssl.data.patches import GridPatchDataset, RandomPatchDataset
    from rs_ssl.data.zarr_store import write_samples

    sel = resolve_bands(13)
    rasters, _ = open_rasters(scene, "sentinel2", sel)
    tif = RandomPatchDataset(rasters, PATCH, n + 1, seed=0)
    store = tmp / "scene.zarr"
    convert(scene, "sentinel2", sel, store, PATCH)  # (band, y, x), chunks (13, 120, 120), Blosc-LZ4
    zr, _ = open_rasters(store, "zarr", sel)
    anywhere = RandomPatchDataset(zr, PATCH, n + 1, seed=0)
    # What `rs-ssl pretrain --data scene.zarr` uses: random chunk-aligned windows.
    aligned, _ = pretrain_dataset(store, "zarr", sel, patch=PATCH, samples_per_epoch=n + 1, seed=0)
    grid = GridPatchDataset(rasters, PATCH)
    stack = tmp / "patches.zarr"
    patches = ((grid[i]["image"].numpy(), {}) for i in range(len(grid)))
    write_samples(stack, patches, len(grid), len(sel), PATCH, sel, "uint16")
    samples, _ = pretrain_dataset(stack, "zarr", sel, patch=PATCH, samples_per_epoch=1)
    order = np.random.default_rng(0).integers(len(samples), size=n + 1)
    # The same store read by zarr-python's own slicing, for comparison with the figures.
    arr = zarr.open_group(str(store), mode="r")["data"]
    pos = [anywhere.position(i)[1:] for i in range(n + 1)]
    cpos = [aligned.position(i)[1:] for i in range(n + 1)]

    def zarr_python(corners):
        return lambda i: np.asarray(
            arr[:, corners[i][0] : corners[i][0] + PATCH, corners[i][1] : corners[i][1] + PATCH],
            dtype=np.float32,
        )

    return {
        "rs_ssl geotiff (per-band files, WarpedVRT), random": lambda i: tif[i],
        "rs_ssl zarr raster, random windows (<= 4 chunks each)": lambda i: anywhere[i],
        "rs_ssl zarr raster, random chunk-aligned windows (pretrain default)": lambda i: aligned[i],
        "rs_ssl zarr patch stack (sample, band, y, x), random samples": lambda i: samples[
            int(order[i])
        ],
        "zarr-python 3 slicing of the same store, random windows": zarr_python(pos),
        "zarr-python 3 slicing of the same store, chunk-aligned": zarr_python(cpos),
    }


def adapter(scene: Path, n: int) -> Reader:
    from torchgeo.samplers import RandomGeoSampler

    from rs_ssl.bands import resolve_bands
    from rs_ssl.data.torchgeo_adapter import torchgeo_dataset

    ds = torchgeo_dataset(scene, resolve_bands(13), fmt="sentinel2")
    queries = list(RandomGeoSampler(ds, size=PATCH, length=n + 1))
    return lambda i: ds[queries[i]]["image"]


def torchgeo_reader(scene: Path, n: int) -> Reader:
    from torchgeo.datasets import RasterDataset
    from torchgeo.samplers import RandomGeoSampler

    class Scene(RasterDataset):
        filename_glob = "s2_B02.tif"
        filename_regex = r"^s2_(?P<band>B[0-9A]{2})\.tif$"
        separate_files = True
        all_bands = (
            "B01",
            "B02",
            "B03",
            "B04",
            "B05",
            "B06",
            "B07",
            "B08",
            "B8A",
            "B09",
            "B10",
            "B11",
            "B12",
        )

    ds = Scene(paths=str(scene), res=10.0)
    queries = list(RandomGeoSampler(ds, size=PATCH, length=n + 1))
    return lambda i: ds[queries[i]]["image"]


def rates(readers: dict[str, Reader], n: int, rounds: int) -> dict[str, float]:
    """Patches/s of each reader: one warm-up read, then `rounds` interleaved turns of n // rounds reads."""
    per = n // rounds
    spent = dict.fromkeys(readers, 0.0)
    for fn in readers.values():
        fn(0)  # opens files, fills the caches of the first reads
    for r in range(rounds):
        for name, fn in readers.items():
            t0 = time.perf_counter()
            for i in range(1 + r * per, 1 + (r + 1) * per):
                fn(i)
            spent[name] += time.perf_counter() - t0
    return {name: per * rounds / t for name, t in spent.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--scene",
        default=str(
            Path(__file__).resolve().parents[2] / "shared" / "data" / "sentinel2_l1c_scene"
        ),
    )
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    scene = Path(args.scene)
    tg = f"torchgeo {torchgeo.__version__} RasterDataset + RandomGeoSampler"
    with tempfile.TemporaryDirectory() as tmp:
        readers = ours(scene, args.n, Path(tmp))
        readers["rs_ssl geotiff via TorchGeoRasters + RandomGeoSampler"] = adapter(scene, args.n)
        readers[tg] = torchgeo_reader(scene, args.n)
        result = rates(readers, args.n, args.rounds)
    base = result[tg]
    print(f"| reader ({PATCH}x{PATCH} px, 13 bands, 1 core) | patches/s | vs TorchGeo |")
    print("|---|---:|---:|")
    for k, v in result.items():
        print(f"| {k} | {v:,.0f} | {v / base:.1f}x |")


if __name__ == "__main__":
    main()
