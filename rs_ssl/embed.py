"""`rs-ssl embed`: frozen backbone features per patch, written for GIS tools.

Every patch of a regular grid over georeferenced rasters (or every sample of a patch dataset) goes
through the frozen backbone in batches. Outputs in `--out`:
- `embeddings.parquet`: GeoParquet 1.1, one row per patch: `id`, `source`, `row`, `col`, `size`
  (the window in source pixels), `label` (labelled data; several labels joined by `|`), `embedding`
  (fixed-size list of float32) and the footprint polygon `geometry` in the data's CRS;
- `embeddings.gpkg`: the same rows as a GeoPackage layer `embeddings`, with the first `--pcs`
  principal components as columns `pc1..` and the embedding as float32 little-endian bytes
  (QGIS 3.22 and GDAL builds without Arrow do not read Parquet);
- `embedding_rgb.tif` (grids only): a cloud-optimised GeoTIFF, one pixel per grid cell, coloured by
  the first three principal components (2-98 % stretch; 0 = no patch), in the raster's CRS.
Streaming: rows go to disk in groups of `ROW_GROUP`; what stays in memory besides a batch is the
D x D covariance for the principal components and the one-pixel-per-patch colour grid.
"""

from __future__ import annotations

import json
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from rs_ssl.config import EmbedConfig, SimilarConfig, default_out
from rs_ssl.errors import DataError, UsageError
from rs_ssl.runs import prepare_out, write_config, write_metrics

ROW_GROUP = 4096
NODATA = 0  # colour value of grid cells without a patch
# GeoPackage 1.2: GDAL 3.6 (QGIS 3.22 on Debian 12) warns that the 1.4 files of newer GDALs "may only be partially supported".
GPKG_VERSION = "1.2"


@dataclass(frozen=True)
class GridLayout:
    """Patch windows of one raster: `rows x cols` positions `stride` px apart (`mask`: kept positions)."""

    rows: int
    cols: int
    size: int
    stride: int
    mask: np.ndarray | None  # bool (rows, cols); None keeps all

    @classmethod
    def over(cls, raster, size: int, stride: int, allowed: np.ndarray | None) -> GridLayout:
        g = raster.grid
        rows = (g.height - size) // stride + 1 if g.height >= size else 0
        cols = (g.width - size) // stride + 1 if g.width >= size else 0
        mask = (
            allowed[: (rows - 1) * stride + 1 : stride, : (cols - 1) * stride + 1 : stride]
            if allowed is not None and rows and cols
            else None
        )
        return cls(rows, cols, size, stride, mask)

    def positions(self) -> np.ndarray:
        """Flat indices (row-major) of the kept cells; int64, one per patch."""
        if self.mask is None:
            return np.arange(self.rows * self.cols, dtype=np.int64)
        return np.flatnonzero(self.mask).astype(np.int64)


