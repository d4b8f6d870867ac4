"""The committed manifest of the embedded sample matches a fresh scan (counts, bands, CRS, checksums)."""

from __future__ import annotations

import json
import os

import pandas as pd

from rs_ssl.data import sample_path, scan
from rs_ssl.data.manifest import build, summarise
from rs_ssl.manifests import manifest_path

FACTS = ["format", "bands", "dtype", "width", "height", "crs", "bounds", "checksum"]


def test_embedded_sample_manifest_is_current():
    committed = manifest_path("samples", "embedded_s2_l1c")
    summary = json.loads((committed / "summary.json").read_text())
    table = pd.read_parquet(committed / "manifest.parquet")
    catalog = scan(sample_path())
    rows, problems = build(catalog, progress=False)
    fresh = summarise(catalog, rows, problems)
    assert summary["count"] == fresh["count"] == len(table) == 1
    for key in ("format", "bands", "dtypes", "crs", "labels", "splits", "multilabel", "skipped"):
        assert summary[key] == fresh[key], key
    assert summary["crs"] == ["EPSG:32618"] and len(summary["bands"]) == 13
    for k in FACTS:
        assert (
            list(table.iloc[0][k]) == list(rows[0][k])
            if k in ("bands", "bounds")
            else table.iloc[0][k] == rows[0][k]
        ), k
    # paths are stored relative to the repository root
    root = committed.parent.parent.parent
    assert os.path.samefile(root / table.iloc[0]["path"], sample_path())
