"""SSL4EO-S12: `<modality>/<location>/<date>/B*.tif` (+ `metadata.json`); dates of one location are a group.

Modalities: `s2c` (L1C, 13 bands), `s2a` (L2A, 12 bands), `s1` (SAR, not read here). Pointed at the
dataset root, the modality matching the band selection's sensor is read (s2_l1c -> s2c,
s2_l2a -> s2a; with `--bands auto`, s2c as TorchGeo's `SSL4EOS12` does); two dates of one location
can serve as a positive pair (`Record.group`). TorchGeo's copy has no `metadata.json` in the date
folders: a date folder is then recognised by its name (`20200323T162931_20200323T163750_T15QXA`).
"""

from __future__ import annotations

import re
from pathlib import Path

from rs_ssl.data.base import Catalog, Format, Record, Source
from rs_ssl.data.sentinel2 import band_files, is_band_folder
from rs_ssl.errors import DataError

MODALITY = {"s2_l1c": "s2c", "s2_l2a": "s2a"}
SENSOR = {v: k for k, v in MODALITY.items()}
# `<sensing start>_<product start>_T<tile>`, as Google Earth Engine names Sentinel-2 assets
_DATE = re.compile(r"^\d{8}T\d{6}_\d{8}T\d{6}_T\w{5}$")


def _is_date_folder(p: Path) -> bool:
    return ((p / "metadata.json").is_file() or bool(_DATE.match(p.name))) and is_band_folder(p)


def _dirs(p: Path, n: int | None = None) -> list[Path]:
    out = sorted(c for c in p.iterdir() if c.is_dir() and not c.name.startswith("."))
    return out[:n] if n else out


def _first_location(path: Path) -> Path | None:
    for loc in _dirs(path, 3):
        if any(_is_date_folder(d) for d in _dirs(loc, 3)):
            return loc
    return None


def is_ssl4eo(path: Path) -> bool:
    if any((path / m).is_dir() for m in (*MODALITY.values(), "s1")):
        return True
    return _first_location(path) is not None or any(_is_date_folder(d) for d in _dirs(path, 3))


def scan(path: Path, sensor: str | None = None) -> Catalog:
    root = path
    modalities = [m for m in MODALITY.values() if (path / m).is_dir()]
    if not modalities and (path / "s1").is_dir():
        raise DataError(
            f"{path}: SSL4EO-S12 root holding only s1 (Sentinel-1 SAR), which rs-ssl does not read; "
            "add s2c or s2a, or point --data at them"
        )
    if modalities:
        want = (
            MODALITY.get(sensor or "")
            if sensor
            else ("s2c" if "s2c" in modalities else modalities[0])
        )
        if want is None or want not in modalities:
            raise DataError(
                f"{path}: SSL4EO-S12 root with modalities {', '.join(modalities)}; select bands of "
                "s2_l1c (--bands 13, reads s2c) or s2_l2a (--bands 12, reads s2a), or point --data at one modality"
            )
        root = path / want
    if _first_location(root) is None and any(_is_date_folder(d) for d in _dirs(root)):
        locations = [root]  # pointed at one location
    else:
        locations = _dirs(root)
    recs = [
        Record(str(d), group=loc.name)
        for loc in locations
        for d in _dirs(loc)
        if _is_date_folder(d)
    ]
    return Catalog(
        path,
        "ssl4eo",
        recs,
        notes={"modality": root.name, "locations": len(locations)},
        sensor=SENSOR.get(root.name),
    )


def _scan_source(src: Source) -> Catalog:
    cat = scan(src.inner, src.sensor)
    cat.root = src.root
    return cat


FORMAT = Format(
    "ssl4eo",
    lambda s: s.inner.is_dir() and is_ssl4eo(s.inner),
    _scan_source,
    band_folders=True,
    files_of=band_files,
    describe="SSL4EO-S12: s2c|s2a/<location>/<date>/B*.tif",
)
