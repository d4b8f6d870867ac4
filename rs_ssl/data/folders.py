"""Image folder trees: class folders, split folders, MillionAID, and any nested tree of images.

- `folder`: `<class>/*.{jpg,png,tif}` (UC Merced, EuroSAT, RESISC45; torchvision's ImageFolder),
  optionally under split folders `train|val|validation|test/<class>/` (Imagenette and many copies),
  with split lists (`uc_merced-train.txt`) at the root or beside the data.
- `millionaid`: `train|test/<level1>/[<level2>/]<leaf>/*.jpg` with labels at every level of the
  hierarchy (a copy holding only `train/` included).
- `images`: any other nested folder of images, as unlabelled samples (a pretraining source).

Every walk follows symbolic links (loops are errors naming the link, see `roots.walk`).
"""

from __future__ import annotations

import os
from pathlib import Path

from rs_ssl.data.base import IMAGE_SUFFIXES, Catalog, Format, Record, Source, canonical_split
from rs_ssl.data.readers import open_raster
from rs_ssl.data.roots import SPLIT_FOLDERS, data_children, images_below, walk
from rs_ssl.data.splits import apply_split_lists
from rs_ssl.errors import DataError

SPLITS = SPLIT_FOLDERS


def _image_entries(folder: Path):
    # os.scandir: one directory read and no stat per file (a MillionAID class folder holds thousands)
    with os.scandir(folder) as it:
        for e in it:
            if (
                not e.name.startswith(".")
                and os.path.splitext(e.name)[1].lower() in IMAGE_SUFFIXES
                and e.is_file()
            ):
                yield e.name


def _images(folder: Path) -> list[Path]:
    return [folder / n for n in sorted(_image_entries(folder))]


def _has_image(folder: Path) -> bool:
    return next(_image_entries(folder), None) is not None


def _subdirs(path: Path) -> list[Path]:
    return [p for p in data_children(path) if p.is_dir()]


def is_class_folder(path: Path) -> bool:
    subdirs = _subdirs(path)
    return bool(subdirs) and not _has_image(path) and all(_has_image(d) for d in subdirs)


def split_folders(path: Path) -> list[Path]:
    """The split folders of `path` when they are all its data (`train/`, `val/`, `test/`), else []."""
    kids = data_children(path)
    splits = [p for p in kids if p.is_dir() and p.name.lower() in SPLITS]
    return splits if splits and len(splits) == len(kids) else []


def is_split_class_tree(path: Path) -> bool:
    """`train|val|test/<class>/<image>` (empty split folders are reported by the scan)."""
    splits = split_folders(path)
    full = [s for s in splits if data_children(s)]
    return bool(full) and all(is_class_folder(s) for s in full)


def is_millionaid(path: Path) -> bool:
    splits = [path / s for s in SPLITS if (path / s).is_dir()]
    if not splits:
        return False
    for split in splits:
        for dirpath, _, files in walk(split):
            depth = len(Path(dirpath).relative_to(split).parts)
            if depth >= 2 and any(Path(f).suffix.lower() in IMAGE_SUFFIXES for f in files):
                return True
    return False


def _layout(first: Path) -> str | None:
    """EuroSAT-MS stores 13 unnamed bands with B8A last; other unnamed files use the registry order."""
    with open_raster(str(first)) as src:
        unnamed, count = all(not d for d in src.descriptions), src.count
    return "eurosat" if count == 13 and unnamed else None


def _class_records(path: Path, split: str | None = None) -> list[Record]:
    splits = (split,) if split else ()
    return [
        Record(str(p), labels=(d.name,), splits=splits)
        for d in sorted(_subdirs(path))
        for p in _images(d)
    ]


def _empty_split(folder: Path, src: Source, notes: dict) -> None:
    msg = f"{folder}: empty split folder; put the split's class folders in it or remove it"
    if not src.skip_bad:
        raise DataError(msg + " (or pass --skip-bad)")
    notes.setdefault("split_problems", []).append(msg)


