"""Scene-classification folder trees: `<class>/*.{jpg,png,tif}` (UC Merced, EuroSAT) and MillionAID's
`train|test/<level1>/[<level2>/]<leaf>/*.jpg` with labels at every level of the hierarchy.
"""

from __future__ import annotations

import os
from pathlib import Path

from rs_ssl.data.catalog import IMAGE_SUFFIXES, Catalog, Record
from rs_ssl.data.readers import open_raster
from rs_ssl.errors import DataError

SPLITS = ("train", "val", "validation", "test")


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def is_class_folder(path: Path) -> bool:
    subdirs = [p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return bool(subdirs) and not _images(path) and all(_images(d) for d in subdirs)


def is_millionaid(path: Path) -> bool:
    splits = [path / s for s in SPLITS if (path / s).is_dir()]
    if not splits:
        return False
    for split in splits:
        for dirpath, _, files in os.walk(split):
            depth = len(Path(dirpath).relative_to(split).parts)
            if depth >= 2 and any(Path(f).suffix.lower() in IMAGE_SUFFIXES for f in files):
                return True
    return False


def _layout(first: Path) -> str | None:
    """EuroSAT-MS stores 13 unnamed bands with B8A last; other unnamed files use the registry order."""
    with open_raster(str(first)) as src:
        unnamed, count = all(not d for d in src.descriptions), src.count
    return "eurosat" if count == 13 and unnamed else None


def scan_class_folders(path: Path) -> Catalog:
    recs = [Record(str(p), labels=(d.name,)) for d in sorted(p for p in path.iterdir() if p.is_dir()) for p in _images(d)]
    if not recs:
        raise DataError(f"{path}: no images in its class folders")
    return Catalog(path, "folder", recs, layout=_layout(Path(recs[0].path)))


def scan_millionaid(path: Path) -> Catalog:
    recs = []
    for split in [s for s in SPLITS if (path / s).is_dir()]:
        root = path / split
        for dirpath, dirnames, files in os.walk(root):
            dirnames.sort()
            rel = Path(dirpath).relative_to(root).parts
            for f in sorted(files):
                if Path(f).suffix.lower() not in IMAGE_SUFFIXES:
                    continue
                p = str(Path(dirpath) / f)
                if len(rel) == 0:  # MillionAID's test images are released without labels
                    recs.append(Record(p, split=split))
                elif len(rel) in (2, 3):
                    hier = (rel[0], rel[1] if len(rel) == 3 else "", rel[-1])
                    recs.append(Record(p, labels=(rel[-1],), split=split, hierarchy=hier))
                else:
                    raise DataError(
                        f"{p}: at depth {len(rel)} below {root}; MillionAID trees are "
                        "<split>/<level1>/[<level2>/]<leaf>/<image>"
                    )
    return Catalog(path, "millionaid", recs)
