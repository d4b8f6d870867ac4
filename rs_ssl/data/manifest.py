"""`rs-ssl manifest PATH`: scan a dataset once into `manifest.parquet` + `summary.json`.

One row per raster, image or patch: path, format, bands, dtype, size, CRS, bounds, labels, split and
a content checksum. `--check` decodes every file fully and lists the broken ones; `--stats` computes
per-band mean/std (reflectance) streaming over a seeded sample. Training and evaluation accept the
written `manifest.parquet` as `--data` and then skip the scan.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np

from rs_ssl.data.base import Catalog, Record, scan_problems, split_sort_key
from rs_ssl.data.manifest_file import META_KEY, check_inside_root, read_manifest, write_manifest
from rs_ssl.data.readers import FILLABLE, crs_name, file_band_names, open_raster
from rs_ssl.data.registry import get_format
from rs_ssl.data.sentinel2 import check_band_extents
from rs_ssl.data.stats import band_stats
from rs_ssl.errors import DataError

__all__ = [
    "META_KEY",
    "build",
    "check_inside_root",
    "describe",
    "read_manifest",
    "run",
    "summarise",
    "write_manifest",
]


def record_files(catalog: Catalog, r: Record) -> list[Path]:
    """The files holding a record's pixels (the band files of a per-band folder)."""
    f = get_format(catalog.format)
    if f.band_folders:
        return [p for _, p in sorted(f.files_of(Path(r.path)).items())]
    return [Path(r.path)]


def checksum(files: list[Path]) -> str:
    """BLAKE2b-128 of the files' bytes, streamed in 1 MiB blocks."""
    h = hashlib.blake2b(digest_size=16)
    for f in files:
        with open(f, "rb") as fh:
            while block := fh.read(1 << 20):
                h.update(block)
    return h.hexdigest()


def describe(catalog: Catalog, r: Record) -> dict:
    """File facts of one record (headers only); raises DataError naming the file when unreadable."""
    from rs_ssl.bands import get_sensor

    row = {
        "path": r.path,
        "format": catalog.format,
        "labels": list(r.labels),
        "splits": list(r.splits),
        "group": r.group,
        "hierarchy": list(r.hierarchy),
        "fine": list(r.fine),
        "index": r.index,
    }
    f = get_format(catalog.format)
    if f.describe_record is not None:  # a store, not files: its own facts
        return row | f.describe_record(catalog, r)
    files = record_files(catalog, r)
    if not files:
        raise DataError(f"{r.path}: no band files found")
    heads = []
    for f in files:
        with open_raster(str(f)) as src:
            heads.append(
                (
                    f,
                    src.count,
                    src.dtypes,
                    src.descriptions,
                    src.colorinterp,
                    src.crs,
                    src.bounds,
                    src.width,
                    src.height,
                    src.transform,
                )
            )
    if get_format(catalog.format).band_folders:
        have = set(get_format(catalog.format).files_of(Path(r.path)))  # names already canonical
        order = get_sensor(catalog.sensor or get_format(catalog.format).sensor or "s2_l1c").names
        names = [n for n in order if n in have]
        dtypes = {d for h in heads for d in h[2]}
        finest = min(heads, key=lambda h: h[9].a)
        bad = [h[0].name for h in heads if h[1] != 1]
        if bad:
            raise DataError(f"{r.path}: band file(s) {', '.join(bad)} hold more than one band")
        check_band_extents([(h[0], h[9], h[6]) for h in heads])
    else:
        f, count, dt, desc, ci = heads[0][:5]
        names = list(file_band_names(str(f), count, desc, ci, catalog.layout))
        dtypes, finest = set(dt), heads[0]
    if len(dtypes) > 1:
        raise DataError(f"{r.path}: mixed dtypes {sorted(dtypes)}")
    crs = finest[5]
    georef = get_format(catalog.format).georef
    return (
        row
        | {
            "bands": names,
            "dtype": dtypes.pop(),
            "width": finest[7],
            "height": finest[8],
            "crs": crs_name(crs) if crs and not finest[9].is_identity else None,
            "bounds": list(finest[6]) if crs else None,
            "checksum": checksum(files),
        }
        | (georef(catalog, r) if georef else {})
    )


def decode(catalog: Catalog, r: Record) -> None:
    """Decode every pixel of a record; DataError naming the file on truncation, NaN or all-nodata."""
    f = get_format(catalog.format)
    if f.decode_record is not None:
        f.decode_record(catalog, r)
        return
    import rasterio

    for f in record_files(catalog, r):
        with open_raster(str(f)) as src:
            try:
                data = src.read()
            except rasterio.errors.RasterioIOError as e:
                raise DataError(f"{f}: decoding failed ({e}); truncated or corrupt") from None
            if np.issubdtype(data.dtype, np.floating) and np.isnan(data).any():
                raise DataError(f"{f}: contains NaN pixels ({int(np.isnan(data).sum())})")
            # Without a nodata tag, 0 is taken as nodata (Sentinel-2's DN convention, as in training).
            nodata = 0 if src.nodata is None else src.nodata
            if (data == nodata).all():
                raise DataError(f"{f}: every pixel is nodata ({nodata:g})")


def consistency(rows: list[dict]) -> list[tuple[int, str]]:
    """Rows whose band list or dtype differs from the majority: (row index, problem)."""
    if not rows:
        return []

    # Bands an L2A product lacks (B10) do not make it inconsistent with L1C scenes beside it (one
    # Sentinel-2 folder, as TorchGeo's, may hold both): readers zero-fill them, with a printed note.
    def key(r: dict) -> tuple[str, ...]:
        return tuple(b for b in r["bands"] if b not in FILLABLE)

    common_bands = Counter(key(r) for r in rows).most_common(1)[0][0]
    common_dtype = Counter(r["dtype"] for r in rows).most_common(1)[0][0]
    out = []
    for i, r in enumerate(rows):
        if key(r) != common_bands:
            out.append(
                (
                    i,
                    f"{r['path']}: {len(r['bands'])} bands ({','.join(r['bands'])}) while most files have {len(common_bands)} ({','.join(common_bands)})",
                )
            )
        elif r["dtype"] != common_dtype:
            out.append(
                (
                    i,
                    f"{r['path']}: dtype {r['dtype']} while most files are {common_dtype} (mixed dtypes)",
                )
            )
    return out


