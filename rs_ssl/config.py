"""Typed configuration of every command; the CLI options are generated from these dataclasses.

Each field's `metadata["help"]` is its documentation in `--help`. A `--config FILE.yaml` holds the
same keys (with `_` or `-`), as do the shipped recipes (`rs_ssl.recipes`); precedence is:
defaults < recipe < config file < command-line options.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rs_ssl.errors import UsageError


def opt(
    default: Any, help: str, *, choices: tuple | None = None, short: str | None = None, **kw: Any
) -> Any:
    """A config field with its CLI help text (and optional choices)."""
    md = {"help": help, "choices": choices, "short": short} | kw
    if isinstance(default, list | dict):
        return field(default_factory=lambda: type(default)(default), metadata=md)
    return field(default=default, metadata=md)


@dataclass
class CommonConfig:
    """Options shared by every command."""

    data: str | None = opt(
        None,
        "input: a folder, file, zarr store or manifest.parquet (default: the embedded Sentinel-2 L1C sample)",
    )
    format: str = opt("auto", "input format; `auto` detects it from the path")
    bands: str = opt(
        "auto",
        "auto (the data's own bands: 13 for the embedded sample, 12 for BigEarthNet's L2A, 3 for RGB images), a band count (13 = Sentinel-2 L1C, 12 = L2A, 3 = RGB) or a list such as B02,B03,B04,B08",
    )
    sensor: str | None = opt(
        None, "sensor of the band names when ambiguous (s2_l1c, s2_l2a, landsat_oli, rgb)"
    )
    region: str | None = opt(
        None,
        "keep patches inside: a region name from data_manifests/regions (e.g. california), a vector file, or a lon/lat bbox minx,miny,maxx,maxy",
    )
    out: str | None = opt(None, "output folder (default: runs/<command>-<timestamp>)")
    seed: int = opt(0, "random seed for sampling, augmentation and initialisation")
    devices: str = opt("auto", "devices for Lightning: `auto`, a count (e.g. 4) or `cpu`")
    skip_bad: bool = opt(
        False,
        "skip unreadable or inconsistent input files (counted in metrics.json) instead of stopping",
    )
    zoom: int | None = opt(
        None, "zoom level of an XYZ/TMS tile directory z/x/y.png (default: the deepest)"
    )


@dataclass
class PretrainConfig(CommonConfig):
    """`rs-ssl pretrain`: self-supervised pretraining of a timm backbone."""

    method: str = opt(
        "simclr",
        "SSL method (SimCLR learns visibly within the demo's few minutes; MoCo v2 needs longer runs to fill its queue)",
        choices=("mocov2", "mocov3", "simclr", "rpl"),
    )
    backbone: str = opt(
        "resnet18", "timm model name; its first layer takes the selected band count"
    )
    size: int = opt(64, "patch size in pixels fed to the network")
    batch_size: int = opt(32, "images per optimiser step (per device)")
    epochs: int = opt(4, "passes over --samples-per-epoch patches")
    samples_per_epoch: int = opt(
        512,
        "random patches drawn per epoch from georeferenced scenes (patch datasets use every sample)",
    )
    sampler: str = opt(
        "rs-ssl",
        "what draws the patches of georeferenced rasters: rs-ssl (default, the faster: seeded windows, nodata/transparent patches redrawn), or TorchGeo's RandomGeoSampler, GridGeoSampler (every patch-size cell once per epoch) or RandomBatchGeoSampler (each batch from one raster), with --region as their region of interest. --resume restores the exact patch sequence with each (epoch e's patches are a function of --seed and e)",
        choices=("rs-ssl", "torchgeo-random", "torchgeo-grid", "torchgeo-batch"),
    )
    split: str = opt(
        "auto",
        "samples to pretrain on: train, val, test, or all; auto = train when the data defines splits (split folders, lists or metadata), else all",
        choices=("auto", "train", "val", "validation", "test", "all"),
    )
    subset: int | None = opt(
        None,
        "patch/image datasets: train on a seeded random subset of N samples of --split (MillionAID MoCo v3: 150000 train images)",
    )
    max_steps: int = opt(-1, "stop after this many optimiser steps (-1: run all epochs)")
    lr: float | None = opt(
        None,
        "base learning rate at batch size 256, scaled to --batch-size x devices by --lr-scaling (default: the method's)",
    )
    lr_scaling: str = opt(
        "auto",
        "batch scaling of --lr: auto = linear for SGD/LARS, square root for Adam/AdamW; linear (moco-v3's rule for AdamW too); sqrt; none",
        choices=("auto", "linear", "sqrt", "none"),
    )
    weight_decay: float | None = opt(None, "weight decay (default: the method's paper value)")
    warmup_epochs: float = opt(0.0, "linear warm-up length in epochs before the cosine schedule")
    augs: str | None = opt(
        None,
        "augmentation preset (mocov2, mocov3, simclr, s2, simclr-s2: the SimCLR-S2 study's two-of-nine protocol; simclr-s2:shift+zoom: that pair only) or list such as speckle,gain,flip (default: the method's preset)",
    )
    temperature: float | None = opt(
        None, "contrastive temperature (default: 0.2 for MoCo v2/v3, 0.1 for SimCLR)"
    )
    queue_size: int = opt(16384, "MoCo v2 queue of negatives (65536 in the paper)")
    momentum: float | None = opt(
        None,
        "momentum of the key encoder (default: 0.999 for MoCo v2; MoCo v3 starts at 0.99 and rises to 1 on a per-step cosine)",
    )
    proj_dim: int | None = opt(None, "projection output dimension (default: 128; 256 for MoCo v3)")
    optimizer: str | None = opt(
        None,
        "optimizer (default: the method's: SGD for MoCo v2, AdamW for MoCo v3, Adam for SimCLR); lars for large batches",
        choices=("sgd", "adamw", "adam", "lars"),
    )
    freeze_patch_embed: bool = opt(
        False,
        "MoCo v3 with a ViT: keep the patch embedding random and frozen (the paper's stability trick)",
    )
    resume: bool = opt(
        False,
        "continue from --out's newest valid checkpoint (optimizer, schedule, queue, data position: the same patches as an uninterrupted run, with every --sampler)",
    )
    knn_data: str | None = opt(
        None,
        "labelled data for an online k-NN accuracy at every epoch end (default: --data itself when it is labelled, e.g. BigEarthNet or a class-folder tree)",
    )
    knn_k: int = opt(20, "neighbours for the online k-NN (0: off)")
    nonfinite_patience: int = opt(
        10,
        "skip optimiser steps with NaN/Inf gradients; stop after this many in a row (checked every 50 steps, at checkpoints and at the end, without a per-step GPU sync)",
    )
    log_every: int = opt(
        50,
        "write the CSV/TensorBoard logs every N optimiser steps (each write reads the metrics back from the GPU); loss_history.csv has every step regardless",
    )
    ckpt_every: int = opt(
        0, "also write checkpoints/last.ckpt every N optimiser steps (0: only at epoch ends)"
    )
    keep_checkpoints: bool = opt(
        False,
        "keep every epoch's checkpoint (checkpoints/epochNNN.ckpt) instead of only the newest",
    )
    init: str | None = opt(
        None,
        "local weights to start from: an rs-ssl run or model/ folder or .safetensors (first layer moved to --bands by band name, then wavelength), or RGB timm weights (.safetensors/.pth; by colour)",
    )
    workers: int = opt(2, "DataLoader worker processes")
    precision: str = opt(
        "auto", "Lightning precision: auto (bf16-mixed on GPU, 32 on CPU), 32, bf16-mixed, 16-mixed"
    )
    compile: bool = opt(False, "torch.compile the backbone (GPU)")
    num_nodes: int = opt(1, "nodes for multi-node DDP (Slurm/torchrun are detected by Lightning)")
    recipe: str | None = opt(
        None,
        "a shipped study recipe (list: `rs-ssl recipes`): its values replace the defaults; --config and options override it",
    )
    dry_run: bool = opt(
        False,
        "resolve the configuration, build the model, print them (lr_effective, parameters), write config.yaml into --out and stop before training",
    )


@dataclass
class ProbeConfig(CommonConfig):
    """`rs-ssl probe`: linear probe on frozen features."""

    checkpoint: str | None = opt(
        None,
        "pretraining run folder, its model/ folder, or backbone weights (.safetensors); weights trained on other bands are moved to the data's bands (printed)",
    )
    random_init: bool = opt(False, "probe a randomly initialised backbone instead (baseline)")
    backbone: str = opt("resnet18", "timm model name when --checkpoint is a bare weights file")
    dataset: str = opt(
        "folder", "labelled dataset layout", choices=("bigearthnet", "millionaid", "folder")
    )
    level: int = opt(1, "MillionAID label hierarchy level")
    label_fraction: str = opt("1.0", "fraction(s) of training labels, comma-separated")
    knn: int = opt(0, "also report a k-nearest-neighbour classifier with this k (0: off)")
    labels: str | None = opt(None, "vector file of label polygons (California-style probe)")
    label_field: str | None = opt(None, "attribute of --labels holding the class")
    min_coverage: float = opt(
        0.3, "--labels: a class must cover at least this fraction of a patch to label it"
    )
    multilabel: bool = opt(
        False,
        "--labels: label each patch with every class above --min-coverage (default: the majority class by area)",
    )
    size: int = opt(64, "patch size in pixels")
    batch_size: int = opt(64, "batch size for feature extraction")
    recipe: str | None = opt(
        None,
        "a shipped study recipe (list: `rs-ssl recipes`) whose evaluation this command runs; --config and options override it",
    )


@dataclass
class FinetuneConfig(ProbeConfig):
    """`rs-ssl finetune`: fine-tuning with a fraction of the labels, against random initialisation."""

    epochs: int = opt(10, "fine-tuning epochs")
    lr: float = opt(1e-3, "learning rate")
    seeds: int = opt(3, "repetitions with different seeds per label fraction")


@dataclass
class EmbedConfig(CommonConfig):
    """`rs-ssl embed`: frozen backbone features of every patch of a regular grid over georeferenced rasters
    (or of every sample of a patch dataset), written as embeddings.parquet (GeoParquet),
    embeddings.gpkg (GeoPackage) and embedding_rgb.tif (first three principal components, one pixel per
    patch) for QGIS and GeoPandas. Weights trained on other bands are moved to the data's bands."""

    checkpoint: str | None = opt(
        None, "pretraining run folder, its model/ folder, or backbone weights (.safetensors)"
    )
    backbone: str = opt(
        "resnet18", "timm model name when --checkpoint is a weights file without rs-ssl metadata"
    )
    size: int = opt(64, "patch size in pixels (grid cell size)")
    stride: int | None = opt(None, "grid step in pixels (default: --size, patches side by side)")
    batch_size: int = opt(64, "patches per forward pass (bf16 autocast on GPU)")
    workers: int = opt(2, "DataLoader worker processes reading patches")
    pcs: int = opt(
        8,
        "principal components written as columns pc1..pcN of embeddings.gpkg (its `embedding` column holds the whole vector as float32 bytes)",
    )


