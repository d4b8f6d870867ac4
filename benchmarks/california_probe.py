"""California-style probe: patches of Sentinel-2 scenes labelled from the user's own polygons (field
boundaries, crop maps), then a linear probe on frozen features as in `rs-ssl probe`.

Full protocol (e.g. a crop map over California scenes):

    python benchmarks/california_probe.py --data /data/s2_california --labels crops.gpkg \
        --label-field crop --region california --checkpoint runs/pretrain-X --size 64

`--mini` runs it on the embedded 13-band Sentinel-2 L1C sample (UTM 18N, near 75.7 W 37.7 N; not in
California, so no --region) with three crude rectangles drawn by eye over its true-colour render
(`mini_polygons`), labelled built_up / cropland / forest. A smoke test of the protocol, not a result.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rs_ssl.cli import run_for_metrics

# Pixel boxes (col0, row0, col1, row1) on the embedded sample's 10 m grid, drawn over its render.
MINI_BOXES = {
    "built_up": [(224, 160, 352, 288)],
    "cropland": [(288, 384, 480, 448), (0, 96, 96, 160)],
    "forest": [(128, 320, 224, 416), (160, 96, 288, 160)],
}


def mini_polygons(path: Path) -> Path:
    """Write MINI_BOXES as a GeoJSON in EPSG:32618 (the sample's CRS) with a `landcover` field."""
    import geopandas as gpd
    from shapely.geometry import box

    from rs_ssl.bands import resolve_bands
    from rs_ssl.data import open_rasters

    grid = open_rasters(None, "auto", resolve_bands("13"))[0][0].grid
    t = grid.transform
    rows = [
        {"landcover": name, "geometry": box(*(t @ (c0, r1)), *(t @ (c1, r0)))}
        for name, boxes in MINI_BOXES.items()
        for c0, r0, c1, r1 in boxes
    ]
    gpd.GeoDataFrame(rows, crs=grid.crs).to_file(path, driver="GeoJSON")
    return path


def run(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", help="Sentinel-2 scenes (any raster format rs-ssl reads)")
    ap.add_argument("--labels", help="vector file of label polygons")
    ap.add_argument("--label-field", help="attribute holding the class")
    ap.add_argument("--region", default=None, help="e.g. california")
    ap.add_argument(
        "--checkpoint", help="pretraining run folder or .safetensors (default: random init)"
    )
    ap.add_argument(
        "--mini", action="store_true", help="embedded Sentinel-2 sample with MINI_BOXES polygons"
    )
    ap.add_argument("--size", type=int, default=None, help="patch size (default: 64 full, 32 mini)")
    ap.add_argument("--multilabel", action="store_true")
    ap.add_argument("--out", default="runs/bench-california-probe")
    a = ap.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if a.mini:
        data, labels, field, region = (
            [],
            str(mini_polygons(out / "mini_polygons.geojson")),
            "landcover",
            None,
        )
    else:
        if not (a.data and a.labels and a.label_field):
            ap.error("give --data, --labels and --label-field, or --mini")
        data, labels, field, region = ["--data", a.data], a.labels, a.label_field, a.region
    init = ["--checkpoint", a.checkpoint] if a.checkpoint else ["--random-init"]
    argv = [
        "probe",
        *init,
        *data,
        "--bands",
        "13",
        "--labels",
        labels,
        "--label-field",
        field,
        *(["--region", region] if region else []),
        "--size",
        str(a.size or (32 if a.mini else 64)),
        "--knn",
        "5",
        *(["--multilabel"] if a.multilabel else []),
        "--out",
        str(out),
    ]
    m = run_for_metrics(argv, out)
    keys = (
        ("f1_micro", "f1_macro", "map_micro", "map_macro")
        if a.multilabel
        else ("accuracy", "precision", "recall", "f1")
    )
    print(json.dumps({"benchmark": "california_probe", "mini": a.mini, **{k: m[k] for k in keys}}))
    return m


if __name__ == "__main__":
    run(sys.argv[1:])
