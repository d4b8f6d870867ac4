"""Training assembly: bands, method, loader, callbacks, trainer, export, from a PretrainConfig.

`rs-ssl pretrain` and `rs-ssl augsearch` train through `train`; `rs-ssl bench` builds its method,
per-step callbacks and precision from the same functions, so it times the step pretrain runs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rs_ssl.bands import BandSelection, load_stats, resolve_bands
from rs_ssl.config import PretrainConfig, default_out
from rs_ssl.data import resolve_data_bands
from rs_ssl.errors import RsSslError, UsageError
from rs_ssl.runs import prepare_out, write_config, write_loss_history, write_metrics

# Formats whose files are Sentinel-2 bands (sensor for their statistics).
_S2_FORMATS = {"sentinel2": "s2_l1c", "ssl4eo": "s2_l1c", "bigearthnet": "s2_l2a"}


def true_colour_for_s2(selection, data, fmt: str):
    """`--bands 3` (RGB) on Sentinel-2 data means its true-colour bands B04, B03, B02."""
    if selection.sensor.key != "rgb":
        return selection
    from rs_ssl.data import detect_format, sample_path

    found = detect_format(Path(data) if data else sample_path()) if fmt == "auto" else fmt
    if found not in _S2_FORMATS:
        return selection
    print("note: --bands 3 on Sentinel-2 data: training on its true-colour bands B04,B03,B02")
    return resolve_bands("B04,B03,B02", sensor=_S2_FORMATS[found])


_LABELLED_FORMATS = {"bigearthnet", "folder", "millionaid"}


def online_knn(cfg: PretrainConfig, selection, split: str | None = None):
    """The online k-NN monitor on all of --knn-data, or on --data when it is labelled; None otherwise.

    On --data it scores the split pretraining trains on (`split`, the `split` of pretrain_data's
    info: `train` when the data defines splits, `all` otherwise), so that no validation or test
    image is embedded during pretraining and the monitor costs no more than the data it watches."""
    from rs_ssl.data import detect_format, labelled_dataset
    from rs_ssl.methods.online_knn import OnlineKNN

    if cfg.knn_k <= 0:
        return None
    source = cfg.knn_data or cfg.data
    if source is None:
        return None
    fmt = (
        cfg.format
        if (cfg.knn_data is None and cfg.format != "auto")
        else detect_format(Path(source))
    )
    if fmt not in _LABELLED_FORMATS:
        if cfg.knn_data:
            raise UsageError(
                f"--knn-data {source}: not a labelled dataset (detected {fmt}; need one of {', '.join(sorted(_LABELLED_FORMATS))})"
            )
        return None
    own = None if cfg.knn_data or split in (None, "all") else split
    dataset, _ = labelled_dataset(
        source, fmt, selection, split=own, patch=cfg.size, skip_bad=cfg.skip_bad
    )
    if len(dataset) < 2:
        return None
    return OnlineKNN(dataset, k=cfg.knn_k, batch_size=cfg.batch_size, seed=cfg.seed)


def method_options(cfg: PretrainConfig, cls: type) -> dict[str, Any]:
    """The options of `cfg` that `cls` takes; an option it does not take, set, is a UsageError.

    A method option is "set" when it differs from its config default (None: the method's own).
    """
    from rs_ssl.methods import METHODS

    accepted = cls.accepted_options()
    out = {}
    for f in dataclasses.fields(cfg):
        if not f.metadata.get("method_option"):
            continue
        value = getattr(cfg, f.name)
        if f.name in accepted:
            out[f.name] = value
        elif value != f.default:
            takers = [n for n in METHODS if f.name in METHODS[n].accepted_options()]
            raise UsageError(
                f"--{f.name.replace('_', '-')} {value}: does not apply to --method {cfg.method}"
                f" (it applies to {', '.join(takers) or 'no method'}); remove it"
            )
    # 0 means "the method's warm-up" (moco-v3 warms up 40 epochs).
    if out.get("warmup_epochs") is not None and out["warmup_epochs"] <= 0:
        out["warmup_epochs"] = None
    return out


def build_method(
    cfg: PretrainConfig,
    selection,
    stats,
    *,
    samples: int | None = None,
    total_steps: int | None = None,
    steps_per_epoch: int | None = None,
):
    """The LightningModule for cfg.method, with backbone and device-side views.

    `samples`: distinct samples per epoch (None: not known; MoCo v2's queue is then not clamped);
    `total_steps`, `steps_per_epoch`: the run's length, for the schedules.
    """
    from rs_ssl.augment import is_preset, make_views
    from rs_ssl.methods import METHODS
    from rs_ssl.methods.table import spec
    from rs_ssl.models import create_backbone
    from rs_ssl.models.backbone import patch_projection

    spec(cfg.method)  # a UsageError naming the registered methods
    cls = METHODS[cfg.method]
    options = method_options(cfg, cls)
    augs = cfg.augs or cls.defaults.preset
    # Gain, speckle and the solarize threshold act on reflectance, and spectral jitter follows
    # wavelength order, so the views need the bands' statistics and wavelengths.
    band_facts = {
        "mean": stats.mean.tolist(),
        "std": stats.std.tolist(),
        "wavelengths": selection.wavelengths_nm,
    }
    try:
        if not is_preset(augs):
            views = make_views(
                "custom",
                bands=len(selection),
                size=cfg.size,
                augs=[a.strip() for a in augs.split(",") if a.strip()],
                **band_facts,
            )
        else:
            views = make_views(augs, bands=len(selection), size=cfg.size, **band_facts)
    except ValueError as e:
        raise UsageError(f"--augs {augs}: {e}") from None
    backbone = create_backbone(
        cfg.backbone, selection, init=cfg.init, img_size=cls.backbone_input_size(cfg.size)
    )
    if options.get("freeze_patch_embed") and patch_projection(backbone) is None:
        raise UsageError(
            f"--freeze-patch-embed: --backbone {cfg.backbone} has no patch embedding to freeze; "
            "it applies to ViT backbones (e.g. vit_small_patch16_224)"
        )
    method = cls(
        backbone=backbone,
        selection=selection,
        stats=stats,
        views=views,
        batch_size=cfg.batch_size,
        total_steps=total_steps,
        steps_per_epoch=steps_per_epoch,
        epoch_samples=samples,
        **options,
    )
    method.use_memory_format(cfg.memory_format)
    return method


def accelerator(devices: str) -> tuple[str, Any]:
    """(Lightning accelerator, devices) for `--devices`."""
    if devices == "cpu":
        return "cpu", 1
    if devices == "auto":
        return ("gpu", "auto") if torch.cuda.is_available() else ("cpu", 1)
    try:
        n = int(devices)
    except ValueError:
        raise UsageError(f"--devices {devices}: use auto, cpu or a device count") from None
    return ("gpu", n) if torch.cuda.is_available() else ("cpu", n)


def world_size(accelerator: str, devices: Any, num_nodes: int) -> int:
    """Processes of the run: the device count (all visible GPUs for `auto`) times the nodes."""
    per_node = (
        devices
        if isinstance(devices, int)
        else (torch.cuda.device_count() if accelerator == "gpu" else 1)
    )
    return max(1, per_node) * num_nodes


@dataclass(frozen=True)
class Placement:
    """Where a run trains: Lightning's accelerator and devices, the processes over all nodes and
    the numeric precision (`--devices`, `--num-nodes`, `--precision`)."""

    accelerator: str
    devices: Any
    world: int
    precision: str


def placement(cfg: PretrainConfig) -> Placement:
    acc, devices = accelerator(cfg.devices)
    world = world_size(acc, devices, cfg.num_nodes)
    return Placement(acc, devices, world, precision_for(cfg.precision, acc))


def _print_data(info: dict, selection, cfg: PretrainConfig) -> None:
    """Say which bands and which samples pretraining uses (`--bands auto`, `--split auto` decide silently otherwise)."""
    bands = f"{len(selection)} bands ({','.join(selection.names)}, {selection.sensor.key})"
    if "split" not in info:
        drawn = (
            f", --sampler {info['sampler']}: {info['patches']} patches per epoch"
            if "sampler" in info
            else ""
        )
        print(f"data: {info['format']}, {info.get('rasters', 0)} raster(s), {bands}{drawn}")
        return
    splits = ", ".join(f"{k} {v}" for k, v in info["splits"].items())
    what = (
        f"split {info['split']}: {info['split_samples']} of {info['dataset_samples']} samples"
        if info["split"] != "all"
        else f"all {info['dataset_samples']} samples"
    )
    why = (
        " (--split auto: the data defines splits " + splits + "; --split all uses every sample)"
        if cfg.split == "auto" and info["split"] != "all"
        else ""
    )
    sub = f", a seeded subset of {info['samples']}" if cfg.subset else ""
    print(f"data: {info['format']}, {what}{sub}{why}, {bands}")


def select_bands(cfg: Any) -> BandSelection:
    """The bands a run trains on: `--bands` resolved against the data, true colour for `--bands 3` on S2."""
    return true_colour_for_s2(
        resolve_data_bands(cfg.bands, cfg.sensor, cfg.data, cfg.format, cfg.zoom),
        cfg.data,
        cfg.format,
    )


def pretrain_data(cfg: PretrainConfig, selection: BandSelection, **override: Any):
    """(dataset, info) of the run's data options; `override` replaces some (the dry run's one batch)."""
    from rs_ssl.data.sampling import training_patches

    kw = {
        "sampler": cfg.sampler,
        "patch": cfg.size,
        "batch_size": cfg.batch_size,
        "samples_per_epoch": cfg.samples_per_epoch,
        "seed": cfg.seed,
        "region": cfg.region,
        "skip_bad": cfg.skip_bad,
        "subset": cfg.subset,
        "zoom": cfg.zoom,
        "split": cfg.split,
    }
    return training_patches(cfg.data, cfg.format, selection, **(kw | override))


def check(cfg: PretrainConfig) -> None:
    """Options that only make sense together (each option's own range is checked by the config)."""
    if cfg.samples_per_epoch < cfg.batch_size:
        raise UsageError(
            f"--samples-per-epoch {cfg.samples_per_epoch} is smaller than --batch-size {cfg.batch_size}"
        )


def precision_for(precision: str, accelerator: str) -> str:
    """`--precision auto`: bf16-mixed on GPU, 32-true on CPU."""
    if precision != "auto":
        return precision
    return "bf16-mixed" if accelerator == "gpu" else "32-true"


def run_length(cfg: PretrainConfig, samples: int, world: int) -> tuple[int, int]:
    """(steps per epoch, total optimiser steps) of a run over `samples` samples on `world` processes."""
    steps_per_epoch = samples // world // cfg.batch_size
    if steps_per_epoch == 0:
        raise UsageError(
            f"{samples} samples over {world} device(s) make no full batch of {cfg.batch_size}"
        )
    total = steps_per_epoch * cfg.epochs
    return steps_per_epoch, total if cfg.max_steps <= 0 else min(cfg.max_steps, total)


def make_loader(dataset, cfg: PretrainConfig):
    """The resumable loader: one seeded permutation per epoch, its position saved with checkpoints."""
    from rs_ssl.data.loader import EpochSampler, ResumableLoader

    # torchgeo-batch keeps its order: each of its batches is one raster's
    shuffle = getattr(dataset, "shuffle", True)
    sampler = EpochSampler(len(dataset), seed=cfg.seed, shuffle=shuffle, dataset=dataset)
    workers = max(0, cfg.workers)
    # Its own generator: iterator creation must not draw from the global RNG that augmentations use,
    # or a resumed run would see different views than an uninterrupted one.
    return ResumableLoader(
        dataset,
        batch_size=cfg.batch_size,
        sampler=sampler,
        drop_last=True,
        generator=torch.Generator().manual_seed(cfg.seed),
        num_workers=workers,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=False,
        prefetch_factor=4 if workers else None,
    )


def step_callbacks(nonfinite_patience: int = 10) -> list:
    """The callbacks that act on every step (NaN guard, loss history, RNG state), in pretrain and bench."""
    from rs_ssl.callbacks import LossHistory, NonFiniteGuard, RNGState

    return [RNGState(), NonFiniteGuard(patience=nonfinite_patience), LossHistory()]


@dataclass
class RunCallbacks:
    """Every callback of a pretraining run, and the ones whose state the run reads at the end."""

    callbacks: list
    guard: Any
    history: Any
    knn: Any


def run_callbacks(cfg: PretrainConfig, ckpt_dir: Path, knn) -> RunCallbacks:
    from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint

    from rs_ssl.callbacks import LossProgressBar, StopAtStep

    rng, guard, history = step_callbacks(cfg.nonfinite_patience)
    # At each epoch end last.ckpt (with --keep-checkpoints also epochNNN.ckpt, every one kept) and,
    # with --ckpt-every, last.ckpt every N steps; all written atomically by AtomicCheckpointIO.
    # By default the epoch callback's one file *is* last.ckpt (overwritten, no `-v1` versions):
    # the newest epochNNN.ckpt it used to keep held the same bytes as last.ckpt, a second write of
    # ResNet-18's 134 MB per epoch (benchmarks/RESULTS.md), and an atomically replaced last.ckpt is
    # never torn, so it was no fallback either. (save_top_k=0 with save_last would write nothing:
    # Lightning writes last.ckpt only after a top-k save.)
    keep = cfg.keep_checkpoints
    callbacks = [
        ModelCheckpoint(
            dirpath=ckpt_dir,
            filename="epoch{epoch:03d}" if keep else ModelCheckpoint.CHECKPOINT_NAME_LAST,
            auto_insert_metric_name=False,
            save_last=keep,
            enable_version_counter=False,
            save_top_k=-1 if keep else 1,
            every_n_epochs=1,
            save_on_train_epoch_end=True,
        ),
        LearningRateMonitor(logging_interval="step"),
        LossProgressBar(leave=True),
        rng,
        guard,
        history,
    ]
    if cfg.max_steps > 0:
        callbacks.append(StopAtStep(cfg.max_steps))
    if knn is not None:
        callbacks.append(knn)
    if cfg.ckpt_every > 0:
        callbacks.append(
            ModelCheckpoint(
                dirpath=ckpt_dir,
                filename="step{step:07d}",
                auto_insert_metric_name=False,
                every_n_train_steps=cfg.ckpt_every,
                save_top_k=1,
                save_last=True,
                enable_version_counter=False,  # the epoch callback's last.ckpt is the same file
            )
        )
    return RunCallbacks(callbacks, guard, history, knn)


def make_trainer(
    cfg: PretrainConfig,
    out: Path,
    place: Placement,
    *,
    callbacks: list,
    steps_per_epoch: int,
    gradient_clip: float | None,
):
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    from rs_ssl.checkpoints import AtomicCheckpointIO

    # A new version folder per (re)start: CSVLogger would otherwise delete the earlier segment's rows.
    loggers = [CSVLogger(out, name="logs"), TensorBoardLogger(out, name="tensorboard")]
    return L.Trainer(
        accelerator=place.accelerator,
        devices=place.devices,
        num_nodes=cfg.num_nodes,
        precision=place.precision,
        max_epochs=cfg.epochs,
        max_steps=-1,
        logger=loggers,
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
        log_every_n_steps=max(1, min(cfg.log_every, steps_per_epoch)),
        gradient_clip_val=gradient_clip,
        # Whenever DDP runs, `--devices auto` on a multi-GPU host included.
        sync_batchnorm=place.world > 1,
        enable_model_summary=False,
        deterministic=False,
        default_root_dir=out,
        use_distributed_sampler=False,
    )


def export(
    out: Path, method, cfg: PretrainConfig, selection, stats, data_info: dict, steps: int
) -> dict[str, Path]:
    """backbone.safetensors and the timm model folder of a finished run."""
    from rs_ssl.models import export_backbone
    from rs_ssl.models.folder import Provenance, data_licence, write_model_folder

    backbone = (
        method.backbone._orig_mod if hasattr(method.backbone, "_orig_mod") else method.backbone
    )
    weights_meta = {
        "timm_model": cfg.backbone,
        "in_chans": str(len(selection)),
        "bands": ",".join(selection.names),
        "sensor": selection.sensor.key,
        "method": cfg.method,
        "rs_ssl_config": json.dumps({"size": cfg.size}),
    }
    weights = export_backbone(backbone, out / "backbone.safetensors", metadata=weights_meta)
    model_dir = write_model_folder(
        out / "model",
        backbone,
        cfg.backbone,
        selection,
        stats,
        cfg.size,
        weights=weights,
        prov=Provenance(
            method=cfg.method,
            data=str(data_info.get("data")),
            data_format=str(data_info.get("format")),
            licence=data_licence(cfg.data, str(data_info.get("format"))),
            recipe={
                k: getattr(cfg, k)
                for k in (
                    "backbone",
                    "size",
                    "batch_size",
                    "epochs",
                    "samples_per_epoch",
                    "max_steps",
                    "lr",
                    "augs",
                    "init",
                    "seed",
                )
            }
            | {"steps": steps, "rs_ssl_command": "pretrain"},
        ),
    )
    return {"backbone": weights, "model_folder": model_dir}


def _resume_checkpoint(cfg: PretrainConfig, ckpt_dir: Path) -> Path | None:
    from rs_ssl.checkpoints import newest_valid_checkpoint

    if not cfg.resume:
        return None
    found = newest_valid_checkpoint(ckpt_dir)
    if found is None:
        raise RsSslError(f"--resume: no valid checkpoint in {ckpt_dir}")
    print(f"resuming from {found}")
    return found


def train(cfg: PretrainConfig) -> dict[str, Any]:
    """Pretrain as `cfg` says; writes the run folder and returns its metrics ({} off rank 0)."""
    import lightning as L

    check(cfg)
    selection = select_bands(cfg)
    if cfg.resume and not cfg.out:
        raise UsageError("--resume needs --out pointing at the run folder to continue")
    out = prepare_out(cfg.out or default_out("pretrain"))
    ckpt_dir = out / "checkpoints"
    resume_from = _resume_checkpoint(cfg, ckpt_dir)

    L.seed_everything(cfg.seed, workers=True, verbose=False)
    dataset, data_info = pretrain_data(cfg, selection)
    _print_data(data_info, selection, cfg)
    stats = load_stats(selection)
    place = placement(cfg)
    steps_per_epoch, total_steps = run_length(cfg, len(dataset), place.world)
    method = build_method(
        cfg,
        selection,
        stats,
        samples=len(dataset),
        total_steps=total_steps,
        steps_per_epoch=steps_per_epoch,
    )
    loader = make_loader(dataset, cfg)
    if cfg.compile:
        method.backbone = torch.compile(method.backbone)
    knn = online_knn(cfg, selection, data_info.get("split"))
    cbs = run_callbacks(cfg, ckpt_dir, knn)
    trainer = make_trainer(
        cfg,
        out,
        place,
        callbacks=cbs.callbacks,
        steps_per_epoch=steps_per_epoch,
        gradient_clip=method.defaults.gradient_clip,
    )
    loader.position = lambda: (
        trainer.current_epoch,
        trainer.fit_loop.epoch_loop.batch_progress.current.processed,
    )

    write_config(
        out,
        "pretrain",
        cfg,
        extra={
            "bands": list(selection.names),
            "sensor": selection.sensor.key,
            "normalisation": stats.source,
            "precision": place.precision,
            "accelerator": place.accelerator,
            "data": data_info,
            "lr_effective": method.scaled_lr(place.world),
            "memory_format": method.resolved_hyper_parameters()["memory_format"],
            "world_size": place.world,
            "online_knn_samples": len(knn.dataset) if knn else 0,
        },
    )
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*`training_step` returned.*")
        trainer.fit(method, train_dataloaders=loader, ckpt_path=resume_from, weights_only=True)
    elapsed = time.perf_counter() - t0
    if not trainer.is_global_zero:
        return {}

    return finish(
        cfg,
        out,
        method,
        trainer,
        cbs,
        selection=selection,
        stats=stats,
        data_info=data_info,
        bad_reads=dataset.bad_reads.total,
        world=place.world,
        elapsed=elapsed,
        resume_from=resume_from,
    )


def finish(
    cfg: PretrainConfig,
    out: Path,
    method,
    trainer,
    cbs: RunCallbacks,
    *,
    selection,
    stats,
    data_info: dict,
    bad_reads: int,
    world: int,
    elapsed: float,
    resume_from: Path | None,
) -> dict[str, Any]:
    """After fit, on rank 0: weights, model folder, loss history and curve, metrics.json; a summary line."""
    from rs_ssl.plots import loss_curve

    ckpt_dir = out / "checkpoints"
    exported = export(out, method, cfg, selection, stats, data_info, int(trainer.global_step))
    steps, losses = cbs.history.history()
    write_loss_history(out, steps, losses)
    if steps:
        loss_curve(
            {cfg.method: (steps, losses)},
            out / "loss.png",
            title=f"{cfg.method} · {cfg.backbone} · {len(selection)} bands · {cfg.size} px",
        )
    feature_std = trainer.callback_metrics.get("train/feature_std")
    metrics = {
        "command": "pretrain",
        "method": cfg.method,
        "backbone": cfg.backbone,
        "bands": list(selection.names),
        "steps": int(trainer.global_step),
        "epochs_completed": int(trainer.current_epoch),
        "final_loss": losses[-1] if losses else None,
        "first_loss": losses[0] if losses else None,
        "min_loss": min(losses) if losses else None,
        "feature_std": float(feature_std) if feature_std is not None else None,
        "nonfinite_steps_skipped": cbs.guard.skipped,
        "online_knn": cbs.knn.history if cbs.knn is not None else None,
        "lr_effective": method.scaled_lr(world),
        "train_seconds": round(elapsed, 2),
        "images_per_second": round(trainer.global_step * cfg.batch_size / elapsed, 2)
        if elapsed > 0
        else None,
        "resumed_from": str(resume_from) if resume_from else None,
        "data": {k: v for k, v in data_info.items() if k != "skipped_reasons"},
        "skipped": data_info["skipped"],
        "bad_patches_replaced": bad_reads,  # NaN/all-nodata reads redrawn under --skip-bad
        "outputs": {
            "checkpoint": str(ckpt_dir / "last.ckpt"),
            "backbone": str(exported["backbone"]),
            "model_folder": str(exported["model_folder"]),
            "loss_curve": str(out / "loss.png"),
            "config": str(out / "config.yaml"),
        },
    }
    write_metrics(out, metrics)
    print(
        f"pretrain done: {cfg.method}/{cfg.backbone}, {len(selection)} bands, {metrics['steps']} steps in "
        f"{elapsed:.0f} s; loss {metrics['first_loss']:.3f} -> {metrics['final_loss']:.3f}\n"
        f"  backbone: {exported['backbone']} (timm model folder: {exported['model_folder']})\n"
        f"  run folder: {out}"
        if losses
        else f"pretrain done: {metrics['steps']} steps; run folder: {out}"
    )
    return metrics


# TensorBoard's writer imports TensorFlow when it is installed: keep its start-up log quiet.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
