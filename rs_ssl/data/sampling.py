"""`pretrain --sampler`: which sampler draws the training patches of georeferenced rasters.

- `rs-ssl` (default, the faster one; see benchmarks/RESULTS.md): `RandomPatchDataset`, seeded random
  windows on the rasters' own pixel grids, `--region` as a mask of allowed corners, mostly
  transparent or nodata patches redrawn.
- `torchgeo-random`, `torchgeo-grid`, `torchgeo-batch`: TorchGeo's `RandomGeoSampler`,
  `GridGeoSampler` (stride = patch) and `RandomBatchGeoSampler` (each batch from one raster) over
  the same rasters (`TorchGeoRasters`, one CRS), with `--region` as their region of interest.

Resume: every sampler's patches of epoch `e` are a pure function of (`--seed`, `e`): the TorchGeo
samplers draw the epoch's queries up front with a torch.Generator seeded from them, and the
trainer's `EpochSampler` skips the samples a checkpoint already trained on. So `--resume` trains on
exactly the patches an uninterrupted run would have, with each sampler (`torchgeo-grid` visits
every grid cell once per epoch, in a seeded order; `torchgeo-batch` keeps its order, so that each
batch stays one raster's). What the TorchGeo samplers do not do: redraw nodata or transparent
patches, or read patch and image datasets (they need georeferenced rasters).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset

from rs_ssl.bands import BandSelection
from rs_ssl.data.patches import BadReadCounter
from rs_ssl.errors import DataError, UsageError

SAMPLERS = ("rs-ssl", "torchgeo-random", "torchgeo-grid", "torchgeo-batch")


class TorchGeoPatches(Dataset):
    """The patches a TorchGeo sampler draws over `TorchGeoRasters`, as a map-style dataset.

    `set_epoch(e)` draws epoch e's queries with a generator seeded from (seed, e); item i reads
    query i (`{"image": float32 (C, patch, patch)}` DN, like `RandomPatchDataset`). `shuffle` tells
    the trainer whether it may reorder them (not for `torchgeo-batch`, whose batches are one raster's).
    """

    def __init__(
        self,
        rasters,
        kind: str,
        patch: int,
        length: int,
        *,
        seed: int = 0,
        roi=None,
        batch_size: int = 1,
    ):
        self.rasters, self.kind, self.patch, self.length = rasters, kind, patch, length
        self.seed, self.roi, self.batch_size = seed, roi, batch_size
        self.shuffle = kind != "torchgeo-batch"
        self.bad_reads = BadReadCounter()  # none are redrawn: TorchGeo's samplers do not check
        self.epoch = -1
        self.set_epoch(0)

    def _sampler(self, generator: torch.Generator):
        from torchgeo.samplers import GridGeoSampler, RandomBatchGeoSampler, RandomGeoSampler

        ds, size = self.rasters, self.patch
        if self.kind == "torchgeo-random":
            return RandomGeoSampler(ds, size, self.length, roi=self.roi, generator=generator)
        if self.kind == "torchgeo-grid":
            return GridGeoSampler(ds, size, stride=size, roi=self.roi)
        return RandomBatchGeoSampler(
            ds, size, self.batch_size, self.length, roi=self.roi, generator=generator
        )

    def set_epoch(self, epoch: int) -> None:
        if epoch == self.epoch:
            return
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        sampler = self._sampler(g)
        # TorchGeo keeps the rasters whose footprint holds a whole patch (inside the ROI); with
        # none, its random samplers fail inside torch.multinomial: say why instead
        empty = len(getattr(sampler, "areas", [1])) == 0 or not len(sampler)
        # TorchGeo 0.8 picks each query's raster with torch.multinomial on the global RNG (the
        # generator only places the window): seed that too, in a fork, so that the epoch's draw is
        # a function of (seed, epoch) and the augmentations' RNG stream is left as it was
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed * 1_000_003 + epoch)
            drawn = [] if empty else list(sampler)
        queries = [q for b in drawn for q in b] if self.kind == "torchgeo-batch" else drawn
        self.queries = [q for q in queries if self.rasters.overlaps(q)]
        if not self.queries:
            raise DataError(
                f"{self.kind}: no patch of {self.patch} px fits in the data"
                + (" inside --region" if self.roi is not None else "")
                + f" (data bounds {tuple(round(v) for v in self.rasters.index.total_bounds)} in "
                f"{self.rasters.crs}); lower --size or check --region"
            )
        if len(self.queries) != getattr(self, "_n", len(self.queries)):
            raise DataError(f"{self.kind}: epoch {epoch} drew {len(self.queries)} patches")
        self._n = len(self.queries)
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.queries)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"image": self.rasters[self.queries[index]]["image"]}


def region_of_interest(spec: str, crs):
    """`--region` (a name, a vector file or a lon/lat bbox) as a shapely geometry in `crs`."""
    from rasterio.warp import transform_geom
    from shapely.geometry import mapping, shape

    from rs_ssl.data.regions import load_region

    return shape(transform_geom("EPSG:4326", crs, mapping(load_region(spec))))


def training_patches(
    data: str | Path | None,
    fmt: str,
    selection: BandSelection,
    *,
    sampler: str = "rs-ssl",
    patch: int,
    samples_per_epoch: int,
    batch_size: int = 1,
    seed: int = 0,
    region: str | None = None,
    skip_bad: bool = False,
    subset: int | None = None,
    zoom: int | None = None,
    split: str | None = None,
):
    """The training set of `rs-ssl pretrain` drawn by `sampler`: returns (dataset, info).

    `rs-ssl` is `pretrain_dataset` (every format); the TorchGeo samplers read georeferenced raster
    formats only and give `samples_per_epoch` patches per epoch (`torchgeo-grid`: the grid's).
    """
    from rs_ssl.data import _catalog, _info, note_zero_filled, pretrain_dataset
    from rs_ssl.data import datasets as D
    from rs_ssl.data.torchgeo_adapter import TorchGeoRasters

    if sampler not in SAMPLERS:
        raise UsageError(f"--sampler {sampler}: choose one of {', '.join(SAMPLERS)}")
    if sampler == "rs-ssl":
        return pretrain_dataset(
            data,
            fmt,
            selection,
            patch=patch,
            samples_per_epoch=samples_per_epoch,
            seed=seed,
            region=region,
            skip_bad=skip_bad,
            subset=subset,
            zoom=zoom,
            split=split,
        )
    cat = _catalog(data, fmt, selection, zoom, skip_bad)
    if cat.kind != "rasters":
        raise UsageError(
            f"--sampler {sampler}: {cat.root} is a {cat.format} dataset of patches; TorchGeo's "
            "samplers draw from georeferenced rasters: use --sampler rs-ssl"
        )
    if split not in (None, "auto", "all") or subset is not None:
        raise UsageError(f"--sampler {sampler}: rasters define no --split or --subset")
    filled = note_zero_filled(cat, selection)
    rasters, skipped = D.open_rasters(cat, selection, skip_bad)
    if not rasters:
        raise DataError(f"{cat.root}: no readable raster ({len(skipped)} skipped)")
    tg = TorchGeoRasters(rasters, selection.names)
    roi = region_of_interest(region, tg.crs) if region else None
    dataset = TorchGeoPatches(
        tg, sampler, patch, samples_per_epoch, seed=seed, roi=roi, batch_size=batch_size
    )
    info = _info(cat, "rasters", len(tg.rasters), skipped + tg.skipped)
    return dataset, info | {"zero_bands": filled, "sampler": sampler, "patches": len(dataset)}
