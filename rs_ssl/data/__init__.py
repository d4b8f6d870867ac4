"""Readers and datasets: `--data PATH` (any supported format) -> torch datasets of DN patches.

Entry points: `pretrain_dataset` (unlabelled, for `rs-ssl pretrain`), `labelled_dataset` (for probe
and fine-tune), `open_rasters`, `detect_format`, `scan` (the records of a dataset), `data_bands`
(`--bands auto`: the data's own bands). Formats are registered objects (`rs_ssl.data.registry`).
"""

from __future__ import annotations

from pathlib import Path

from rs_ssl.bands import BandSelection, resolve_bands, sensors
from rs_ssl.data import datasets as D
from rs_ssl.data.base import SPLIT_ORDER, Catalog, Record, canonical_split, scan_problems
from rs_ssl.data.registry import NAMES as FORMATS
from rs_ssl.data.registry import detect_format, get_format, scan
from rs_ssl.errors import DataError, UsageError

SAMPLE_DIR = Path(__file__).resolve().parent.parent / "sample_data"

__all__ = [
    "FORMATS",
    "Catalog",
    "Record",
    "data_bands",
    "detect_format",
    "labelled_dataset",
    "open_rasters",
    "pretrain_dataset",
    "resolve_data_bands",
    "sample_path",
    "scan",
]


def sample_path() -> Path:
    """The embedded 13-band Sentinel-2 L1C sample (used when no --data is given)."""
    return SAMPLE_DIR


def _catalog(
    data: str | Path | None,
    fmt: str,
    selection: BandSelection | None,
    zoom: int | None,
    skip_bad: bool = False,
) -> Catalog:
    path = (
        data if data is not None and "://" in str(data) else Path(data) if data else sample_path()
    )
    if isinstance(path, Path) and not path.exists():
        raise UsageError(f"--data {path}: no such file or folder")
    if fmt not in ("auto", *FORMATS):
        raise UsageError(f"--format {fmt}: unknown; choose auto or one of {', '.join(FORMATS)}")
    return scan(
        path, fmt, zoom=zoom, sensor=selection.sensor.key if selection else None, skip_bad=skip_bad
    )


def data_bands(catalog: Catalog, probe: int = 16) -> tuple[str, ...]:
    """The band names of a dataset: the most common among its first `probe` readable records'
    headers (no pixel is read), so that one broken or odd file does not decide them."""
    from collections import Counter

    found, first_error = Counter(), None
    for r in catalog.records[:probe]:
        try:
            found[_record_bands(catalog, r)] += 1
        except (DataError, OSError) as e:
            first_error = first_error or e
    if not found:
        raise first_error or DataError(f"{catalog.root}: no record to read band names from")
    return found.most_common(1)[0][0]


def _record_bands(catalog: Catalog, r: Record) -> tuple[str, ...]:
    from rs_ssl.bands import canonical_band_name
    from rs_ssl.data.readers import file_band_names, open_raster

    f = get_format(catalog.format)
    if f.band_folders:
        return tuple(f.files_of(Path(r.path)))
    if f.open is not None:  # a zarr store names its bands
        from rs_ssl.data.zarr_store import open_cached

        return tuple(canonical_band_name(n) for n in open_cached(r.path)[1]["band_names"])
    with open_raster(r.path) as src:
        return file_band_names(r.path, src.count, src.descriptions, src.colorinterp, catalog.layout)


def zero_filled(catalog: Catalog, selection: BandSelection, probe: int = 16) -> dict[str, int]:
    """Selected bands that some of the first `probe` records lack and readers fill with zeros (B10
    of Sentinel-2 L2A data read with 13 bands), with how many of those records lack each."""
    from rs_ssl.data.readers import FILLABLE

    wanted = [n for n in selection.names if n in FILLABLE]
    out: dict[str, int] = {}
    if not wanted:
        return out
    for r in catalog.records[:probe]:
        try:
            have = set(_record_bands(catalog, r))
        except (DataError, OSError):
            continue  # reported by the reader
        for n in wanted:
            if n not in have:
                out[n] = out.get(n, 0) + 1
    return out


def note_zero_filled(catalog: Catalog, selection: BandSelection) -> dict[str, int]:
    """Print (once per dataset opened) which selected bands are read as zeros; returns them."""
    filled = zero_filled(catalog, selection)
    if filled:
        n = min(len(catalog.records), 16)
        print(
            f"note: {catalog.root}: band(s) {', '.join(filled)} missing from "
            f"{max(filled.values())} of the {n} first item(s) (Sentinel-2 L2A has no B10) are read "
            "as zeros; give --bands auto, or a list without them, to leave them out"
        )
    return filled


