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
from rs_ssl.methods.table import (
    LR_SCALINGS,
    OPTIMIZERS,
    SCHEDULES,
    defaults_text,
    method_names,
    spec,
)
from rs_ssl.split_names import SPLIT_ALIASES


def opt(
    default: Any, help: str, *, choices: Any = None, short: str | None = None, **kw: Any
) -> Any:
    """A config field with its CLI help text (and optional choices: any container, read when parsing).

    `range=POSITIVE` (a `Range`): the values it accepts, checked whenever the config is built.
    `method_option=True`: a hyper-parameter of some methods; `build_method` refuses it, set, for a
    method whose class does not take it."""
    md = {"help": help, "choices": choices, "short": short} | kw
    if isinstance(default, list | dict):
        return field(default_factory=lambda: type(default)(default), metadata=md)
    return field(default=default, metadata=md)


@dataclass(frozen=True)
class Range:
    """The values an option accepts: `lo`..`hi` (None: unbounded), each end open or closed."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def __contains__(self, v: float) -> bool:
        if self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo):
            return False
        return self.hi is None or (v < self.hi if self.hi_open else v <= self.hi)

    def __str__(self) -> str:
        if self.hi is None:
            return ("> " if self.lo_open else ">= ") + f"{self.lo:g}"
        return f"in {'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}{')' if self.hi_open else ']'}"


POSITIVE = Range(0, lo_open=True)
NON_NEGATIVE = Range(0)
FRACTION = Range(0, 1, lo_open=True)  # (0, 1]
# Layouts of a run's 4-D tensors (`--memory-format`, resolved by models.backbone.memory_format).
MEMORY_FORMATS = ("auto", "channels_last", "contiguous")


def memory_format_option() -> Any:
    """`--memory-format`, one field for `pretrain` and `bench` (whose hand-written step follows it)."""
    return opt(
        "auto",
        "layout of the backbone's 4-D weights and activations: auto (channels_last for convolutional "
        "backbones: a CPU training step took 0.54-0.93x the time, ConvNeXt 1.0x; contiguous for "
        "ViTs), channels_last, contiguous",
        choices=MEMORY_FORMATS,
    )


def check_ranges(cfg: Any) -> None:
    """Every option's declared `range` (field metadata), checked whenever a config is built."""
    for f in dataclasses.fields(cfg):
        _check_range(f, getattr(cfg, f.name))


def check_option(config: type, name: str, value: Any) -> None:
    """`value` against the range declared for option `name` of the config class `config` (for
    library functions that take an option's value without a config)."""
    _check_range(next(f for f in dataclasses.fields(config) if f.name == name), value)


def _check_range(f: dataclasses.Field, value: Any) -> None:
    r = f.metadata.get("range")
    if r is not None and value is not None and value not in r:
        raise UsageError(f"--{f.name.replace('_', '-')} {value}: must be {r}")


@dataclass
class Options:
    """Base of every command's options: the declared ranges are checked when one is built."""

    def __post_init__(self) -> None:
        check_ranges(self)


# Shared options, one small class each (or per group always used together); a command's config
# inherits those it uses, so its --help lists nothing it ignores.
@dataclass
class DataOptions(Options):
    """The input and its bands."""

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


@dataclass
class ZoomOption(Options):
    zoom: int | None = opt(
        None, "zoom level of an XYZ/TMS tile directory z/x/y.png (default: the deepest)"
    )


@dataclass
class SkipBadOption(Options):
    skip_bad: bool = opt(
        False,
        "skip unreadable or inconsistent input files (counted in metrics.json) instead of stopping",
    )


@dataclass
class RegionOption(Options):
    region: str | None = opt(
        None,
        "keep patches inside: a region name from data_manifests/regions (e.g. california), a vector file, or a lon/lat bbox minx,miny,maxx,maxy",
    )


@dataclass
class OutOption(Options):
    out: str | None = opt(None, "output folder (default: runs/<command>-<timestamp>)")


@dataclass
class SeedOption(Options):
    seed: int = opt(0, "random seed for sampling, augmentation and initialisation")


@dataclass
class DevicesOption(Options):
    devices: str = opt("auto", "devices for Lightning: `auto`, a count (e.g. 4) or `cpu`")


SHARED = (
    DataOptions,
    ZoomOption,
    SkipBadOption,
    RegionOption,
    OutOption,
    SeedOption,
    DevicesOption,
)


def shared_option_names() -> tuple[str, ...]:
    """The shared options in the order --help shows them."""
    return tuple(f.name for c in SHARED for f in dataclasses.fields(c))


@dataclass
class TrainingInputs(
    DataOptions, ZoomOption, SkipBadOption, RegionOption, OutOption, SeedOption, DevicesOption
):
    """Every shared option: the commands that read data and train or run a model on it."""


