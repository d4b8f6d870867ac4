"""`manifest.parquet`: the records of a dataset written once by `rs-ssl manifest`, read back as a catalog."""

from __future__ import annotations

import json
import os
import posixpath
from pathlib import Path

from rs_ssl.data.base import Catalog, Format, Record, Source, canonical_split
from rs_ssl.errors import DataError

META_KEY = b"rs_ssl"
_RASTER_FORMATS = (
    "sentinel2",
    "geotiff",
    "tiles",
    "xyz",
)  # manifests written before `kind` was stored


def write_manifest(path: Path, catalog: Catalog, rows: list[dict]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist(rows) if rows else pa.table({})
    meta = {
        "root": str(catalog.root),
        "format": catalog.format,
        "layout": catalog.layout,
        "multilabel": catalog.multilabel,
        "classes": catalog.classes,
        "notes": catalog.notes,
        "kind": catalog.kind,
        "sensor": catalog.sensor,
        "levels": catalog.levels,
    }
    table = table.replace_schema_metadata(
        {**(table.schema.metadata or {}), META_KEY: json.dumps(meta, default=str).encode()}
    )
    pq.write_table(table, path)


def check_inside_root(manifest: Path, row: int, root: str, p: str) -> None:
    """DataError unless row `row`'s path `p` lies inside the dataset `root` recorded in the manifest.

    A manifest must not make training read files elsewhere (`../../etc/passwd`, an absolute path
    outside the root): relative paths are taken from the working directory, as `rs-ssl manifest`
    wrote them, after `..` is resolved; symbolic links inside the root are not followed. There is
    no option to allow outside paths: rewrite the manifest with `rs-ssl manifest` on the real root.
    """
    if "://" in root or "://" in p:  # URLs (Catalog roots are Paths: `s3://b` is stored as `s3:/b`)
        base, target = (posixpath.normpath(s.replace("://", ":/", 1)) for s in (root, p))
        inside = target == base or target.startswith(base.rstrip("/") + "/")
    else:
        base, target = os.path.abspath(root), os.path.abspath(p)
        inside = target == base or target.startswith(base.rstrip(os.sep) + os.sep)
    if not inside:
        raise DataError(
            f"{manifest}: row {row} has path {p!r}, outside the dataset root {root}; "
            "manifest paths must stay inside the root it was written for (re-run `rs-ssl manifest`)"
        )


def read_manifest(path: Path) -> Catalog:
    """A catalog from `manifest.parquet` (or a folder holding one), without scanning the data."""
    import pyarrow.parquet as pq

    path = path / "manifest.parquet" if path.is_dir() else path
    try:
        table = pq.read_table(path)
    except Exception as e:  # noqa: BLE001 - pyarrow raises several types for bad files
        raise DataError(f"{path}: cannot be read as a manifest ({e})") from None
    raw = (table.schema.metadata or {}).get(META_KEY)
    if raw is None:
        raise DataError(
            f"{path}: not an rs-ssl manifest (no rs_ssl metadata); write one with `rs-ssl manifest DATA`"
        )
    meta = json.loads(raw)
    recs = [
        Record(
            r["path"],
            labels=tuple(r["labels"] or ()),
            splits=_row_splits(r),
            group=r["group"],
            hierarchy=tuple(r["hierarchy"] or ()),
            fine=tuple(r["fine"] or ()),
            index=None if r["index"] is None else int(r["index"]),
        )
        for r in table.to_pylist()
    ]
    if not recs:
        raise DataError(f"{path}: the manifest lists no readable file")
    for i, r in enumerate(recs):
        check_inside_root(path, i, str(meta["root"]), r.path)
    kind = meta.get("kind") or (
        "rasters"
        if meta["format"] in _RASTER_FORMATS
        or (meta["format"] == "zarr" and not (meta["notes"] or {}).get("samples"))
        else "samples"
    )
    levels = {int(k): v for k, v in meta["levels"].items()} if meta.get("levels") else None
    return Catalog(
        Path(meta["root"]),
        meta["format"],
        recs,
        multilabel=meta["multilabel"],
        classes=meta["classes"],
        layout=meta["layout"],
        notes=meta["notes"] or {},
        kind=kind,
        sensor=meta.get("sensor"),
        levels=levels,
    )


def _row_splits(row: dict) -> tuple[str, ...]:
    """`splits` (a list) or, in manifests written before samples could be in several splits, `split`."""
    if row.get("splits") is not None:
        return tuple(row["splits"])
    s = canonical_split(row.get("split"))
    return (s,) if s else ()


def _is_manifest(src: Source) -> bool:
    p = src.root
    if p.is_file():
        return p.suffix == ".parquet"
    return (p / "manifest.parquet").is_file() and not any(p.glob("*.tif"))


FORMAT = Format(
    "manifest",
    _is_manifest,
    lambda s: read_manifest(s.root),
    labelled=True,
    describe="a manifest.parquet written by `rs-ssl manifest` (or a folder holding one)",
)
