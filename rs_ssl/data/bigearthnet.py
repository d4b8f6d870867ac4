"""BigEarthNet v1 and v2 (reBEN): 12-band Sentinel-2 L2A patches with multi-label CORINE targets.

v2: `BigEarthNet-S2/<tile>/<patch>/<patch>_<band>.tif` plus `metadata.parquet` (`patch_id`, `labels`
in the 19-class nomenclature, `split`). v1: `<patch>/<patch>_<band>.tif` plus
`<patch>_labels_metadata.json` with the 43-class `labels`, mapped to 19 classes by the standard
table in `data_manifests/nomenclature/bigearthnet.yaml`; splits are CSV lists of patch names
(`train.csv`, `val.csv`, `test.csv`, as published with BigEarthNet-MM).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from rs_ssl.data.catalog import Catalog, Record
from rs_ssl.errors import DataError
from rs_ssl.manifests import load_yaml

SPLIT_FILES = {"train": "train", "val": "validation", "validation": "validation", "test": "test"}


@cache
def nomenclature(classes: int = 19) -> list[str]:
    """The 19- or 43-class BigEarthNet nomenclature."""
    return list(load_yaml("nomenclature", "bigearthnet.yaml")[f"classes{classes}"])


def to19(labels43: list[str], source: str) -> tuple[str, ...]:
    """Map v1's 43-class labels to the 19 classes (labels without a counterpart are dropped)."""
    table = load_yaml("nomenclature", "bigearthnet.yaml")
    known = set(table["classes43"])
    bad = [lab for lab in labels43 if lab not in known]
    if bad:
        raise DataError(f"{source}: unknown BigEarthNet label(s) {bad}; expected names of the 43-class nomenclature")
    mapped = {table["map43to19"][lab] for lab in labels43 if lab in table["map43to19"]}
    return tuple(c for c in table["classes19"] if c in mapped)


def _v1_json(folder: Path) -> Path | None:
    p = folder / f"{folder.name}_labels_metadata.json"
    return p if p.is_file() else None


def is_bigearthnet(path: Path) -> bool:
    if (path / "BigEarthNet-S2").is_dir() or path.name == "BigEarthNet-S2":
        return True
    for child in sorted(path.iterdir())[:5] if path.is_dir() else []:
        if child.is_dir() and _v1_json(child) is not None:
            return True
    return False


def scan(path: Path) -> Catalog:
    if (path / "BigEarthNet-S2").is_dir() or path.name == "BigEarthNet-S2":
        return _scan_v2(path)
    return _scan_v1(path)


def _scan_v2(path: Path) -> Catalog:
    s2 = path if path.name == "BigEarthNet-S2" else path / "BigEarthNet-S2"
    meta = next((p for p in (s2.parent / "metadata.parquet", s2 / "metadata.parquet") if p.is_file()), None)
    folders = {p.name: p for p in sorted(s2.glob("*/*")) if p.is_dir()}
    if meta is None:
        recs = [Record(str(p)) for p in folders.values()]
        return Catalog(path, "bigearthnet", recs, multilabel=True, notes={"version": 2, "labels": "none (no metadata.parquet)"})
    import pandas as pd

    try:
        df = pd.read_parquet(meta, columns=["patch_id", "labels", "split"])
    except Exception as e:  # noqa: BLE001 - pyarrow raises several types for bad files
        raise DataError(f"{meta}: cannot be read as BigEarthNet v2 metadata ({e})") from None
    classes = set(nomenclature(19))
    recs, missing = [], []
    for pid, labels, split in zip(df["patch_id"], df["labels"], df["split"], strict=True):
        folder = folders.get(pid)
        if folder is None:
            missing.append(pid)
            continue
        bad = [lab for lab in labels if lab not in classes]
        if bad:
            raise DataError(f"{meta}: patch {pid} has label(s) {bad} outside the 19-class nomenclature")
        recs.append(Record(str(folder), labels=tuple(labels), split=str(split)))
    notes = {"version": 2, "metadata": str(meta), "missing_patches": len(missing)}
    return Catalog(path, "bigearthnet", recs, multilabel=True, classes=nomenclature(19), notes=notes)


def _v1_splits(path: Path) -> dict[str, str]:
    split_of: dict[str, str] = {}
    for root in (path, path / "splits"):
        for stem, split in SPLIT_FILES.items():
            csv = root / f"{stem}.csv"
            if csv.is_file():
                for line in csv.read_text(encoding="utf-8").splitlines():
                    name = line.split(",")[0].strip()
                    if name:
                        split_of[name] = split
    return split_of


def _scan_v1(path: Path) -> Catalog:
    split_of = _v1_splits(path)
    recs = []
    for folder in sorted(p for p in path.iterdir() if p.is_dir()):
        js = _v1_json(folder)
        if js is None:
            continue
        try:
            labels43 = json.loads(js.read_text(encoding="utf-8"))["labels"]
        except (json.JSONDecodeError, KeyError, OSError) as e:
            raise DataError(f"{js}: not a BigEarthNet v1 labels file ({type(e).__name__}: {e})") from None
        recs.append(Record(str(folder), labels=to19(labels43, str(js)), split=split_of.get(folder.name),
                           fine=tuple(labels43)))
    return Catalog(path, "bigearthnet", recs, multilabel=True, classes=nomenclature(19), notes={"version": 1})