@dataclass
class PretrainConfig(TrainingInputs):
    """`rs-ssl pretrain`: self-supervised pretraining of a timm backbone."""

    method: str = opt(
        "simclr",
        "SSL method (SimCLR learns visibly within the demo's few minutes; MoCo v2 needs longer runs to fill its queue)",
        choices=method_names(),
    )
    backbone: str = opt(
        "resnet18", "timm model name; its first layer takes the selected band count"
    )
    size: int = opt(64, "patch size in pixels fed to the network", range=POSITIVE)
    batch_size: int | None = opt(
        None,
        f"images per optimiser step, per device (default: the method's: {defaults_text('batch_size')})",
        range=POSITIVE,
    )
    epochs: int = opt(4, "passes over --samples-per-epoch patches", range=POSITIVE)
    samples_per_epoch: int = opt(
        512,
        "random patches drawn per epoch from georeferenced scenes (patch datasets use every sample)",
        range=POSITIVE,
    )
    sampler: str = opt(
        "rs-ssl",
        "what draws the patches of georeferenced rasters: rs-ssl (default, the faster: seeded windows, nodata/transparent patches redrawn), or TorchGeo's RandomGeoSampler, GridGeoSampler (every patch-size cell once per epoch) or RandomBatchGeoSampler (each batch from one raster), with --region as their region of interest. --resume restores the exact patch sequence with each (epoch e's patches are a function of --seed and e)",
        choices=("rs-ssl", "torchgeo-random", "torchgeo-grid", "torchgeo-batch"),
    )
    split: str = opt(
        "auto",
        "samples to pretrain on: train, val, test, or all; auto = train when the data defines splits (split folders, lists or metadata), else all",
        choices=("auto", *SPLIT_ALIASES, "all"),
    )
    subset: int | None = opt(
        None,
        "patch/image datasets: train on a seeded random subset of N samples of --split (MillionAID MoCo v3: 150000 train images)",
    )
    max_steps: int = opt(-1, "stop after this many optimiser steps (-1: run all epochs)")
    lr: float | None = opt(
        None,
        "base learning rate at batch size 256, scaled to --batch-size x devices by --lr-scaling "
        f"(default: the method's: {defaults_text('lr')}; with a CNN backbone, not a ViT: "
        f"{defaults_text('cnn_lr')})",
        method_option=True,
    )
    lr_scaling: str = opt(
        "auto",
        "batch scaling of --lr: auto = the method's rule with its own optimiser "
        f"({defaults_text('lr_scaling')}), where auto, or with another optimiser, is linear for "
        "SGD/LARS and square root for Adam/AdamW; linear (moco-v3's rule for AdamW too); sqrt; none",
        choices=LR_SCALINGS,
        method_option=True,
    )
    weight_decay: float | None = opt(
        None,
        f"weight decay (default: the method's paper value: {defaults_text('weight_decay')})",
        method_option=True,
    )
    warmup_epochs: float = opt(
        0.0,
        "linear warm-up length in epochs before the cosine schedule "
        f"(0: the method's, {defaults_text('warmup_epochs')}; written for a paper run of "
        f"{defaults_text('paper_epochs', '{} epochs')}, so a shorter run warms up for the same "
        "fraction of itself)",
        method_option=True,
    )
    schedule: str | None = opt(
        None,
        "learning-rate schedule after the warm-up: cosine (per-step half cosine to 0) or constant "
        f"(default: the method's: {defaults_text('schedule')})",
        choices=SCHEDULES,
        method_option=True,
    )
    augs: str | None = opt(
        None,
        "augmentation preset (mocov2, mocov3, simclr, s2, simclr-s2: the SimCLR-S2 study's two-of-nine protocol; simclr-s2:shift+zoom: that pair only) or list such as speckle,gain,flip "
        f"(default: the method's preset: {defaults_text('preset')})",
    )
    temperature: float | None = opt(
        None,
        f"contrastive temperature (default: {defaults_text('temperature')})",
        method_option=True,
    )
    queue_size: int | None = opt(
        None,
        f"queue of negatives (default: {defaults_text('queue_size')}; MoCo v2's paper: 65536), "
        "at most half an epoch's samples",
        method_option=True,
    )
    momentum: float | None = opt(
        None,
        f"momentum of the key encoder (default: {defaults_text('momentum')}; "
        "MoCo v3's rises from it to 1 on a per-step cosine)",
        method_option=True,
    )
    proj_dim: int | None = opt(
        None,
        f"projection output dimension (default: {defaults_text('proj_dim')})",
        method_option=True,
    )
    optimizer: str | None = opt(
        None,
        f"optimizer (default: the method's: {defaults_text('optimizer')}); lars for large batches",
        choices=OPTIMIZERS,
        method_option=True,
    )
    freeze_patch_embed: bool = opt(
        False,
        "MoCo v3 with a ViT: keep the patch embedding random and frozen (the paper's stability trick)",
        method_option=True,
    )
    resume: bool = opt(
        False,
        "continue from --out's newest valid checkpoint (optimizer, schedule, queue, data position: the same patches as an uninterrupted run, with every --sampler)",
    )
    knn_data: str | None = opt(
        None,
        "labelled data for an online k-NN accuracy at every epoch end, all of it (default: --data itself when it is labelled, e.g. BigEarthNet or a class-folder tree: the split pretraining trains on, never its validation or test images)",
    )
    knn_k: int = opt(20, "neighbours for the online k-NN (0: off)", range=NON_NEGATIVE)
    nonfinite_patience: int = opt(
        10,
        "skip optimiser steps with NaN/Inf gradients; stop after this many in a row (checked every 50 steps, at checkpoints and at the end, without a per-step GPU sync)",
        range=POSITIVE,
    )
    log_every: int = opt(
        50,
        "write the CSV/TensorBoard logs every N optimiser steps (each write reads the metrics back from the GPU); loss_history.csv has every step regardless",
        range=POSITIVE,
    )
    ckpt_every: int = opt(
        0,
        "also write checkpoints/last.ckpt every N optimiser steps (0: only at epoch ends)",
        range=NON_NEGATIVE,
    )
    keep_checkpoints: bool = opt(
        False,
        "also keep every epoch's checkpoint (checkpoints/epochNNN.ckpt, an extra write per epoch); by default only checkpoints/last.ckpt, the newest",
    )
    init: str | None = opt(
        None,
        "local weights to start from: an rs-ssl run or model/ folder or .safetensors (first layer moved to --bands by band name, then wavelength), or RGB timm weights (.safetensors/.pth; by colour)",
    )
    workers: int = opt(2, "DataLoader worker processes", range=NON_NEGATIVE)
    precision: str = opt(
        "auto", "Lightning precision: auto (bf16-mixed on GPU, 32 on CPU), 32, bf16-mixed, 16-mixed"
    )
    compile: bool = opt(False, "torch.compile the backbone (GPU)")
    memory_format: str = memory_format_option()
    num_nodes: int = opt(1, "nodes for multi-node DDP (Slurm/torchrun are detected by Lightning)")
    recipe: str | None = opt(
        None,
        "a shipped study recipe (list: `rs-ssl recipes`): its values replace the defaults; --config and options override it",
    )
    dry_run: bool = opt(
        False,
        "resolve the configuration, build the model, print them (lr_effective, parameters), write config.yaml into --out and stop before training",
    )

    def __post_init__(self) -> None:
        # The method's batch where none is given, resolved once here so that every reader of
        # cfg.batch_size (loader, schedule, lr scaling, config.yaml) sees the same number.
        if self.batch_size is None:
            self.batch_size = spec(self.method).defaults.batch_size
        super().__post_init__()


