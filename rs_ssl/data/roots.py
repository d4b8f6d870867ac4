"""Dataset roots as users have them: what in a folder is data, wrapper folders, symlinked trees.

A TorchGeo root holds the data beside its archives (`EuroSAT.zip`, `BigEarthNet-S2.tar.gzaa`),
checksums, READMEs and split lists (`eurosat-train.txt`): these are not data and are ignored when
the layout is detected. Every tree walk follows symbolic links (clusters link datasets in), with a
loop (a link to a folder above it) reported as an error naming the link.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

from rs_ssl.data.base import IMAGE_SUFFIXES, SPLIT_ALIASES, Source
from rs_ssl.data.tiles import is_xyz
from rs_ssl.errors import DataError

# `x.zip`, `x.tar.gz`, `x.tar.gzaa` (split with `split`), `x.tar.gz.partaa`, `x.7z`, `x.zip.001`
_ARCHIVE = re.compile(
    r"\.(zip|tar|tgz|gz|bz2|xz|zst|7z|rar)(\.?(part)?[a-z]{2}|\.\d{3})?$", re.IGNORECASE
)
_CHECKSUM = re.compile(
    r"(\.(md5|sha1|sha256|sha512|sfv)$)|^(md5|sha1|sha256|sha512)sums?(\.txt)?$|^checksums?\.txt$",
    re.IGNORECASE,
)
_DOC = re.compile(
    r"^(readme|license|licence|citation|changelog|notice)(\..*)?$|\.(md|pdf|html?|rst)$",
    re.IGNORECASE,
)
# TorchGeo's `eurosat-spatial-train.txt`, `uc_merced-val.txt`, `bigearthnet-test.csv`; BigEarthNet's `train.csv`
SPLIT_LIST = re.compile(
    r"^(?P<prefix>.*?)[-_]?(?P<split>train|val|valid|validation|test)\.(txt|csv)$", re.IGNORECASE
)
SPLIT_FOLDERS = tuple(SPLIT_ALIASES)  # folder names that are splits, not classes
_ZARR_MARKERS = ("zarr.json", ".zgroup", ".zarray")


def is_archive(p: Path) -> bool:
    return p.is_file() and bool(_ARCHIVE.search(p.name))


def is_ignored(p: Path) -> bool:
    """Not data: hidden entries, archives, checksums, READMEs/licences and split lists."""
    n = p.name
    if n.startswith(".") or n.startswith("__MACOSX"):
        return True
    if p.is_dir():
        return False
    return bool(_ARCHIVE.search(n) or _CHECKSUM.search(n) or _DOC.search(n) or SPLIT_LIST.match(n))


def data_children(folder: Path) -> list[Path]:
    """The entries of `folder` that may be data, sorted by name (links followed)."""
    try:
        return sorted(p for p in folder.iterdir() if not is_ignored(p))
    except PermissionError:
        raise DataError(f"{folder}: permission denied; make the folder readable") from None


def has_zarr_marker(p: Path) -> bool:
    return any((p / m).exists() for m in _ZARR_MARKERS)


def chain(path: Path) -> tuple[Path, ...]:
    """`path` and the wrapper folders below it (`ucmerced/UCMerced_LandUse/Images`), outermost first.

    A folder whose only data is one folder is a wrapper, unless that folder is a split folder
    (`train/`: a MillionAID or ImageFolder copy holding one split) or the one zoom level of an
    XYZ/TMS tree.
    """
    out = [path]
    while path.is_dir() and not has_zarr_marker(path):
        kids = data_children(path)
        if (
            len(kids) == 1
            and kids[0].is_dir()
            and kids[0].name.lower() not in SPLIT_FOLDERS
            and not is_xyz(path)  # one zoom level `12/` is the tree's data, not a wrapper
        ):
            if kids[0].resolve() in {p.resolve() for p in out}:
                raise DataError(
                    f"{kids[0]}: symbolic link loop (it points back to {kids[0].resolve()}); remove the link"
                )
            path = kids[0]
            out.append(path)
        else:
            break
    return tuple(out)


def source(
    path: Path, *, sensor: str | None = None, zoom: int | None = None, skip_bad: bool = False
) -> Source:
    c = chain(Path(path)) if Path(path).is_dir() else (Path(path),)
    return Source(Path(path), c[-1], c, sensor=sensor, zoom=zoom, skip_bad=skip_bad)


def walk(root: Path) -> Iterator[tuple[Path, list[str], list[str]]]:
    """`os.walk(root)` in sorted order that follows symbolic links; a link to a folder above it
    (a loop, which would never end) is a DataError naming the link."""
    stack = [(Path(root), (os.path.realpath(root),))]
    while stack:
        folder, ancestors = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except PermissionError:
            raise DataError(f"{folder}: permission denied; make the folder readable") from None
        dirs, files = [], []
        for e in entries:
            if e.name.startswith("."):
                continue
            try:
                is_dir = e.is_dir()  # follows links
            except OSError:
                is_dir = False
            if is_dir:
                real = os.path.realpath(e.path)
                if real in ancestors:
                    raise DataError(
                        f"{e.path}: symbolic link loop (it points to {real}, a folder above it); "
                        "remove or replace the link"
                    )
                dirs.append(e.name)
            elif e.is_file() or e.is_symlink():
                files.append(e.name)
        yield folder, dirs, files
        for d in reversed(dirs):
            stack.append((folder / d, (*ancestors, os.path.realpath(folder / d))))


def images_below(root: Path) -> Iterator[Path]:
    """Every image file under `root` (links followed), in sorted order."""
    for folder, _, files in walk(root):
        for f in files:
            if os.path.splitext(f)[1].lower() in IMAGE_SUFFIXES:  # (walk skips hidden names)
                yield folder / f


def only_archives(path: Path) -> list[Path]:
    """The archives of a folder that holds archives and no data (empty list otherwise)."""
    if not path.is_dir():
        return []
    kids = [p for p in path.iterdir() if not p.name.startswith(".")]
    archives = [p for p in kids if is_archive(p)]
    return sorted(archives) if archives and not data_children(path) else []
