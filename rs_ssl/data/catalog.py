"""What a `--data` path holds: its format and the list of its rasters or samples (`Record`s).

A catalog is built by listing folders only (no pixel is decoded), so that a million-file dataset
is indexed in seconds; `rs-ssl manifest` stores it as `manifest.parquet` so that later runs skip
even that. Georeferenced formats give *rasters* (patches are cut from them by a sampler); patch and
image datasets give *samples* (one item each).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rs_ssl.errors import DataError, UsageError

FORMATS = ("sentinel2", "geotiff", "tiles", "xyz", "zarr", "bigearthnet", "folder", "millionaid", "ssl4eo", "manifest")
RASTER_FORMATS = frozenset({"sentinel2", "geotiff", "tiles", "xyz"})
IMAGE_SUFFIXES = (".tif", ".tiff", ".jpg", ".jpeg", ".png", ".jp2")


@dataclass(frozen=True)
class Record:
    """One raster, image or patch (a file, or a folder of per-band files) and what is known about it."""

    path: str
    labels: tuple[str, ...] = ()  # class(es): one for single-label data, several for multi-label
    split: str | None = None
    group: str | None = None  # samples of one place (SSL4EO-S12 location): dates of a positive pair
    hierarchy: tuple[str, ...] = ()  # MillionAID: (level-1, level-2, leaf) class names
    fine: tuple[str, ...] = ()  # BigEarthNet v1: the original 43-class labels
    index: int | None = None  # sample index inside a zarr store


@dataclass
class Catalog:
    """The records of one dataset and how to read them."""

    root: Path
    format: str
    records: list[Record]
    multilabel: bool = False
    classes: list[str] | None = None  # a fixed nomenclature (BigEarthNet); else the labels found
    layout: str | None = None  # band order of files without band names (e.g. "eurosat")
    notes: dict = field(default_factory=dict)

    @property
    def kind(self) -> str:
        if self.format == "zarr":
            return "samples" if self.notes.get("samples") else "rasters"
        return "rasters" if self.format in RASTER_FORMATS else "samples"

    def label_names(self, level: int = 1) -> list[str]:
        """Class names at `level` (MillionAID hierarchy level; BigEarthNet: 1 = 19 classes, 2 = 43)."""
        if self.format == "bigearthnet":
            from rs_ssl.data.bigearthnet import nomenclature

            if level == 2 and not any(r.fine for r in self.records):
                raise UsageError("--level 2 (the 43-class BigEarthNet nomenclature) exists for v1 only; this is v2")
            return nomenclature(43 if level == 2 else 19)
        return sorted({lab for r in self.records for lab in record_labels(r, level)})


def record_labels(r: Record, level: int = 1) -> tuple[str, ...]:
    """The labels of a record at a hierarchy level (MillionAID leaves without level 2 keep the leaf)."""
    if r.hierarchy:
        if not 1 <= level <= 3:
            raise UsageError(f"--level {level}: MillionAID has levels 1, 2 and 3")
        l1, l2, leaf = r.hierarchy
        return ((l1, l2 or leaf, leaf)[level - 1],)
    if level == 2 and r.fine:
        return r.fine
    return r.labels


def _has_zarr_marker(p: Path) -> bool:
    return any((p / m).exists() for m in ("zarr.json", ".zgroup", ".zarray"))


def descend(path: Path) -> Path:
    """Skip wrapper folders that hold nothing but one folder (`ucmerced/UCMerced_LandUse/Images`)."""
    while path.is_dir():
        children = [c for c in path.iterdir() if not c.name.startswith(".")]
        if len(children) == 1 and children[0].is_dir() and not _has_zarr_marker(path):
            path = children[0]
        else:
            break
    return path


def detect_format(path: Path) -> str:
    """Name the layout of `path` from its files and folder structure."""
    from rs_ssl.data import bigearthnet, folders, ssl4eo, tiles
    from rs_ssl.data.sentinel2 import is_band_folder

    path = Path(path)
    if path.is_file():
        if path.suffix == ".parquet":
            return "manifest"
        if path.suffix.lower() == ".vrt":
            return "tiles"
        if path.suffix.lower() in IMAGE_SUFFIXES:
            return "geotiff"
        raise DataError(f"{path}: not a raster, a .vrt or a manifest.parquet")
    if not path.is_dir():
        if "://" in str(path):
            return "zarr"
        raise UsageError(f"--data {path}: no such file or folder")
    if path.suffix == ".zarr" or _has_zarr_marker(path):
        return "zarr"
    if (path / "manifest.parquet").is_file() and not any(path.glob("*.tif")):
        return "manifest"
    inner = descend(path)
    checks = (
        ("bigearthnet", bigearthnet.is_bigearthnet),
        ("sentinel2", is_band_folder),
        ("ssl4eo", ssl4eo.is_ssl4eo),
        ("xyz", tiles.is_xyz),
        ("millionaid", folders.is_millionaid),
        ("tiles", tiles.is_tile_folder),
        ("folder", folders.is_class_folder),
    )
    for name, check in checks:
        # A folder of Sentinel-2 scene folders also looks like a class-folder tree: decide first.
        if name == "folder":
            subdirs = [p for p in sorted(inner.iterdir()) if p.is_dir()]
            if subdirs and all(is_band_folder(p) for p in subdirs):
                return "sentinel2"
        if check(inner):
            return name
    if any(p.suffix.lower() in (".tif", ".tiff") for p in inner.iterdir()):
        return "geotiff"
    if not any(inner.iterdir()):
        raise DataError(f"{path}: empty folder")
    raise DataError(
        f"{path}: format not recognised. Supported: {', '.join(FORMATS)} (see README, Data section); "
        "name it with --format if detection fails"
    )


def scan(data: str | Path, fmt: str = "auto", *, zoom: int | None = None, sensor: str | None = None) -> Catalog:
    """List the records of `data` in format `fmt` (`auto`: detected); `sensor` picks an SSL4EO-S12 modality."""
    from rs_ssl.data import bigearthnet, folders, ssl4eo, tiles, zarr_store
    from rs_ssl.data.sentinel2 import is_band_folder

    path = Path(data) if "://" not in str(data) else data
    if fmt == "auto":
        fmt = detect_format(Path(path))
    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt}: unknown; choose auto or one of {', '.join(FORMATS)}")
    if fmt == "manifest":
        from rs_ssl.data.manifest import read_manifest

        return read_manifest(Path(path))
    if fmt == "zarr":
        return zarr_store.scan_zarr(path)
    path = Path(path)
    if not path.exists():
        raise UsageError(f"--data {path}: no such file or folder")
    if fmt == "sentinel2":
        inner = descend(path)
        if is_band_folder(inner):
            recs = [Record(str(inner))]
        else:
            recs = [Record(str(p)) for p in sorted(inner.iterdir()) if p.is_dir() and is_band_folder(p)]
        cat = Catalog(path, fmt, recs)
    elif fmt == "geotiff":
        files = [path] if path.is_file() else sorted(p for p in descend(path).rglob("*") if p.suffix.lower() in (".tif", ".tiff"))
        cat = Catalog(path, fmt, [Record(str(p)) for p in files])
    elif fmt == "tiles":
        cat = Catalog(path, fmt, tiles.scan_tiles(path))
    elif fmt == "xyz":
        recs, z, scheme = tiles.scan_xyz(descend(path), zoom)
        cat = Catalog(path, fmt, recs, notes={"zoom": z, "scheme": scheme})
    elif fmt == "bigearthnet":
        cat = bigearthnet.scan(descend(path))
    elif fmt == "ssl4eo":
        cat = ssl4eo.scan(descend(path), sensor)
    elif fmt == "millionaid":
        cat = folders.scan_millionaid(descend(path))
    else:
        cat = folders.scan_class_folders(descend(path))
    cat.root = path
    if not cat.records:
        raise DataError(f"{path}: no {fmt} data found (empty folder or wrong --format)")
    return cat