@dataclass
class ProbeConfig(DataOptions, SkipBadOption, RegionOption, OutOption, SeedOption, DevicesOption):
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
    level: int = opt(1, "MillionAID label hierarchy level", choices=(1, 2, 3))
    label_fraction: str = opt("1.0", "fraction(s) of training labels, comma-separated")
    knn: int = opt(
        0, "also report a k-nearest-neighbour classifier with this k (0: off)", range=NON_NEGATIVE
    )
    labels: str | None = opt(None, "vector file of label polygons (California-style probe)")
    label_field: str | None = opt(None, "attribute of --labels holding the class")
    min_coverage: float = opt(
        0.3,
        "--labels: a class must cover at least this fraction of a patch to label it",
        range=FRACTION,
    )
    multilabel: bool = opt(
        False,
        "--labels: label each patch with every class above --min-coverage (default: the majority class by area)",
    )
    size: int = opt(64, "patch size in pixels", range=POSITIVE)
    batch_size: int = opt(64, "batch size for feature extraction", range=POSITIVE)
    recipe: str | None = opt(
        None,
        "a shipped study recipe (list: `rs-ssl recipes`) whose evaluation this command runs; --config and options override it",
    )


@dataclass
class FinetuneConfig(ProbeConfig):
    """`rs-ssl finetune`: fine-tuning with a fraction of the labels, against random initialisation."""

    epochs: int = opt(10, "fine-tuning epochs", range=POSITIVE)
    lr: float = opt(1e-3, "learning rate", range=POSITIVE)
    seeds: int = opt(3, "repetitions with different seeds per label fraction", range=POSITIVE)


