"""`rs-ssl convert PATH --to zarr OUT`: any supported input to a chunked, compressed zarr store.

One large raster becomes a `(band, y, x)` store chunked `(bands, size, size)`; several rasters are cut
into a grid of `size` patches and, like patch datasets, stored as `(sample, band, size, size)` with
one chunk per sample. Georeference (CRS, affine transform) and band names are kept as attributes;
pixels are stored in the input's dtype, so reading the store returns exactly the input's pixels
(patch datasets whose native size differs from `--size` are resized and stored as float32).
"""

from __future__ import annotations

import time
from pathlib import Path

from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from rs_ssl.errors import UsageError


def convert(
    data,
    fmt: str,
    selection,
    out: str | Path,
    size: int,
    *,
    zoom: int | None = None,
    skip_bad: bool = False,
) -> dict:
    """Write `data` as a zarr store at `out`; returns a summary (layout, shape, chunks, count)."""
    from rs_ssl.data import _catalog
    from rs_ssl.data import datasets as D
    from rs_ssl.data import zarr_store as Z
    from rs_ssl.data.manifest import describe
    from rs_ssl.data.patches import GridPatchDataset
    from rs_ssl.data.readers import fit_to
    from rs_ssl.data.registry import get_format

    cat = _catalog(data, fmt, selection, zoom)
    if cat.kind == "rasters":
        rasters, skipped = D.open_rasters(cat, selection, skip_bad)
        dtype = (
            describe(cat, cat.records[0])["dtype"]
            if get_format(cat.format).mosaic is None
            else rasters[0].dtype
        )
        if len(rasters) == 1:
            info = Z.write_raster(out, rasters[0], selection, size, dtype)
            return info | {"layout": "band,y,x", "source": cat.format, "skipped": len(skipped)}
        grid = GridPatchDataset(rasters, size)
        if not len(grid):
            raise UsageError(f"--size {size}: larger than every raster of {cat.root}")

        def patches():
            for k, row, col in grid.index:
                r = rasters[k]
                w = Window(col, row, size, size)
                yield (
                    r.read(w),
                    {
                        "crs": r.grid.crs.to_wkt() if r.grid.crs else None,
                        "transform": list(window_transform(w, r.grid.transform))[:6],
                        "path": getattr(r, "name", str(k)),
                    },
                )

        info = Z.write_samples(out, patches(), len(grid), len(selection), size, selection, dtype)
        return info | {"layout": "sample,band,y,x", "source": cat.format, "skipped": len(skipped)}
    records, skipped = D.check_records(cat, cat.records, selection, skip_bad)
    ds = D.SampleDataset(D.RecordSource(cat, records, selection), size)
    first = D.open_record(cat, records[0], selection)
    native = (first.grid.height, first.grid.width) == (size, size)
    dtype = describe(cat, records[0])["dtype"] if native else "float32"

    def samples():
        for r in records:
            reader = D.open_record(cat, r, selection)
            img = reader.read()
            if img.shape[1:] != (size, size):
                img = fit_to(img, size).numpy()
            yield (
                img,
                {
                    "crs": reader.grid.crs.to_wkt() if reader.grid.crs else None,
                    "transform": list(reader.grid.transform)[:6],
                    "path": r.path,
                    "labels": r.labels,
                    "split": list(r.splits),
                },
            )

    extra = {
        "classes": cat.classes or cat.label_names(1),
        "multilabel": cat.multilabel,
        "source_format": cat.format,
    }
    info = Z.write_samples(out, samples(), len(ds), len(selection), size, selection, dtype, extra)
    return info | {"layout": "sample,band,y,x", "source": cat.format, "skipped": len(skipped)}


def run(cfg) -> None:
    from rs_ssl.data import resolve_data_bands
    from rs_ssl.runs import prepare_out, write_config, write_metrics

    if not cfg.out:
        raise UsageError("convert needs an output: rs-ssl convert PATH --to zarr OUT")
    t0 = time.time()
    out = Path(cfg.out)
    selection = resolve_data_bands(cfg.bands, cfg.sensor, cfg.data, cfg.format, cfg.zoom)
    store = out if out.suffix == ".zarr" else out / "data.zarr"
    prepare_out(store.parent)
    write_config(store.parent, "convert", cfg)
    info = convert(
        cfg.data, cfg.format, selection, store, cfg.size, zoom=cfg.zoom, skip_bad=cfg.skip_bad
    )
    write_metrics(store.parent, info | {"store": str(store), "seconds": round(time.time() - t0, 3)})
    print(
        f"wrote {store}: {info['layout']} {info['shape']} chunks {info['chunks']} from {info['source']}"
    )