def build(
    catalog: Catalog, *, check: bool = False, skip_bad: bool = False, progress: bool = True
) -> tuple[list[dict], list[str]]:
    """Describe (and with `check` decode) every record; returns (good rows, problems of skipped ones)."""
    from rich.progress import track

    rows, problems = [], []
    it = track(
        catalog.records,
        description="scanning",
        disable=not progress or len(catalog.records) < 200,
        transient=True,
    )
    for r in it:
        try:
            row = describe(catalog, r)
            if check:
                decode(catalog, r)
            rows.append(row)
        except (DataError, OSError) as e:
            msg = str(e) if isinstance(e, DataError) else f"{r.path}: {e.strerror or e}"
            if not skip_bad and not check:
                raise DataError(msg) from None
            problems.append(msg)
    bad = consistency(rows)
    if bad and not skip_bad and not check:
        raise DataError(
            bad[0][1]
            + (f" (+{len(bad) - 1} more)" if len(bad) > 1 else "")
            + "; fix them or pass --skip-bad"
        )
    drop = {i for i, _ in bad}
    problems += [m for _, m in bad]
    return [r for i, r in enumerate(rows) if i not in drop], problems


def split_counts(rows: list[dict]) -> dict[str, int]:
    """Rows per split; a sample in several splits counts in each (the total `count` counts it once)."""
    c = Counter(s for r in rows for s in r["splits"])
    return dict(sorted(c.items(), key=lambda kv: split_sort_key(kv[0])))


def summarise(catalog: Catalog, rows: list[dict], problems: list[str]) -> dict:
    labels = Counter(lab for r in rows for lab in r["labels"])
    bands = Counter(tuple(r["bands"]) for r in rows).most_common(1)[0][0] if rows else ()
    return {
        "data": str(catalog.root),
        "format": catalog.format,
        "count": len(rows),
        "bands": list(bands),
        "dtypes": sorted({r["dtype"] for r in rows}),
        "crs": sorted({r["crs"] for r in rows if r["crs"]}),
        "labels": dict(sorted(labels.items())),
        "splits": split_counts(rows),
        "split_source": catalog.notes.get("split_source"),
        "multilabel": catalog.multilabel,
        "skipped": len(problems) + len(scan_problems(catalog)),
        "problems": problems + scan_problems(catalog),
    } | {k: catalog.notes[k] for k in ("zoom", "scheme", "missing_tiles") if k in catalog.notes}


def run(cfg) -> None:
    """`rs-ssl manifest`: write manifest.parquet, summary.json, config.yaml, metrics.json into --out."""
    import time

    import yaml

    from rs_ssl.config import default_out
    from rs_ssl.data import _catalog, resolve_data_bands
    from rs_ssl.runs import atomic_write_text, prepare_out, write_config, write_metrics

    t0 = time.time()
    selection = resolve_data_bands(cfg.bands, cfg.sensor, cfg.data, cfg.format, cfg.zoom)
    out = prepare_out(cfg.out or default_out("manifest"))
    write_config(out, "manifest", cfg)
    catalog = _catalog(cfg.data, cfg.format, selection, cfg.zoom, cfg.skip_bad)
    rows, problems = build(catalog, check=cfg.check, skip_bad=cfg.skip_bad)
    summary = summarise(catalog, rows, problems)
    if cfg.check:
        summary["broken"] = problems
    if cfg.stats:
        table = band_stats(catalog, selection, cfg.seed)  # the shipped tables' routine
        atomic_write_text(
            out / "stats.yaml",
            yaml.safe_dump(
                table | {"source": f"rs-ssl manifest --stats {catalog.root}"}, sort_keys=False
            ),
        )
        summary["stats"] = table
    write_manifest(out / "manifest.parquet", catalog, rows)
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2, default=str) + "\n")
    write_metrics(
        out,
        {
            "count": summary["count"],
            "skipped": summary["skipped"],
            "seconds": round(time.time() - t0, 3),
        },
    )
    print(
        f"{summary['format']}: {summary['count']} item(s), {len(summary['bands'])} bands ({','.join(summary['bands'])}), "
        f"CRS {', '.join(summary['crs']) or 'none'}"
    )
    if summary.get("missing_tiles"):
        print(
            f"zoom {summary['zoom']}: {summary['missing_tiles']} tile(s) missing inside the tiles' "
            "bounding box: read as transparent (random patches there are redrawn)"
        )
    if summary["labels"]:
        print("labels: " + ", ".join(f"{k} {v}" for k, v in summary["labels"].items()))
    if summary["splits"]:
        print(
            "splits: "
            + ", ".join(f"{k} {v}" for k, v in summary["splits"].items())
            + f" (from {summary['split_source'] or 'the data'}; a sample may be in several)"
        )
    if problems:
        print(f"{len(problems)} problem file(s){' skipped' if cfg.skip_bad else ''}:")
        for p in problems[:20]:
            print(f"  {p}")
    print(f"wrote {out / 'manifest.parquet'} and {out / 'summary.json'}")
    if cfg.check and problems and not cfg.skip_bad:
        raise DataError(
            f"{len(problems)} broken file(s) in {catalog.root}; see {out / 'summary.json'} (or pass --skip-bad)"
        )
