"""SSL4EO-S12: `<modality>/<location>/<date>/B*.tif` + `metadata.json`; dates of one location are a group.

Modalities: `s2c` (L1C, 13 bands), `s2a` (L2A, 12 bands), `s1` (SAR, not read here). Pointed at the
dataset root, the modality matching the band selection's sensor is read (s2_l1c -> s2c,
s2_l2a -> s2a); two dates of one location can serve as a positive pair (`Record.group`).
"""

from __future__ import annotations

from pathlib import Path

from rs_ssl.data.catalog import Catalog, Record
from rs_ssl.data.sentinel2 import is_band_folder
from rs_ssl.errors import DataError

MODALITY = {"s2_l1c": "s2c", "s2_l2a": "s2a"}


def _is_date_folder(p: Path) -> bool:
    return (p / "metadata.json").is_file() and is_band_folder(p)


def _first_location(path: Path) -> Path | None:
    for loc in sorted(path.iterdir())[:3]:
        if loc.is_dir() and any(_is_date_folder(d) for d in sorted(loc.iterdir())[:3] if d.is_dir()):
            return loc
    return None


def is_ssl4eo(path: Path) -> bool:
    if any((path / m).is_dir() for m in MODALITY.values()):
        return True
    return _first_location(path) is not None or any(_is_date_folder(d) for d in sorted(path.iterdir())[:3] if d.is_dir())


def scan(path: Path, sensor: str | None = None) -> Catalog:
    root = path
    modalities = [m for m in MODALITY.values() if (path / m).is_dir()]
    if modalities:
        want = MODALITY.get(sensor or "", None)
        if want is None or want not in modalities:
            raise DataError(
                f"{path}: SSL4EO-S12 root with modalities {', '.join(modalities)}; select bands of "
                "s2_l1c (--bands 13, reads s2c) or s2_l2a (--bands 12, reads s2a), or point --data at one modality"
            )
        root = path / want
    if _first_location(root) is None and any(_is_date_folder(d) for d in root.iterdir() if d.is_dir()):
        locations = [root]  # pointed at one location
    else:
        locations = sorted(p for p in root.iterdir() if p.is_dir())
    recs = [Record(str(d), group=loc.name) for loc in locations for d in sorted(loc.iterdir()) if d.is_dir() and _is_date_folder(d)]
    return Catalog(path, "ssl4eo", recs, notes={"modality": root.name, "locations": len(locations)})