@dataclass
class SimilarConfig(CommonConfig):
    """`rs-ssl similar --embeddings DIR --query LON,LAT|ROW_ID`: the patches nearest to one patch by cosine
    similarity of their embeddings, written as similar.parquet (GeoParquet) and similar.gpkg."""

    embeddings: str | None = opt(None, "folder written by `rs-ssl embed` (its embeddings.parquet)")
    query: str | None = opt(
        None,
        "the query patch: a row id, or LON,LAT (the patch whose footprint holds the point, else the nearest)",
    )
    k: int = opt(20, "number of nearest patches (the query itself is rank 0 and not counted)")


@dataclass
class AugsearchConfig(CommonConfig):
    """`rs-ssl augsearch`: short pretrain + linear probe for every pair of augmentations; heatmap and ranking."""

    augs: str = opt(
        "resized_crop,flip,gain,blur,speckle",
        "augmentations to pair (names as in `pretrain --augs`); each pair, and each one alone, is one run. `simclr-s2` (or `simclr-s2:shift,zoom,...`): the SimCLR-S2 study's search over pairs of its nine ops, both applied to every view, no runs alone",
    )
    fraction: float = opt(
        0.03, "fraction of the pretraining samples each short run uses (seeded subset)"
    )
    drop_bottom: float = opt(
        0.0,
        "write augmentations.txt without this fraction of the lowest-ranked augmentations (e.g. 0.25); with --augs simclr-s2 also excluded_pairs.txt, the lowest-ranked fraction of the pairs (the study dropped a quarter)",
    )
    evaluate: str = opt(
        "probe",
        "score each run by a linear probe, or by fine-tuning on --label-fraction of the labels (the SimCLR-S2 study)",
        choices=("probe", "finetune"),
    )
    label_fraction: float = opt(
        0.03, "--evaluate finetune: fraction of the training labels (SimCLR-S2: a few percent)"
    )
    finetune_epochs: int = opt(5, "--evaluate finetune: fine-tuning epochs per run")
    method: str = opt(
        "simclr", "SSL method of the short runs", choices=("mocov2", "mocov3", "simclr", "rpl")
    )
    backbone: str = opt("resnet18", "timm model name")
    size: int = opt(64, "patch size in pixels (pretraining and probe)")
    batch_size: int = opt(32, "pretraining batch size")
    steps: int = opt(100, "optimiser steps of each short pretraining run")
    probe_data: str | None = opt(None, "labelled data for the probes (default: --data)")
    dataset: str = opt(
        "folder", "layout of the labelled data", choices=("bigearthnet", "millionaid", "folder")
    )


