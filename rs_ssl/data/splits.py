"""Splits as data: split lists (`.txt`/`.csv`) found at a dataset root or beside its data.

A list names one sample per line (its file or folder name; the first column of a `.csv`, as in
BigEarthNet v1's `bigearthnet-train.csv` of S2 and S1 names). Lists are looked for in every folder
from the root given as `--data` down to the data folder (and their `splits/` subfolders), under
TorchGeo's names (`eurosat-train.txt`, `uc_merced-val.txt`, `resisc45-test.txt`,
`bigearthnet-val.csv`) and the plain ones (`train.csv`, `val.txt`, `test.txt`). A root holding
several sets (`eurosat-*`, `eurosat-spatial-*`, `eurosat-100-*`) uses the one with the shortest
name (the dataset's own split); the others are listed in the catalog's notes.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from rs_ssl.data.base import Catalog, Record, Source, canonical_split, split_sort_key
from rs_ssl.data.roots import SPLIT_LIST
from rs_ssl.errors import DataError

_HEADERS = {
    "name",
    "filename",
    "file",
    "path",
    "patch_id",
    "image",
    "id",
    "s2_name",
    "s2",
    "sample",
}


def find_split_lists(folders: tuple[Path, ...] | list[Path]) -> dict[str, dict[str, Path]]:
    """Split-list sets by name prefix: `{"eurosat": {"train": Path, "validation": Path, ...}}`."""
    sets: dict[str, dict[str, Path]] = {}
    for folder in folders:
        for d in (folder, folder / "splits"):
            if not d.is_dir():
                continue
            for p in sorted(d.iterdir()):
                m = SPLIT_LIST.match(p.name)
                if m and p.is_file():
                    sets.setdefault(m["prefix"].lower(), {}).setdefault(
                        canonical_split(m["split"]), p
                    )
    return sets


def read_split_list(path: Path, skip_bad: bool = False) -> tuple[list[str], list[str]]:
    """The sample names of a split list, in order; returns (names, problems skipped with skip_bad)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot be read as a split list ({e})") from None
    names, seen, problems = [], {}, []
    for i, line in enumerate(lines, 1):
        name = line.split(",")[0].strip().strip('"')
        if not name or name.startswith("#") or (i == 1 and name.lower() in _HEADERS):
            continue
        name = name.replace("\\", "/")
        if name in seen:
            msg = f"{path}: line {i} names {name} again (first at line {seen[name]}); remove the duplicate line"
            if not skip_bad:
                raise DataError(msg + " or pass --skip-bad")
            problems.append(msg)
            continue
        seen[name] = i
        names.append(name)
    return names, problems


def _keys(r: Record) -> list[str]:
    p = Path(r.path)
    return [p.name, p.stem, f"{p.parent.name}/{p.name}"]


def apply_split_lists(catalog: Catalog, src: Source, extra: tuple[Path, ...] = ()) -> Catalog:
    """Set each record's splits from the lists beside the data (no lists: the catalog unchanged).

    Names in a list that match no sample, a name listed twice, and lists that disagree with split
    folders are DataErrors naming the list (with `src.skip_bad`: skipped and counted in notes).
    """
    sets = find_split_lists((*src.chain, *extra))
    if not sets:
        return catalog
    prefix = min(sets, key=lambda k: (len(k), k))
    chosen = sets[prefix]
    index: dict[str, list[int]] = {}
    for i, r in enumerate(catalog.records):
        for k in _keys(r):
            index.setdefault(k, []).append(i)
    member: dict[int, list[str]] = {}
    problems: list[str] = []
    for split, path in sorted(chosen.items()):
        names, bad = read_split_list(path, src.skip_bad)
        problems += bad
        missing = []
        for name in names:
            hits = index.get(name) or index.get(Path(name).name) or index.get(Path(name).stem)
            if not hits:
                missing.append(name)
                continue
            for i in dict.fromkeys(hits):
                member.setdefault(i, [])
                if split not in member[i]:
                    member[i].append(split)
        if missing:
            msg = (
                f"{path}: {len(missing)} of {len(names)} listed sample(s) not found under {src.inner} "
                f"(first: {', '.join(missing[:3])}); the list belongs to another copy or the data is incomplete"
            )
            if not src.skip_bad:
                raise DataError(msg + ": restore the files, remove the list, or pass --skip-bad")
            problems.append(msg)
    recs = []
    for i, r in enumerate(catalog.records):
        listed = tuple(sorted(set(member.get(i, [])), key=split_sort_key))
        if r.splits and listed and not set(r.splits) <= set(listed):
            raise DataError(
                f"{r.path}: in split folder {'/'.join(r.splits)} but {chosen[listed[0]]} puts it in "
                f"{', '.join(listed)}; the split folders and split lists disagree: keep one of them"
            )
        recs.append(replace(r, splits=listed or r.splits))
    lists = sorted(chosen.items(), key=lambda kv: split_sort_key(kv[0]))
    tags = [SPLIT_LIST.match(p.name)["split"] for _, p in lists]
    suffixes = "/".join(sorted({p.suffix for _, p in lists}))
    notes = {
        "split_source": f"split lists {prefix + '-' if prefix else ''}{{{','.join(tags)}}}{suffixes} in "
        f"{lists[0][1].parent}",
        "unlisted": sum(1 for i in range(len(recs)) if i not in member),
    }
    others = sorted(k for k in sets if k != prefix)
    if others:
        notes["other_split_lists"] = others
    if problems:
        notes["split_problems"] = problems
    catalog.records = recs
    catalog.notes = catalog.notes | notes
    return catalog
