"""BigEarthNet v1 and v2 (reBEN): 12-band Sentinel-2 L2A patches with multi-label CORINE targets.

v2: `BigEarthNet-S2/<tile>/<patch>/<patch>_<band>.tif` plus `metadata.parquet` (`patch_id`, `labels`
in the 19-class nomenclature, `split`). v1: `BigEarthNet-v1.0/<patch>/<patch>_<band>.tif` plus
`<patch>_labels_metadata.json` with the 43-class `labels`, mapped to 19 classes by the standard
table in `data_manifests/nomenclature/bigearthnet.yaml`; splits are CSV lists of patch names
(`bigearthnet-{train,val,test}.csv` of S2 and S1 names in the folder above `BigEarthNet-v1.0/`, as
TorchGeo keeps them, or `train.csv`, `val.csv`, `test.csv` as published with BigEarthNet-MM).
The root TorchGeo users pass (holding the S1 folder and the archives too) is recognised.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from rs_ssl.data.base import Catalog, Format, Record, Source, canonical_split
from rs_ssl.data.sentinel2 import band_files, is_band_folder
from rs_ssl.data.splits import apply_split_lists
from rs_ssl.errors import DataError
from rs_ssl.manifests import load_yaml

V1_FOLDER = "BigEarthNet-v1.0"


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
        raise DataError(
            f"{source}: unknown BigEarthNet label(s) {bad}; expected names of the 43-class nomenclature"
        )
    mapped = {table["map43to19"][lab] for lab in labels43 if lab in table["map43to19"]}
    return tuple(c for c in table["classes19"] if c in mapped)


def _v1_json(folder: Path) -> Path | None:
    p = folder / f"{folder.name}_labels_metadata.json"
    return p if p.is_file() else None


def _is_v1_patch(folder: Path) -> bool:
    """A v1 S2 patch folder: its labels file and band files (S1 folders have labels but no S2 bands)."""
    return folder.is_dir() and _v1_json(folder) is not None and is_band_folder(folder)


def _v2_root(path: Path) -> Path | None:
    if path.name == "BigEarthNet-S2":
        return path
    return path / "BigEarthNet-S2" if (path / "BigEarthNet-S2").is_dir() else None


def _v1_root(path: Path) -> Path | None:
    if (path / V1_FOLDER).is_dir():
        return path / V1_FOLDER
    kids = sorted(p for p in path.iterdir() if p.is_dir())[:5] if path.is_dir() else []
    return path if any(_is_v1_patch(c) for c in kids) else None


def is_bigearthnet(path: Path) -> bool:
    return _v2_root(path) is not None or _v1_root(path) is not None


def scan(path: Path, src: Source | None = None) -> Catalog:
    if _v2_root(path) is not None:
        return _scan_v2(path)
    return _scan_v1(path, src)


def _scan_v2(path: Path) -> Catalog:
    s2 = _v2_root(path)
    meta = next(
        (p for p in (s2.parent / "metadata.parquet", s2 / "metadata.parquet") if p.is_file()), None
    )
    folders = {p.name: p for p in sorted(s2.glob("*/*")) if p.is_dir()}
    if meta is None:
        recs = [Record(str(p)) for p in folders.values()]
        return Catalog(
            path,
            "bigearthnet",
            recs,
            multilabel=True,
            sensor="s2_l2a",
            notes={"version": 2, "labels": "none (no metadata.parquet)"},
        )
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
            raise DataError(
                f"{meta}: patch {pid} has label(s) {bad} outside the 19-class nomenclature"
            )
        recs.append(
            Record(
                str(folder),
                labels=tuple(labels),
                splits=tuple(s for s in [canonical_split(split)] if s),
            )
        )
    notes = {
        "version": 2,
        "metadata": str(meta),
        "missing_patches": len(missing),
        "split_source": f"{meta.name} column split",
        "level_hint": " (the 43-class BigEarthNet nomenclature exists for v1 only; this is v2)",
    }
    return Catalog(
        path,
        "bigearthnet",
        recs,
        multilabel=True,
        classes=nomenclature(19),
        notes=notes,
        sensor="s2_l2a",
        levels={1: nomenclature(19)},
    )


def _scan_v1(path: Path, src: Source | None) -> Catalog:
    s2 = _v1_root(path) or path
    recs = []
    for folder in sorted(p for p in s2.iterdir() if p.is_dir()):
        js = _v1_json(folder)
        if js is None:
            continue
        try:
            labels43 = json.loads(js.read_text(encoding="utf-8"))["labels"]
        except (json.JSONDecodeError, KeyError, OSError) as e:
            raise DataError(
                f"{js}: not a BigEarthNet v1 labels file ({type(e).__name__}: {e})"
            ) from None
        recs.append(Record(str(folder), labels=to19(labels43, str(js)), fine=tuple(labels43)))
    cat = Catalog(
        path,
        "bigearthnet",
        recs,
        multilabel=True,
        classes=nomenclature(19),
        notes={"version": 1},
        sensor="s2_l2a",
        levels={1: nomenclature(19), 2: nomenclature(43)},
    )
    src = src or Source(path, path, (path,))
    # TorchGeo keeps bigearthnet-{train,val,test}.csv in the folder above BigEarthNet-v1.0/
    extra = (s2, s2.parent) if s2.name == V1_FOLDER else (s2,)
    return apply_split_lists(cat, src, extra)


def _dataset_folder(src: Source) -> Path | None:
    """The outermost folder of the root's chain that is a BigEarthNet root (a copy holding a single
    patch descends into that patch, which alone looks like a plain Sentinel-2 scene)."""
    return next((p for p in src.chain if p.is_dir() and is_bigearthnet(p)), None)


def _scan_source(src: Source) -> Catalog:
    cat = scan(_dataset_folder(src) or src.inner, src)
    cat.root = src.root
    return cat


FORMAT = Format(
    "bigearthnet",
    lambda s: _dataset_folder(s) is not None,
    _scan_source,
    labelled=True,
    band_folders=True,
    files_of=band_files,
    sensor="s2_l2a",
    describe="BigEarthNet v2 (BigEarthNet-S2/ + metadata.parquet) or v1 (BigEarthNet-v1.0/ + split CSVs)",
)