@dataclass
class RecipesConfig:
    """`rs-ssl recipes [NAME]`: list the shipped study recipes, or print one recipe's YAML."""

    name: str | None = opt(
        None, "recipe to print in full (default: list every recipe, one line each)"
    )


@dataclass
class ManifestConfig(CommonConfig):
    """`rs-ssl manifest PATH`: scan a dataset once and summarise it."""

    stats: bool = opt(False, "also compute per-band mean/std (streaming) for normalisation")
    check: bool = opt(False, "decode every file fully and list the broken ones")


@dataclass
class ConvertConfig(CommonConfig):
    """`rs-ssl convert PATH --to zarr OUT`: convert a supported input to a chunked zarr store."""

    to: str = opt("zarr", "output format", choices=("zarr",))
    size: int = opt(120, "patch (and chunk) size in pixels")


@dataclass
class ReportConfig(CommonConfig):
    """`rs-ssl report RUN_DIR...`: collect runs into report.md/report.html with figures."""

    runs: list = opt([], "run folders to collect")


@dataclass
class BenchConfig(CommonConfig):
    """`rs-ssl bench`: images/s of the full training step."""

    method: str = opt("simclr", "SSL method", choices=("mocov2", "mocov3", "simclr", "rpl"))
    backbone: str = opt("resnet18", "timm model name")
    size: int = opt(64, "image size in pixels")
    batch_size: int = opt(32, "batch size")
    steps: int = opt(10, "timed steps (after warm-up)")
    warmup: int = opt(3, "untimed warm-up steps")
    rounds: int = opt(
        1,
        "time every variant this many times, alternating, and report medians (steadier on a shared machine)",
    )
    device: str = opt("auto", "cpu, cuda or auto")
    compare: str | None = opt(
        None, "also time this implementation on identical inputs", choices=("torchgeo",)
    )
    handwritten: bool = opt(
        True,
        "also time a plain hand-written PyTorch step (same model, views and loss, no Lightning)",
    )
    workers: int = opt(2, "DataLoader workers when --data streams patches from files")
    precision: str = opt("auto", "auto (bf16-mixed on GPU, 32 on CPU), 32, bf16-mixed")
    channels_last: bool = opt(True, "channels-last memory format for CNNs on GPU")
    compile: bool = opt(
        False,
        "torch.compile the backbone (as pretrain --compile; the hand-written step uses the same compiled backbone)",
    )