@dataclass
class EmbedConfig(TrainingInputs):
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
class SimilarConfig(OutOption):
    """`rs-ssl similar --embeddings DIR --query LON,LAT|ROW_ID`: the patches nearest to one patch by cosine
    similarity of their embeddings, written as similar.parquet (GeoParquet) and similar.gpkg."""

    embeddings: str | None = opt(None, "folder written by `rs-ssl embed` (its embeddings.parquet)")
    query: str | None = opt(
        None,
        "the query patch: a row id, or LON,LAT (the patch whose footprint holds the point, else the nearest)",
    )
    k: int = opt(20, "number of nearest patches (the query itself is rank 0 and not counted)")


@dataclass
class AugsearchConfig(TrainingInputs):
    """`rs-ssl augsearch`: short pretrain + linear probe for every pair of augmentations; heatmap and ranking."""

    augs: str = opt(
        "resized_crop,flip,gain,blur,speckle",
        "augmentations to pair (names as in `pretrain --augs`); each pair, and each one alone, is one run. `simclr-s2` (or `simclr-s2:shift,zoom,...`): the SimCLR-S2 study's search over pairs of its nine ops, both applied to every view, no runs alone",
    )
    fraction: float = opt(
        0.03,
        "fraction of the pretraining samples each short run uses (seeded subset)",
        range=FRACTION,
    )
    drop_bottom: float = opt(
        0.0,
        "write augmentations.txt without this fraction of the lowest-ranked augmentations (e.g. 0.25); with --augs simclr-s2 also excluded_pairs.txt, the lowest-ranked fraction of the pairs (the study dropped a quarter)",
        range=Range(0, 1, hi_open=True),
    )
    evaluate: str = opt(
        "probe",
        "score each run by a linear probe, or by fine-tuning on --label-fraction of the labels (the SimCLR-S2 study)",
        choices=("probe", "finetune"),
    )
    label_fraction: float = opt(
        0.03,
        "--evaluate finetune: fraction of the training labels (SimCLR-S2: a few percent)",
        range=FRACTION,
    )
    finetune_epochs: int = opt(5, "--evaluate finetune: fine-tuning epochs per run", range=POSITIVE)
    method: str = opt("simclr", "SSL method of the short runs", choices=method_names())
    backbone: str = opt("resnet18", "timm model name")
    size: int = opt(64, "patch size in pixels (pretraining and probe)")
    batch_size: int = opt(32, "pretraining batch size")
    steps: int = opt(100, "optimiser steps of each short pretraining run", range=POSITIVE)
    probe_data: str | None = opt(None, "labelled data for the probes (default: --data)")
    dataset: str = opt(
        "folder", "layout of the labelled data", choices=("bigearthnet", "millionaid", "folder")
    )


@dataclass
class RecipesConfig(Options):
    """`rs-ssl recipes [NAME]`: list the shipped study recipes, or print one recipe's YAML."""

    name: str | None = opt(
        None, "recipe to print in full (default: list every recipe, one line each)"
    )


@dataclass
class ManifestConfig(DataOptions, ZoomOption, SkipBadOption, OutOption, SeedOption):
    """`rs-ssl manifest PATH`: scan a dataset once and summarise it."""

    stats: bool = opt(False, "also compute per-band mean/std (streaming) for normalisation")
    check: bool = opt(False, "decode every file fully and list the broken ones")


@dataclass
class ConvertConfig(DataOptions, ZoomOption, SkipBadOption, OutOption):
    """`rs-ssl convert PATH --to zarr OUT`: convert a supported input to a chunked zarr store."""

    to: str = opt("zarr", "output format", choices=("zarr",))
    size: int = opt(120, "patch (and chunk) size in pixels")


@dataclass
class ReportConfig(OutOption):
    """`rs-ssl report RUN_DIR...`: collect runs into report.md/report.html with figures."""

    runs: list = opt([], "run folders to collect")


@dataclass
class BenchConfig(DataOptions, ZoomOption, OutOption, SeedOption):
    """`rs-ssl bench`: images/s of the full training step."""

    method: str = opt("simclr", "SSL method", choices=method_names())
    backbone: str = opt("resnet18", "timm model name")
    size: int = opt(64, "image size in pixels")
    batch_size: int = opt(32, "batch size")
    steps: int = opt(10, "timed steps (after warm-up)", range=POSITIVE)
    warmup: int = opt(3, "untimed warm-up steps", range=POSITIVE)
    rounds: int = opt(
        1,
        "time every variant this many times, alternating, and report medians (steadier on a shared machine)",
        range=POSITIVE,
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
    memory_format: str = memory_format_option()
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
                f"--{f.name.replace('_', '-')} {v!r}: choose one of {', '.join(map(str, choices))}"
            )
    return cfg


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def default_out(command: str) -> Path:
    return Path("runs") / f"{command}-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