def _sensor_for(
    have: tuple[str, ...], catalog_sensor: str | None, sensor: str | None
) -> BandSelection:
    """The bands of `have` that a sensor knows, in its registry order; the sensor named, the data's, the
    one whose bands are exactly these (12 bands without B10: s2_l2a), or the first that has them all."""
    table = sensors()
    keys = [sensor] if sensor else [catalog_sensor] if catalog_sensor else []
    keys += [k for k, s in table.items() if set(s.names) == set(have)]
    keys += [k for k, s in table.items() if set(have) <= set(s.names)]
    keys += sorted(table, key=lambda k: -len(set(have) & set(table[k].names)))
    for k in keys:
        names = tuple(n for n in table[k].names if n in have)
        if names:
            return BandSelection(table[k], names)
    raise DataError(
        f"bands {', '.join(have)}: no registered sensor has them; give --bands and --sensor"
    )


def resolve_data_bands(
    spec: str,
    sensor: str | None,
    data: str | Path | None,
    fmt: str = "auto",
    zoom: int | None = None,
) -> BandSelection:
    """`--bands`: a count or a list as `resolve_bands`, or `auto`: the data's own bands (13 for the
    embedded Sentinel-2 L1C sample, 3 for RGB images, 12 for BigEarthNet's L2A)."""
    if str(spec).strip().lower() != "auto":
        return resolve_bands(spec, sensor)
    cat = _catalog(
        data, fmt, None, zoom, skip_bad=True
    )  # problems of the data are reported by the real scan
    return _sensor_for(data_bands(cat), cat.sensor, sensor)


def _info(cat: Catalog, key: str, n: int, skipped: list[str]) -> dict:
    skipped = scan_problems(cat) + list(skipped)
    return {
        "data": str(cat.root),
        "format": cat.format,
        key: n,
        "skipped": len(skipped),
        "skipped_reasons": skipped,
    }


def open_rasters(
    data: str | Path | None,
    fmt: str,
    selection: BandSelection,
    skip_bad: bool = False,
    zoom: int | None = None,
) -> tuple[list, dict]:
    """Open `--data` (a georeferenced raster format) as windowed rasters; returns (rasters, info)."""
    cat = _catalog(data, fmt, selection, zoom, skip_bad)
    if cat.kind != "rasters":
        raise UsageError(f"--data {cat.root}: a {cat.format} dataset of patches, not large rasters")
    note_zero_filled(cat, selection)
    rasters, skipped = D.open_rasters(cat, selection, skip_bad)
    if not rasters:
        raise DataError(
            f"{cat.root}: no readable raster" + (f" ({len(skipped)} skipped)" if skipped else "")
        )
    return rasters, _info(cat, "rasters", len(rasters), skipped)


def pretrain_dataset(
    data: str | Path | None,
    fmt: str,
    selection: BandSelection,
    *,
    patch: int,
    samples_per_epoch: int,
    seed: int = 0,
    region: str | None = None,
    skip_bad: bool = False,
    subset: int | None = None,
    zoom: int | None = None,
    zarr_aligned: bool = True,
    split: str | None = None,
):
    """The unlabelled training set for `rs-ssl pretrain`: returns (dataset, info for metrics.json).

    Large georeferenced rasters give `samples_per_epoch` seeded random patches (restricted to
    `region`; from a zarr raster, at chunk-aligned positions unless `zarr_aligned` is False, so
    that a chunk-sized patch is one chunk decode); patch and image datasets give every sample (or a seeded `subset` of them), resized
    to `patch` when their native size differs. Each item is `{"image": float32 (C, patch, patch)}`
    in digital numbers, bands in `selection` order. A patch or sample with NaN values or nodata
    in every pixel stops training, or with `skip_bad` is replaced and counted in the dataset's
    `bad_reads.total`. `split` (see `pretrain_records`) is drawn from before `subset`.
    """
    from rs_ssl.data.patches import RandomPatchDataset
    from rs_ssl.data.regions import restrict_to_region

    cat = _catalog(data, fmt, selection, zoom, skip_bad)
    filled = note_zero_filled(cat, selection)
    if cat.kind == "rasters":
        if split not in (None, "auto", "all"):
            raise UsageError(
                f"--split {split}: {cat.root} is {cat.format} rasters, which define no splits; "
                "leave --split out"
            )
        rasters, skipped = D.open_rasters(cat, selection, skip_bad)
        if not rasters:
            raise DataError(f"{cat.root}: no readable raster ({len(skipped)} skipped)")
        allowed = restrict_to_region(rasters, region, patch) if region else None
        dataset = RandomPatchDataset(
            rasters,
            patch,
            samples_per_epoch,
            seed=seed,
            allowed=allowed,
            align=zarr_aligned and get_format(cat.format).chunk_aligned,
            nodata=selection.sensor.nodata,
            skip_bad=skip_bad,
        )
        return dataset, _info(cat, "rasters", len(rasters), skipped) | {"zero_bands": filled}
    chosen, split_name = pretrain_records(cat, split)
    records = D.subset(chosen, subset, seed)
    records, skipped = D.check_records(cat, records, selection, skip_bad)
    if region:
        from rs_ssl.data.regions import records_in_region

        records = records_in_region(cat, records, selection, region)
    if not records:
        raise DataError(f"{cat.root}: no readable sample ({len(skipped)} skipped)")
    info = _info(cat, "samples", len(records), skipped) | {
        "zero_bands": filled,
        "split": split_name,
        "split_samples": len(chosen),
        "dataset_samples": len(cat.records),
        "splits": cat.split_counts(),
        "split_source": cat.notes.get("split_source"),
    }
    source = D.RecordSource(cat, records, selection)
    return D.SampleDataset(source, patch, nodata=selection.sensor.nodata, skip_bad=skip_bad), info