def _base_type(tp: Any) -> Any:
    """`int | None` -> int; `str` -> str."""
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0]
    return tp


def field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: _base_type(hints[f.name]) for f in dataclasses.fields(cls)}


def coerce(cls: type, key: str, value: Any) -> Any:
    """Convert a YAML/CLI value to the field's type, or raise UsageError naming the key."""
    tp = field_types(cls)[key]
    if value is None:
        return None
    try:
        if tp is bool:
            if isinstance(value, bool):
                return value
            s = str(value).lower()
            if s in ("1", "true", "yes", "on"):
                return True
            if s in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if tp in (int, float, str):
            if tp is int and isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return tp(value)
        return value
    except (TypeError, ValueError):
        raise UsageError(
            f"{key.replace('_', '-')}: expected {tp.__name__}, got {value!r}"
        ) from None


def load_config_file(cls: type, path: str | Path) -> dict[str, Any]:
    """Read `--config FILE.yaml` into validated field values of `cls`."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"--config {p}: no such file")
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise UsageError(f"--config {p}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise UsageError(f"--config {p}: expected a mapping of option names to values")
    return validate_values(cls, raw, f"--config {p}")


def validate_values(cls: type, raw: dict[str, Any], where: str) -> dict[str, Any]:
    """Option values read from a YAML mapping (a --config file, a recipe), checked and typed for `cls`."""
    names = {f.name for f in dataclasses.fields(cls)}
    out = {}
    for k, v in raw.items():
        key = str(k).replace("-", "_")
        if key in ("command", "rs_ssl_version"):
            continue
        if key not in names:
            raise UsageError(f"{where}: unknown key {k!r}; valid keys: {', '.join(sorted(names))}")
        out[key] = coerce(cls, key, v)
    return out


def build_config(cls: type, file_values: dict[str, Any], cli_values: dict[str, Any]):
    """Defaults < file values (a recipe, then --config) < command line."""
    values = {**file_values, **cli_values}
    cfg = cls(**values)
    for f in dataclasses.fields(cls):
        choices = f.metadata.get("choices")
        v = getattr(cfg, f.name)
        if choices and v is not None and v not in choices:
            raise UsageError(
                f"--{f.name.replace('_', '-')} {v!r}: choose one of {', '.join(choices)}"
            )
    return cfg


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def default_out(command: str) -> Path:
    return Path("runs") / f"{command}-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
