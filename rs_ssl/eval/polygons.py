"""Labels from polygons (`rs-ssl probe --labels VECTOR --label-field FIELD`): a regular grid of patches
over georeferenced scenes, each labelled by the area of every class's polygons inside it.

Area is measured on the raster grid (polygons rasterised at pixel centres), so it is exact to one
pixel. Single-label: the class with the largest area, if it covers at least `--min-coverage` of the
patch. Multi-label (`--multilabel`): every class covering at least `--min-coverage`. Patches below
the threshold for every class are unlabelled and left out.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from rasterio.features import rasterize

from rs_ssl.bands import BandSelection
from rs_ssl.config import ProbeConfig, check_option
from rs_ssl.data.patches import GridPatchDataset
from rs_ssl.errors import DataError, UsageError
from rs_ssl.eval.splits import Splits, ensure_validation, stratified_split


def read_labels(path: str | Path, field: str | None):
    """The vector file as a GeoDataFrame with a `field` column; errors name the file and the fields."""
    from rs_ssl.data.vectors import read_vector

    p = Path(path)
    gdf = read_vector(p, "--labels")
    fields = [c for c in gdf.columns if c != "geometry"]
    if not field:
        raise UsageError(f"--labels {p}: give --label-field, one of {', '.join(fields)}")
    if field not in gdf.columns:
        raise UsageError(
            f"--label-field {field}: not an attribute of {p}; its attributes are {', '.join(fields)}"
        )
    gdf = gdf[gdf.geometry.notna() & gdf[field].notna()]
    gdf = gdf[gdf.geom_type.isin(["Polygon", "MultiPolygon"])]
    if gdf.empty:
        raise DataError(f"--labels {p}: no polygon with a value in {field!r}")
    return gdf


def coverage(raster, gdf, field: str, classes: list[str], patch: int) -> np.ndarray:
    """(rows, cols, classes) fraction of each grid patch covered by each class's polygons."""
    g = raster.grid
    local = gdf.to_crs(g.crs)
    rows, cols = g.height // patch, g.width // patch
    out = np.zeros((rows, cols, len(classes)), dtype=np.float64)
    for j, c in enumerate(classes):
        shapes = [(geom, 1) for geom in local.geometry[local[field].astype(str) == c]]
        if not shapes:
            continue
        m = rasterize(
            shapes, out_shape=(g.height, g.width), transform=g.transform, fill=0, dtype="uint8"
        )
        m = m[: rows * patch, : cols * patch].reshape(rows, patch, cols, patch)
        out[:, :, j] = m.mean(axis=(1, 3))
    return out


class PolygonPatches(GridPatchDataset):
    """Grid patches `(raster, row, col)` with their labels; items as `labelled_dataset`'s."""

    def __init__(
        self,
        rasters: list,
        positions: list[tuple[int, int, int]],
        targets: list[torch.Tensor],
        patch: int,
        classes: list[str],
        multilabel: bool,
    ):
        super().__init__(rasters, patch, positions=positions)
        self.targets, self.classes, self.multilabel = targets, classes, multilabel

    @property
    def positions(self) -> list[tuple[int, int, int]]:
        """The `(raster, row, col)` of each item (the grid dataset's index)."""
        return self.index

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        img = np.ascontiguousarray(self.read(i), dtype=np.float32)
        return {"image": torch.from_numpy(img), "label": self.targets[i]}


def polygon_dataset(
    data: str | None,
    fmt: str,
    selection: BandSelection,
    labels: str,
    field: str | None,
    *,
    patch: int,
    min_coverage: float,
    multilabel: bool,
    region: str | None = None,
    skip_bad: bool = False,
) -> tuple[PolygonPatches, dict]:
    """Label a `patch`-pixel grid over the rasters of `data` from the polygons of `labels`."""
    from rs_ssl.data import open_rasters

    check_option(ProbeConfig, "min_coverage", min_coverage)
    gdf = read_labels(labels, field)
    classes = sorted(gdf[field].astype(str).unique())
    rasters, info = open_rasters(data, fmt, selection, skip_bad)
    allowed = None
    if region:
        from rs_ssl.data.regions import restrict_to_region

        allowed = restrict_to_region(rasters, region, patch)
    positions, targets, unlabelled = [], [], 0
    for k, r in enumerate(rasters):
        cov = coverage(r, gdf, field, classes, patch)
        for i in range(cov.shape[0]):
            for j in range(cov.shape[1]):
                row, col = i * patch, j * patch
                if allowed is not None and not allowed[k][row, col]:
                    continue
                c = cov[i, j]
                if multilabel:
                    t = torch.from_numpy((c >= min_coverage).astype(np.float32))
                    ok = bool(t.any())
                else:
                    t = torch.tensor(int(c.argmax()))
                    ok = c.max() >= min_coverage
                if ok:
                    positions.append((k, row, col))
                    targets.append(t)
                else:
                    unlabelled += 1
    if not positions:
        raise DataError(
            f"--labels {labels}: no {patch} px patch of {info['data']} has a class covering "
            f"{min_coverage:.0%} or more (do the polygons overlap the scenes? try a lower --min-coverage)"
        )
    ds = PolygonPatches(rasters, positions, targets, patch, classes, multilabel)
    rule = (
        f"every class covering >= {min_coverage:.0%} of the patch"
        if multilabel
        else f"majority class by area, if it covers >= {min_coverage:.0%} of the patch"
    )
    return ds, {
        **info,
        "samples": len(positions),
        "unlabelled_patches": unlabelled,
        "labelling": rule,
        "labels": str(labels),
        "label_field": field,
    }


def polygon_splits(cfg, selection: BandSelection) -> Splits:
    """`rs-ssl probe/finetune --labels`: a seeded stratified 60/20/20 split of the polygon-labelled patches."""
    from torch.utils.data import Subset

    ds, info = polygon_dataset(
        cfg.data,
        cfg.format,
        selection,
        cfg.labels,
        cfg.label_field,
        patch=cfg.size,
        min_coverage=cfg.min_coverage,
        multilabel=cfg.multilabel,
        region=cfg.region,
        skip_bad=cfg.skip_bad,
    )
    idx = stratified_split(torch.stack(ds.targets), ds.multilabel, cfg.seed)
    if not idx["train"] or not idx["test"]:
        raise DataError(
            f"--labels {cfg.labels}: too few labelled patches ({len(ds)}) for a train and a test split"
        )
    val_source = ensure_validation(idx, torch.stack(ds.targets), ds.multilabel, cfg.seed)
    return Splits(
        {k: Subset(ds, v) for k, v in idx.items()},
        ds.classes,
        ds.multilabel,
        {
            "split_source": f"seeded stratified 60/20/20 split of polygon-labelled patches (seed {cfg.seed})",
            "official": False,
            "validation_source": val_source,
            "sizes": {k: len(v) for k, v in idx.items()},
            "data": info,
            "labelling": info["labelling"],
        },
    )