class GridPatches(Dataset):
    """Every kept window of every raster's grid, read lazily: `{"image", "key": (raster, row, col)}`."""

    def __init__(self, rasters: list, layouts: list[GridLayout]):
        self.rasters, self.layouts = rasters, layouts
        self.cells = [lay.positions() for lay in layouts]
        self.offsets = np.cumsum([0] + [len(c) for c in self.cells])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        from rasterio.windows import Window

        k = int(np.searchsorted(self.offsets, index, side="right") - 1)
        lay = self.layouts[k]
        cell = int(self.cells[k][index - self.offsets[k]])
        row, col = (cell // lay.cols) * lay.stride, (cell % lay.cols) * lay.stride
        img = self.rasters[k].read(Window(col, row, lay.size, lay.size))
        return {
            "image": torch.from_numpy(np.ascontiguousarray(img)),
            "key": torch.tensor([k, row, col]),
        }


class SamplePatches(Dataset):
    """Every sample of a patch dataset, with its footprint: `{"image", "label"?, "index", "bounds", "crs"}`."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        from rs_ssl.data.datasets import open_record

        ds = self.dataset
        item = dict(ds[index])
        grid = open_record(ds.catalog, ds.records[index], ds.selection).grid
        item["index"] = index
        item["bounds"] = torch.tensor(grid.bounds, dtype=torch.float64)
        item["shape"] = torch.tensor([grid.height, grid.width])
        item["crs"] = grid.crs.to_wkt() if grid.crs is not None else ""
        return item


def _label_text(target: torch.Tensor, classes: list[str], multilabel: bool) -> str:
    if multilabel:
        return "|".join(classes[j] for j in torch.nonzero(target > 0.5).flatten().tolist())
    return classes[int(target)]


class StreamingPCA:
    """Mean and covariance accumulated batch by batch (float64), then the top components."""

    def __init__(self, dim: int):
        self.n, self.s, self.ss = 0, np.zeros(dim), np.zeros((dim, dim))

    def update(self, x: np.ndarray) -> None:
        x = x.astype(np.float64)
        self.n += len(x)
        self.s += x.sum(0)
        self.ss += x.T @ x

    def components(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(mean (D,), components (k, D)); each component's largest loading is positive (a fixed sign)."""
        mean = self.s / max(self.n, 1)
        cov = self.ss / max(self.n, 1) - np.outer(mean, mean)
        vals, vecs = np.linalg.eigh(cov)
        comp = vecs[:, ::-1][:, :k].T
        signs = np.sign(comp[np.arange(len(comp)), np.abs(comp).argmax(1)])
        return mean, comp * np.where(signs == 0, 1, signs)[:, None]


def _crs_projjson(crs) -> dict | None:
    if crs is None:
        return None
    from pyproj import CRS

    return CRS.from_user_input(crs.to_wkt() if hasattr(crs, "to_wkt") else crs).to_json_dict()


class ParquetRows:
    """GeoParquet writer: buffered rows, one row group per `ROW_GROUP` rows."""

    def __init__(self, path: Path, dim: int, crs, labelled: bool):
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.pa, self.path = pa, path
        fields = [
            pa.field("id", pa.int64()),
            pa.field("source", pa.string()),
            pa.field("row", pa.int32()),
            pa.field("col", pa.int32()),
            pa.field("size", pa.int32()),
        ]
        if labelled:
            fields.append(pa.field("label", pa.string()))
        fields += [
            pa.field("embedding", pa.list_(pa.float32(), dim)),
            pa.field("geometry", pa.binary()),
        ]
        geo = {
            "version": "1.1.0",
            "primary_column": "geometry",
            "columns": {
                "geometry": {
                    "encoding": "WKB",
                    "geometry_types": ["Polygon"],
                    "crs": _crs_projjson(crs),
                }
            },
        }
        self.schema = pa.schema(fields, metadata={b"geo": json.dumps(geo).encode()})
        self.writer = pq.ParquetWriter(str(path), self.schema, compression="zstd")
        self.buffer: dict[str, list] = {f.name: [] for f in fields}
        self.emb: list[np.ndarray] = []
        self.rows = 0

    def add(self, columns: dict[str, list], embedding: np.ndarray) -> None:
        for k, v in columns.items():
            self.buffer[k].extend(v)
        self.emb.append(embedding.astype(np.float32))
        self.rows += len(embedding)
        if len(self.buffer["id"]) >= ROW_GROUP:
            self.flush()

    def flush(self) -> None:
        if not self.buffer["id"]:
            return
        pa = self.pa
        emb = np.concatenate(self.emb)
        arrays = [
            pa.array(self.buffer[f.name], type=f.type) for f in self.schema if f.name != "embedding"
        ]
        names = [f.name for f in self.schema if f.name != "embedding"]
        flat = pa.FixedSizeListArray.from_arrays(pa.array(emb.reshape(-1)), emb.shape[1])
        i = names.index("geometry")
        table = pa.Table.from_arrays([*arrays[:i], flat, arrays[i]], schema=self.schema)
        self.writer.write_table(table)
        self.buffer = {k: [] for k in self.buffer}
        self.emb = []

    def close(self) -> None:
        self.flush()
        self.writer.close()


def _window_polygon(transform, row: int, col: int, size: int) -> bytes:
    from rasterio.windows import Window, bounds
    from shapely import box, to_wkb

    return to_wkb(box(*bounds(Window(col, row, size, size), transform)))


def patch_source(cfg: EmbedConfig, selection):
    """(dataset, kind, rasters, layouts, info): a grid over rasters, or the samples of a patch dataset."""
    from rs_ssl.data import labelled_dataset, open_rasters, pretrain_dataset

    stride = cfg.stride or cfg.size
    try:
        rasters, info = open_rasters(
            cfg.data, cfg.format, selection, skip_bad=cfg.skip_bad, zoom=cfg.zoom
        )
    except UsageError:
        rasters = None  # a dataset of patches: every sample is embedded
    if rasters is not None:
        allowed = None
        if cfg.region:
            from rs_ssl.data.regions import restrict_to_region

            allowed = restrict_to_region(rasters, cfg.region, cfg.size)
        layouts = [
            GridLayout.over(r, cfg.size, stride, allowed[k] if allowed else None)
            for k, r in enumerate(rasters)
        ]
        if not any(lay.rows * lay.cols for lay in layouts):
            raise DataError(
                f"{info['data']}: every raster is smaller than the {cfg.size} px patch; lower --size"
            )
        return GridPatches(rasters, layouts), "grid", rasters, layouts, info
    try:
        ds, info = labelled_dataset(
            cfg.data,
            cfg.format,
            selection,
            split=None,
            patch=cfg.size,
            skip_bad=cfg.skip_bad,
            zoom=cfg.zoom,
        )
    except (DataError, UsageError):
        ds, info = pretrain_dataset(
            cfg.data,
            cfg.format,
            selection,
            patch=cfg.size,
            samples_per_epoch=1,
            region=cfg.region,
            skip_bad=cfg.skip_bad,
            zoom=cfg.zoom,
        )
    if cfg.region and hasattr(ds, "classes"):
        from rs_ssl.data.regions import records_in_region

        keep = {r.path for r in records_in_region(ds.catalog, ds.records, selection, cfg.region)}
        ds.targets = [t for r, t in zip(ds.records, ds.targets, strict=True) if r.path in keep]
        ds.records = [r for r in ds.records if r.path in keep]
    return SamplePatches(ds), "samples", None, None, info


def _collate(items: list[dict]) -> dict:
    out = {}
    for k in items[0]:
        vals = [it[k] for it in items]
        out[k] = torch.stack(vals) if isinstance(vals[0], torch.Tensor) else vals
    return out


def _first_crs(ds) -> Any:
    """CRS of the first sample (footprints of samples in other CRSs are reprojected to it)."""
    from rasterio.crs import CRS

    wkt = ds[0]["crs"]
    return CRS.from_wkt(wkt) if wkt else None


def extract_rows(
    cfg: EmbedConfig, encoder, source, kind: str, rasters, out: Path, device, progress
) -> tuple[int, int, StreamingPCA, Any]:
    """Pass 1: features of every patch into embeddings.parquet; returns (rows, dim, pca, crs)."""
    from rasterio.warp import transform_geom
    from shapely import box, to_wkb
    from shapely.geometry import mapping, shape

    loader = DataLoader(
        source,
        batch_size=cfg.batch_size,
        shuffle=False,
        num_workers=max(0, cfg.workers),
        collate_fn=_collate,
    )
    if kind == "grid":
        crs = rasters[0].grid.crs
        names = [getattr(r, "name", str(r)) for r in rasters]
    else:
        crs = _first_crs(source)
        inner = source.dataset
    labelled = kind == "samples" and hasattr(source.dataset, "classes")
    writer = pca = None
    next_id = 0
    task = progress.add_task("embedding", total=len(loader))
    try:
        for batch in loader:
            x = batch["image"].to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                emb = encoder(x).cpu().numpy()
            if writer is None:
                writer = ParquetRows(out / "embeddings.parquet", emb.shape[1], crs, labelled)
                pca = StreamingPCA(emb.shape[1])
            n = len(emb)
            cols: dict[str, list] = {"id": list(range(next_id, next_id + n))}
            if kind == "grid":
                keys = batch["key"].tolist()
                cols |= {
                    "source": [names[k] for k, _, _ in keys],
                    "row": [r for _, r, _ in keys],
                    "col": [c for _, _, c in keys],
                    "size": [cfg.size] * n,
                    "geometry": [
                        _window_polygon(rasters[k].grid.transform, r, c, cfg.size)
                        for k, r, c in keys
                    ],
                }
            else:
                geoms = []
                for b, wkt in zip(batch["bounds"].tolist(), batch["crs"], strict=True):
                    poly = box(*b)
                    if crs is not None and wkt and wkt != crs.to_wkt():
                        poly = shape(transform_geom(wkt, crs, mapping(poly)))
                    geoms.append(to_wkb(poly))
                shapes = batch["shape"].tolist()
                cols |= {
                    "source": [inner.records[i].path for i in batch["index"]],
                    "row": [0] * n,
                    "col": [0] * n,
                    "size": [max(s) for s in shapes],
                    "geometry": geoms,
                }
                if labelled:
                    cols["label"] = [
                        _label_text(t, inner.classes, inner.multilabel) for t in batch["label"]
                    ]
            writer.add(cols, emb)
            pca.update(emb)
            next_id += n
            progress.advance(task)
    finally:
        if writer is not None:
            writer.close()
    if writer is None:
        raise DataError("no patch to embed (is the region outside the data?)")
    return writer.rows, int(pca.s.shape[0]), pca, crs


def write_gpkg_and_colours(
    out: Path, pcs: int, pca: StreamingPCA, crs, kind: str, rasters, layouts
) -> dict:
    """Pass 2: read embeddings.parquet back in row groups; write embeddings.gpkg and the colour grid(s)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import pyogrio

    k = max(3, pcs)
    mean, comp = pca.components(k)
    colour = (
        [np.full((3, lay.rows, lay.cols), np.nan, dtype=np.float32) for lay in layouts]
        if kind == "grid"
        else None
    )
    names = [getattr(r, "name", str(r)) for r in rasters] if kind == "grid" else []
    gpkg = out / "embeddings.gpkg"
    gpkg.unlink(missing_ok=True)
    crs_wkt = crs.to_wkt() if crs is not None else None
    first = True
    for batch in pq.ParquetFile(out / "embeddings.parquet").iter_batches(batch_size=ROW_GROUP):
        emb = (
            batch.column("embedding")
            .flatten()
            .to_numpy(zero_copy_only=False)
            .reshape(batch.num_rows, -1)
        )
        proj = ((emb.astype(np.float64) - mean) @ comp.T).astype(np.float32)
        cols = {
            n: batch.column(n) for n in batch.schema.names if n not in ("embedding", "geometry")
        }
        cols |= {f"pc{i + 1}": pa.array(proj[:, i]) for i in range(pcs)}
        cols["embedding"] = pa.array([row.tobytes() for row in emb.astype("<f4")], type=pa.binary())
        cols["geometry"] = batch.column("geometry")
        pyogrio.write_arrow(
            pa.table(cols),
            gpkg,
            layer="embeddings",
            driver="GPKG",
            geometry_name="geometry",
            geometry_type="Polygon",
            crs=crs_wkt,
            append=not first,
            dataset_options=None if not first else {"VERSION": GPKG_VERSION},
        )
        first = False
        if colour is not None:
            src = batch.column("source").to_pylist()
            rows, cols_ = batch.column("row").to_numpy(), batch.column("col").to_numpy()
            for j, (s, r, c) in enumerate(zip(src, rows, cols_, strict=True)):
                ki = names.index(s)
                lay = layouts[ki]
                colour[ki][:, r // lay.stride, c // lay.stride] = proj[j, :3]
    files = {}
    if colour is not None:
        for ki, (grid_pc, lay, r) in enumerate(zip(colour, layouts, rasters, strict=True)):
            path = out / ("embedding_rgb.tif" if len(rasters) == 1 else f"embedding_rgb_{ki}.tif")
            write_colour_tif(path, grid_pc, r.grid, lay)
            files[names[ki]] = str(path)
    return files


def stretch(values: np.ndarray) -> np.ndarray:
    """(3, h, w) float with NaN where no patch -> uint8 1..255 per channel (2-98 % stretch), 0 where NaN."""
    out = np.zeros(values.shape, dtype=np.uint8)
    for i, ch in enumerate(values):
        ok = np.isfinite(ch)
        if not ok.any():
            continue
        lo, hi = np.percentile(ch[ok], [2, 98])
        scaled = np.clip((ch[ok] - lo) / (hi - lo if hi > lo else 1.0), 0, 1)
        out[i][ok] = (1 + np.round(scaled * 254)).astype(np.uint8)
    return out


def write_colour_tif(path: Path, values: np.ndarray, grid, lay: GridLayout) -> None:
    """One pixel per grid cell, centred on its patch, in the raster's CRS, as a COG."""
    import rasterio
    from rasterio.enums import ColorInterp
    from rasterio.shutil import copy as rio_copy
    from rasterio.transform import Affine

    t = grid.transform
    half = (lay.size - lay.stride) / 2  # a cell of `stride` px centred on its `size` px patch
    transform = Affine(
        t.a * lay.stride, t.b, t.c + t.a * half, t.d, t.e * lay.stride, t.f + t.e * half
    )
    rgb = stretch(values)
    tmp = path.with_suffix(".tmp.tif")
    profile = {
        "driver": "GTiff",
        "width": lay.cols,
        "height": lay.rows,
        "count": 3,
        "dtype": "uint8",
        "crs": grid.crs,
        "transform": transform,
        "nodata": NODATA,
    }
    with rasterio.open(tmp, "w", **profile) as dst:
        dst.write(rgb)
        dst.colorinterp = (ColorInterp.red, ColorInterp.green, ColorInterp.blue)
        for i in range(3):
            dst.set_band_description(i + 1, f"PC{i + 1}")
    rio_copy(tmp, path, driver="COG", compress="deflate")
    tmp.unlink()


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux: ru_maxrss is in KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def run(cfg: EmbedConfig) -> dict[str, Any]:
    from rs_ssl.eval.features import FrozenEncoder, load_backbone
    from rs_ssl.eval.protocol import device_for, progress_bar

    for name, v in (
        ("size", cfg.size),
        ("batch-size", cfg.batch_size),
        ("stride", cfg.stride or 1),
        ("pcs", cfg.pcs),
    ):
        if v <= 0:
            raise UsageError(f"--{name} must be positive, got {v}")
    if cfg.checkpoint is None:
        raise UsageError(
            "--checkpoint RUN_OR_WEIGHTS is required (a pretraining run folder, its model/ folder or a .safetensors file)"
        )
    out = prepare_out(cfg.out or default_out("embed"))
    lb = load_backbone(
        cfg.checkpoint,
        False,
        cfg.backbone,
        cfg.bands,
        cfg.sensor,
        cfg.seed,
        data=cfg.data,
        fmt=cfg.format,
    )
    source, kind, rasters, layouts, info = patch_source(cfg, lb.selection)
    write_config(
        out,
        "embed",
        cfg,
        extra={
            "backbone": lb.name,
            "weights": lb.source,
            "bands": list(lb.selection.names),
            "patches": len(source),
            "kind": kind,
        },
    )
    device = device_for(cfg.devices)
    encoder = FrozenEncoder(lb.model, lb.selection).to(device).eval()
    with (
        torch.inference_mode()
    ):  # the first forward allocates the model's working memory: before the baseline
        encoder(source[0]["image"][None].to(device))
    rss_before = peak_rss_mb()
    t0 = time.perf_counter()
    with progress_bar() as bar:
        rows, dim, pca, crs = extract_rows(cfg, encoder, source, kind, rasters, out, device, bar)
    t_embed = time.perf_counter() - t0
    colour_files = write_gpkg_and_colours(out, cfg.pcs, pca, crs, kind, rasters, layouts)
    metrics = {
        "command": "embed",
        "rows": rows,
        "embedding_dim": dim,
        "kind": kind,
        "grid": [
            {
                "raster": getattr(r, "name", str(r)),
                "rows": lay.rows,
                "cols": lay.cols,
                "size": lay.size,
                "stride": lay.stride,
                "patches": int(len(lay.positions())),
            }
            for r, lay in zip(rasters, layouts, strict=True)
        ]
        if kind == "grid"
        else None,
        "crs": crs.to_string() if crs is not None else None,
        "backbone": {
            "name": lb.name,
            "weights": lb.source,
            "method": lb.method,
            "bands": list(lb.selection.names),
            "band_transfer": lb.transfer,
        },
        "data": {k: v for k, v in info.items() if k != "skipped_reasons"},
        "embed_seconds": round(t_embed, 2),
        "patches_per_second": round(rows / t_embed, 1) if t_embed > 0 else None,
        "total_seconds": round(time.perf_counter() - t0, 2),
        "peak_rss_mb": peak_rss_mb(),
        "peak_rss_before_patches_mb": rss_before,  # the difference is what the patches added
        "device": device.type,
        "outputs": {
            "parquet": str(out / "embeddings.parquet"),
            "gpkg": str(out / "embeddings.gpkg"),
            "rgb": colour_files or None,
            "config": str(out / "config.yaml"),
        },
    }
    if kind != "grid":
        metrics["outputs"]["rgb_note"] = (
            "no embedding_rgb.tif: samples of a patch dataset share no pixel grid"
        )
    write_metrics(out, metrics)
    print(
        f"embed: {rows} patches x {dim} features ({lb.name} from {lb.source}) in {t_embed:.1f} s; "
        f"peak memory {metrics['peak_rss_mb']} MB\n  run folder: {out}"
    )
    return metrics


def _geo_crs(path: Path):
    """The CRS of a GeoParquet file's primary geometry column (pyproj), or None."""
    import pyarrow.parquet as pq
    from pyproj import CRS

    geo = json.loads(pq.read_schema(path).metadata[b"geo"])
    crs = geo["columns"][geo["primary_column"]].get("crs")
    return CRS.from_json_dict(crs) if crs else None


def find_query(path: Path, query: str) -> tuple[int, np.ndarray]:
    """(row id, embedding) of `--query`: a row id, or LON,LAT (the footprint holding the point, else the nearest)."""
    import pyarrow.parquet as pq
    import shapely

    pf = pq.ParquetFile(path)
    parts = [p.strip() for p in query.split(",")]
    if len(parts) == 1 and parts[0].lstrip("-").isdigit():
        want = int(parts[0])
        for b in pf.iter_batches(batch_size=ROW_GROUP, columns=["id", "embedding"]):
            ids = b.column("id").to_numpy()
            hit = np.flatnonzero(ids == want)
            if len(hit):
                return want, np.asarray(
                    b.column("embedding")[int(hit[0])].as_py(), dtype=np.float32
                )
        raise UsageError(
            f"--query {query}: no row with that id in {path} ({pf.metadata.num_rows} rows)"
        )
    try:
        lon, lat = (float(v) for v in parts)
    except ValueError:
        raise UsageError(f"--query {query}: give a row id or LON,LAT") from None
    from pyproj import Transformer

    crs = _geo_crs(path)
    x, y = (
        Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(lon, lat)
        if crs
        else (lon, lat)
    )
    point = shapely.Point(x, y)
    best: tuple[float, int, Any] = (np.inf, -1, None)
    for b in pf.iter_batches(batch_size=ROW_GROUP, columns=["id", "embedding", "geometry"]):
        geoms = shapely.from_wkb(b.column("geometry").to_numpy(zero_copy_only=False))
        dist = shapely.distance(geoms, point)  # 0 inside a footprint
        j = int(dist.argmin())
        if dist[j] < best[0]:
            best = (
                float(dist[j]),
                int(b.column("id")[j].as_py()),
                b.column("embedding")[j].as_py(),
            )
    if best[1] < 0:
        raise DataError(f"{path}: no rows")
    if best[0] > 0:
        print(
            f"note: {lon},{lat} lies in no patch; using the nearest, {best[0]:.0f} CRS units away (row {best[1]})"
        )
    return best[1], np.asarray(best[2], dtype=np.float32)


def nearest(path: Path, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids, cosine similarities) of the k + 1 rows most similar to `q` (the query itself first), streamed."""
    import pyarrow.parquet as pq

    qn = q / max(float(np.linalg.norm(q)), 1e-12)
    ids, sims = np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
    for b in pq.ParquetFile(path).iter_batches(batch_size=ROW_GROUP, columns=["id", "embedding"]):
        e = b.column("embedding").flatten().to_numpy(zero_copy_only=False).reshape(b.num_rows, -1)
        s = (e @ qn) / np.maximum(np.linalg.norm(e, axis=1), 1e-12)
        ids, sims = (
            np.concatenate([ids, b.column("id").to_numpy()]),
            np.concatenate([sims, s.astype(np.float32)]),
        )
        if len(ids) > k + 1:
            keep = np.argpartition(-sims, k)[: k + 1]
            ids, sims = ids[keep], sims[keep]
    order = np.lexsort((ids, -sims))
    return ids[order], sims[order]


def similar(cfg: SimilarConfig) -> dict[str, Any]:
    """`rs-ssl similar`: the `--k` patches nearest to `--query` by cosine similarity, as GeoParquet and GeoPackage."""
    import geopandas as gpd
    import pyarrow.parquet as pq
    import shapely

    if not cfg.embeddings or not cfg.query:
        raise UsageError(
            "give --embeddings DIR (written by `rs-ssl embed`) and --query ROW_ID|LON,LAT"
        )
    if cfg.k <= 0:
        raise UsageError(f"--k must be positive, got {cfg.k}")
    path = (
        Path(cfg.embeddings) / "embeddings.parquet"
        if Path(cfg.embeddings).is_dir()
        else Path(cfg.embeddings)
    )
    if not path.is_file():
        raise UsageError(
            f"--embeddings {cfg.embeddings}: no embeddings.parquet there; run `rs-ssl embed` first"
        )
    out = prepare_out(cfg.out or default_out("similar"))
    qid, q = find_query(path, cfg.query)
    ids, sims = nearest(path, q, cfg.k)
    table = pq.read_table(path, filters=[("id", "in", ids.tolist())])
    cols = [c for c in table.column_names if c != "embedding"]
    df = table.select(cols).to_pandas()
    rank = {int(i): r for r, i in enumerate(ids)}
    df["similarity"] = [float(sims[rank[int(i)]]) for i in df["id"]]
    df["rank"] = [rank[int(i)] for i in df["id"]]
    gdf = gpd.GeoDataFrame(
        df.drop(columns="geometry"),
        geometry=shapely.from_wkb(df["geometry"].to_numpy()),
        crs=_geo_crs(path),
    ).sort_values("rank")
    gdf.to_parquet(out / "similar.parquet")
    gdf.to_file(out / "similar.gpkg", layer="similar", driver="GPKG")
    write_config(out, "similar", cfg, extra={"query_id": qid})
    metrics = {
        "command": "similar",
        "query_id": qid,
        "k": cfg.k,
        "rows": len(gdf),
        "neighbours": [
            {"id": int(i), "similarity": round(float(s), 6)} for i, s in zip(ids, sims, strict=True)
        ],
        "outputs": {"parquet": str(out / "similar.parquet"), "gpkg": str(out / "similar.gpkg")},
    }
    write_metrics(out, metrics)
    print(
        f"similar: {len(gdf) - 1} patches nearest to row {qid} (cosine {sims[1:].min():.3f}..{sims[1:].max():.3f})\n"
        f"  run folder: {out}"
        if len(gdf) > 1
        else f"similar: only the query row; run folder: {out}"
    )
    return metrics
