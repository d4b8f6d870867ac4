"""Builders of the bad-data corpus (issue 9): corrupt inputs made from copies of the real samples.

Every builder writes into a given folder and returns the `--data` path to hand to the CLI. Pixels
come from `../shared/data` (real Sentinel-2 tiles and scene bands); where a builder has to write
new pixels it derives them from the real ones, so every band keeps its own distinct values.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import rasterio

TILES = ("patch_0.tif", "patch_1.tif")  # two real 12-band 256 px tiles of s2_tile_folder
NON_UTF8 = b"bad_\xff_B04.tif"  # a file name that is not valid UTF-8 (Linux allows any bytes)


def tile_folder(shared: Path, out: Path, names: tuple[str, ...] = TILES) -> Path:
    """A folder of real stacked 12-band GeoTIFFs (copies)."""
    out.mkdir(parents=True)
    for n in names:
        shutil.copyfile(shared / "s2_tile_folder" / n, out / n)
    return out


def rewrite_tile(
    src: Path, dst: Path, fn, dtype: str | None = None, bands: list[int] | None = None
) -> np.ndarray:
    """Write `fn(pixels)` of the real tile `src` to `dst` (optionally other dtype or a band subset)."""
    with rasterio.open(src) as s:
        idx = bands or list(range(1, s.count + 1))
        data = fn(s.read(idx))
        profile = s.profile | {"count": len(idx), "dtype": dtype or data.dtype.name, "nodata": None}
        desc = [s.descriptions[i - 1] for i in idx]
    with rasterio.open(dst, "w", **profile) as d:
        d.write(data.astype(profile["dtype"]))
        d.descriptions = desc
    return data


def scene(shared: Path, out: Path, prefix: str = "x") -> Path:
    """A per-band Sentinel-2 scene folder: `<prefix>_Bxx.tif` links to the 13 real band files."""
    out.mkdir(parents=True)
    for f in sorted((shared / "sentinel2_l1c_scene").glob("s2_B*.tif")):
        os.symlink(f, out / f"{prefix}_{f.name.split('_')[1]}")
    return out


def crop_band(src: Path, dst: Path, frac: float) -> None:
    """Write the top-left `frac` x `frac` part of a real band file: a band with another extent."""
    with rasterio.open(src) as s:
        h, w = int(s.height * frac), int(s.width * frac)
        data = s.read(window=rasterio.windows.Window(0, 0, w, h))
        profile = s.profile | {"width": w, "height": h}
    with rasterio.open(dst, "w", **profile) as d:
        d.write(data)


def truncate(path: Path, frac: float = 0.5) -> None:
    """Keep the first `frac` of a file's bytes (an interrupted download or copy)."""
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * frac)])


def scenes(shared: Path, out: Path, bad: str) -> Path:
    """A folder of two per-band scenes: one intact, one broken in the way `bad` names."""
    out.mkdir(parents=True)
    scene(shared, out / "good")
    s = scene(shared, out / "bad")
    real = shared / "sentinel2_l1c_scene"
    if bad == "zero_byte":
        (s / "x_B03.tif").unlink()
        (s / "x_B03.tif").write_bytes(b"")
    elif bad == "text_as_tif":
        (s / "x_B02.tif").unlink()
        (s / "x_B02.tif").write_text("<html>404 Not Found</html>\n")
    elif bad == "band_extent":
        (s / "x_B04.tif").unlink()
        crop_band(real / "s2_B04.tif", s / "x_B04.tif", 0.5)
    elif bad == "non_utf8_name":
        (s / "x_B04.tif").unlink()
        os.symlink(os.fsencode(real / "s2_B04.tif"), os.fsencode(s) + b"/" + NON_UTF8)
    else:
        raise ValueError(bad)
    return out
