"""Landsat 8/9 Collection 2 Level-2 scenes, one GeoTIFF per band, named by their product ID.

A scene is the files `<product ID>_SR_B1.TIF` ... `_SR_B7.TIF` (surface reflectance, read as the
`landsat_oli` bands B1..B7 with Landsat's own scale and offset from bands.yaml), found in a folder
or in the scene folders below it (as USGS archives extract). Thermal (`ST_B10`) and quality files
(`QA_PIXEL`, `SR_QA_AEROSOL`, `ST_*`) are not reflectance bands and are not read. Each product ID is
one record, named `<folder>/<product ID>`; a folder holding one scene is also accepted as its path.
"""

from __future__ import annotations

import re
from pathlib import Path

from rs_ssl.data.base import Catalog, Format, Record, Source
from rs_ssl.data.roots import walk
from rs_ssl.errors import DataError

# LC08_L2SP_023032_20210622_20210629_02_T1_SR_B1 (sensor C: OLI+TIRS, O: OLI only; T: TM, E: ETM+)
PRODUCT = re.compile(
    r"^(?P<id>L(?P<sensor>[COTEM])(?P<sat>\d\d)_(?P<level>L\d[A-Z]{2})_\d{6}_\d{8}_\d{8}_\d{2}_"
    r"(?:T1|T2|RT))_(?P<file>.+)$",
    re.IGNORECASE,
)
SR_BAND = re.compile(r"^SR_B([1-7])$", re.IGNORECASE)
REFLECTANCE = tuple(f"B{i}" for i in range(1, 8))  # what a C2 L2 product holds of landsat_oli
SUFFIXES = (".tif", ".tiff")
SENSOR = "landsat_oli"


def _products(folder: Path) -> dict[Path, dict[str, Path]]:
    """`{folder/product ID: {file kind (SR_B1, ST_B10, QA_PIXEL): file}}` of the files in `folder`."""
    out: dict[Path, dict[str, Path]] = {}
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() not in SUFFIXES or not p.is_file():
            continue
        m = PRODUCT.match(p.stem)
        if m:
            out.setdefault(folder / m.group("id"), {})[m.group("file").upper()] = p
    return out


def _check(scene: Path, files: dict[str, Path]) -> None:
    """DataError unless `scene` is a complete Landsat 8/9 OLI Collection 2 Level-2 product."""
    m = PRODUCT.match(f"{scene.name}_X")
    sensor, sat, level = m.group("sensor").upper(), int(m.group("sat")), m.group("level").upper()
    if sensor not in "CO" or sat not in (8, 9):
        raise DataError(
            f"{scene}: Landsat {sat} ({'TM' if sensor == 'T' else 'ETM+' if sensor == 'E' else 'MSS'}) "
            "numbers its bands differently from OLI; only Landsat 8/9 OLI is registered "
            "(landsat_oli in bands.yaml)"
        )
    if not level.startswith("L2"):
        raise DataError(
            f"{scene}: a {level} (Level-1) product; its digital numbers need the per-band rescaling "
            "of its MTL file, which is not read: use the Collection 2 Level-2 product (L2SP/L2SR)"
        )
    missing = [f"SR_{b}" for b in REFLECTANCE if f"SR_{b}" not in files]
    if missing:
        have = ", ".join(sorted(k for k in files if SR_BAND.match(k))) or "none"
        raise DataError(
            f"{scene}: Landsat scene lacks band file(s) "
            f"{', '.join(f'{scene.name}_{k}.TIF' for k in missing)} (has {have}); the download is "
            "incomplete: fetch the missing files, or pass --skip-bad to leave the scene out"
        )


def band_files(path: Path) -> dict[str, Path]:
    """`{B1: file, ..., B7: file}` of one scene: `<folder>/<product ID>`, or a folder of one scene."""
    path = Path(path)
    if path.is_dir():
        products = _products(path)
        if len(products) != 1:
            raise DataError(
                f"{path}: holds {len(products)} Landsat scenes; name one as <folder>/<product ID>"
            )
        files = next(iter(products.values()))
    else:
        files = _products(path.parent).get(path, {})
    return {
        f"B{m.group(1)}": p for k, p in sorted(files.items()) if (m := SR_BAND.match(k)) is not None
    }


def _scene_dirs(src: Source) -> list[Path]:
    return [Path(d) for d, _, files in walk(src.inner) if any(PRODUCT.match(f) for f in files)]


def _detect(src: Source) -> bool:
    if not src.inner.is_dir():
        return False
    # a scene folder, or a folder of scene folders (one level: detection reads no deep tree)
    for folder in [src.inner, *(p for p in sorted(src.inner.iterdir()) if p.is_dir())][:50]:
        if any(PRODUCT.match(p.name) and p.suffix.lower() in SUFFIXES for p in folder.iterdir()):
            return True
    return False


def _scan(src: Source) -> Catalog:
    records, problems = [], []
    for folder in _scene_dirs(src):
        for scene, files in _products(folder).items():
            try:
                _check(scene, files)
            except DataError as e:
                if not src.skip_bad:
                    raise
                problems.append(str(e))
                continue
            records.append(Record(str(scene)))
    notes = {"scan_problems": problems} if problems else {}
    return Catalog(src.root, "landsat", records, kind="rasters", notes=notes, sensor=SENSOR)


FORMAT = Format(
    "landsat",
    _detect,
    _scan,
    kind="rasters",
    band_folders=True,
    sensor=SENSOR,
    files_of=band_files,
    describe="Landsat 8/9 Collection 2 Level-2 scenes (<product ID>_SR_B1.TIF ... _SR_B7.TIF)",
)