def scan_class_folders(path: Path, src: Source | None = None) -> Catalog:
    src = src or Source(path, path, (path,))
    notes: dict = {}
    splits = split_folders(path)
    if splits:
        recs = []
        for s in splits:
            if not data_children(s):
                _empty_split(s, src, notes)
                continue
            recs += _class_records(s, canonical_split(s.name))
        notes["split_source"] = f"split folders {', '.join(s.name + '/' for s in splits)}"
    else:
        recs = _class_records(path)
    if not recs:
        raise DataError(
            f"{path}: no images in class folders: looked for <class>/<image> "
            f"({', '.join(IMAGE_SUFFIXES)}), optionally under train/ val/ test/"
        )
    cat = Catalog(path, "folder", recs, layout=_layout(Path(recs[0].path)), notes=notes)
    return apply_split_lists(cat, src)


def scan_millionaid(path: Path, src: Source | None = None) -> Catalog:
    src = src or Source(path, path, (path,))
    recs, notes = [], {}
    for split in [s for s in SPLITS if (path / s).is_dir()]:
        root = path / split
        n = len(recs)
        for dirpath, _, files in walk(root):
            rel = Path(dirpath).relative_to(root).parts
            for f in files:
                if Path(f).suffix.lower() not in IMAGE_SUFFIXES:
                    continue
                p = str(Path(dirpath) / f)
                splits = (canonical_split(split),)
                if len(rel) == 0:  # MillionAID's test images are released without labels
                    recs.append(Record(p, splits=splits))
                elif len(rel) in (2, 3):
                    hier = (rel[0], rel[1] if len(rel) == 3 else "", rel[-1])
                    recs.append(Record(p, labels=(rel[-1],), splits=splits, hierarchy=hier))
                else:
                    raise DataError(
                        f"{p}: at depth {len(rel)} below {root}; MillionAID trees are "
                        "<split>/<level1>/[<level2>/]<leaf>/<image>"
                    )
        if len(recs) == n:
            _empty_split(root, src, notes)
    notes["split_source"] = "split folders " + ", ".join(
        s + "/" for s in SPLITS if (path / s).is_dir()
    )
    return Catalog(path, "millionaid", recs, notes=notes)


def scan_images(path: Path, src: Source | None = None) -> Catalog:
    src = src or Source(path, path, (path,))
    cat = Catalog(path, "images", [Record(str(p)) for p in images_below(path)])
    if cat.records:
        cat.layout = _layout(Path(cat.records[0].path))
    return apply_split_lists(cat, src)


def _any_image(path: Path) -> bool:
    return next(iter(images_below(path)), None) is not None


# What each folder format looks for (named in the error when a root holds none of it).
_LAYOUTS = {
    "folder": "class folders <class>/<image>, optionally under train/val/test/",
    "millionaid": "MillionAID: train|test/<level1>/[<level2>/]<leaf>/<image>",
    "images": "any nested folder of images (unlabelled)",
}


def _folder_format(name: str, is_layout, scan, labelled: bool = False) -> Format:
    """A format of one directory tree: recognised by `is_layout(folder)`, listed by `scan(folder)`
    (the catalog's root stays the root the user gave, e.g. an archive's top folder)."""

    def detect(src: Source) -> bool:
        return src.inner.is_dir() and is_layout(src.inner)

    def scan_root(src: Source) -> Catalog:
        cat = scan(src.inner, src)
        cat.root = src.root
        return cat

    return Format(name, detect, scan_root, labelled=labelled, describe=_LAYOUTS[name])


def _is_class_tree(path: Path) -> bool:
    return is_class_folder(path) or is_split_class_tree(path)


FOLDER = _folder_format("folder", _is_class_tree, scan_class_folders, labelled=True)
MILLIONAID = _folder_format("millionaid", is_millionaid, scan_millionaid, labelled=True)
IMAGES = _folder_format("images", _any_image, scan_images)