def pretrain_records(cat: Catalog, split: str | None) -> tuple[list[Record], str]:
    """The records `pretrain --split` trains on, and the split's name.

    `auto` (the default): the training split when the data defines splits (so that the probe never
    scores images the backbone trained on), else every sample; `all`: every sample, test included;
    `train`, `val`, `test`: that split.
    """
    split = (split or "auto").strip().lower()
    defined = cat.split_counts()
    if split == "all":
        return cat.records, "all"
    if split == "auto":
        if not defined:
            return cat.records, "all"
        split = "train"
    want = canonical_split(split)
    if want not in SPLIT_ORDER:
        raise UsageError(f"--split {split}: choose train, val, test or all")
    if not defined:
        raise UsageError(
            f"--split {split}: {cat.root} defines no split (no split folders, lists or column); "
            "use --split all"
        )
    recs = [r for r in cat.records if want in r.splits]
    if not recs:
        raise DataError(
            f"--split {split}: no sample of {cat.root} is in it (its splits: "
            f"{', '.join(f'{k} {v}' for k, v in defined.items())}); choose another or --split all"
        )
    return recs, want


def labelled_dataset(
    data: str | Path | None,
    fmt: str,
    selection: BandSelection,
    *,
    split: str | None,
    patch: int,
    level: int = 1,
    skip_bad: bool = False,
    zoom: int | None = None,
):
    """A labelled dataset for probing/fine-tuning: returns (dataset, info).

    Items are `{"image": float32 (C, patch, patch) DN, "label": ...}`: a LongTensor class index
    (single-label) or a FloatTensor multi-hot vector (multi-label, BigEarthNet's 19 classes; v1's
    43 with `level=2`). The dataset has `classes` and `multilabel`. `split` is train, val or test
    (BigEarthNet: metadata.parquet or CSV lists; MillionAID: its train/test folders; trees without
    splits: a fixed 60/20/20 split by file name); None takes every labelled sample. `level` is the
    MillionAID hierarchy level (1: 8 classes, 2: 28, 3: 51 leaves).
    """
    cat = _catalog(data, fmt, selection, zoom, skip_bad)
    if cat.kind != "samples":
        raise UsageError(
            f"--data {cat.root}: {cat.format} rasters carry no labels; use a labelled dataset "
            "(BigEarthNet, MillionAID, a class-folder tree, a labelled zarr or manifest)"
        )
    filled = note_zero_filled(cat, selection)
    classes = cat.classes if cat.classes and level == 1 else cat.label_names(level)
    records = [r for r in D.select_split(cat.records, split) if r.labels or r.hierarchy]
    records, skipped = D.check_records(cat, records, selection, skip_bad)
    if not records:
        raise DataError(f"{cat.root}: no labelled sample in split {split!r}")
    ds = D.LabelledDataset(D.RecordSource(cat, records, selection), patch, classes, level)
    info = _info(cat, "samples", len(records), skipped) | {
        "split": split,
        "classes": len(classes),
        "zero_bands": filled,
        "multilabel": cat.multilabel,
        "split_source": cat.notes.get("split_source") if any(r.splits for r in records) else None,
    }
    return ds, info
