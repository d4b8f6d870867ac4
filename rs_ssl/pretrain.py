"""`rs-ssl pretrain`: build data, views, backbone and method from a PretrainConfig and train."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import time
import warnings
from pathlib import Path
from typing import Any

import torch

from rs_ssl.bands import load_stats, resolve_bands
from rs_ssl.config import PretrainConfig, default_out
from rs_ssl.data import resolve_data_bands
from rs_ssl.errors import RsSslError, UsageError
from rs_ssl.runs import atomic_write_text, prepare_out, write_config, write_metrics

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


def online_knn(cfg: PretrainConfig, selection):
    """The online k-NN monitor on --knn-data, or on --data when it is labelled; None otherwise."""
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
    dataset, _ = labelled_dataset(
        source, fmt, selection, split=None, patch=cfg.size, skip_bad=cfg.skip_bad
    )
    if len(dataset) < 2:
        return None
    return OnlineKNN(dataset, k=cfg.knn_k, batch_size=cfg.batch_size, seed=cfg.seed)


def effective_queue_size(cfg: PretrainConfig, samples: int | None = None) -> int:
    """MoCo's queue must hold keys of *other* images: at most half an epoch's distinct samples.

    A queue larger than the data (the 16384 default on the 512-patch demo) fills with random
    initial keys and with earlier keys of the query's own image, so it is clamped, with a notice.
    `samples` is the epoch's length (patch datasets use every sample, not --samples-per-epoch).
    """
    n = cfg.samples_per_epoch if samples is None else samples
    limit = max(cfg.batch_size, (n // 2) // cfg.batch_size * cfg.batch_size)
    if cfg.method == "mocov2" and cfg.queue_size > limit:
        print(
            f"note: --queue-size {cfg.queue_size} exceeds half of the {n} samples per epoch; using {limit}"
        )
        return limit
    return cfg.queue_size


def build_method(cfg: PretrainConfig, selection, stats, samples: int | None = None):
    """The LightningModule for cfg.method, with backbone and device-side views."""
    from rs_ssl.augment import is_preset, make_views
    from rs_ssl.methods import METHODS
    from rs_ssl.models import create_backbone

    if cfg.method not in METHODS:
        raise UsageError(
            f"--method {cfg.method}: not implemented yet; available: {', '.join(METHODS)}"
        )
    cls = METHODS[cfg.method]
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
    return cls(
        backbone=backbone,
        selection=selection,
        stats=stats,
        views=views,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        temperature=cfg.temperature,
        batch_size=cfg.batch_size,
        warmup_epochs=cfg.warmup_epochs if cfg.warmup_epochs > 0 else None,
        proj_dim=cfg.proj_dim,
        optimizer=cfg.optimizer,
        lr_scaling=cfg.lr_scaling,
        queue_size=effective_queue_size(cfg, samples),
        momentum=cfg.momentum,
        freeze_patch_embed=cfg.freeze_patch_embed,
    )


def _accelerator(devices: str) -> tuple[str, Any]:
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


def gradient_clip(method: str) -> float | None:
    """Gradient-norm clip of pretraining: none for MoCo v3 (its reference has none), 3.0 otherwise."""
    return None if method == "mocov3" else 3.0


class _StopAtStep:
    """Ends training after `max_steps` optimiser steps.

    Not Lightning's `max_steps`: with it set, Lightning treats every resume as mid-epoch and
    restores the finished epoch's batch counter, which cuts the next epoch short.
    """

    def __new__(cls, max_steps: int):
        from lightning.pytorch.callbacks import Callback

        class StopAtStep(Callback):
            def on_train_batch_end(self, trainer, *args) -> None:
                if trainer.global_step >= max_steps:
                    trainer.should_stop = True

        return StopAtStep()


def read_loss_history(out: Path) -> tuple[list[int], list[float]]:
    """(steps, losses) of a run folder, from the `loss_history.csv` written at the end of a run."""
    steps, losses = [], []
    with open(Path(out) / "loss_history.csv", newline="") as f:
        for row in csv.DictReader(f):
            steps.append(int(row["step"]))
            losses.append(float(row["loss"]))
    return steps, losses


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


def dry_run(cfg: PretrainConfig) -> dict[str, Any]:
    """`pretrain --dry-run`: resolve the configuration and build the model, print both, write config.yaml.

    With --data the bands are checked on one sample (one raster header per file of a scene folder);
    without it the data checks are skipped and the dry run says so. Nothing is trained.
    """
    data_info: dict[str, Any] = {"checked": False}
    if cfg.data is None:
        # `--bands auto` without --data: the embedded sample's bands, as a run without --data would use.
        selection = resolve_data_bands(cfg.bands, cfg.sensor, None, cfg.format, cfg.zoom)
        print(
            "note: no --data given: data checks skipped (the recipe's dataset path is yours: give --data PATH to check its bands)"
        )
    else:
        from rs_ssl.data import pretrain_dataset

        selection = true_colour_for_s2(
            resolve_data_bands(cfg.bands, cfg.sensor, cfg.data, cfg.format, cfg.zoom),
            cfg.data,
            cfg.format,
        )
        _, info = pretrain_dataset(
            cfg.data,
            cfg.format,
            selection,
            patch=cfg.size,
            samples_per_epoch=cfg.batch_size,
            seed=cfg.seed,
            region=cfg.region,
            skip_bad=cfg.skip_bad,
            subset=1,
            zoom=cfg.zoom,
        )
        data_info = {"checked": True, "data": info["data"], "format": info["format"]}
        print(f"data: {info['data']} ({info['format']}): bands {','.join(selection.names)} found")
    stats = load_stats(selection)
    # The dataset's length is not read: MoCo's queue is shown unclamped (the run clamps it to the data).
    method = build_method(
        cfg, selection, stats, samples=max(cfg.samples_per_epoch, 2 * cfg.queue_size)
    )
    resolved = {
        "lr_effective": method.scaled_lr(),  # the method's own batch scaling, on one device
        "optimizer": method.optimizer_name,
        "weight_decay": method.weight_decay,
        "temperature": method.temperature,
        "warmup_epochs": method.warmup_epochs,
        "proj_dim": method.proj_dim,
        "augs": method.views.config.get("preset", cfg.augs),
        "gradient_clip": gradient_clip(cfg.method),
        # Momentum methods: the key encoder's (starting) momentum and the queue they built.
        "momentum": getattr(method, "base_momentum", getattr(method, "m", None)),
        "queue_size": int(method.queue.shape[0]) if hasattr(method, "queue") else None,
        "parameters": sum(p.numel() for p in method.parameters()),
        "backbone_parameters": sum(p.numel() for p in method.backbone.parameters()),
        "bands": ",".join(selection.names),
    }
    out = prepare_out(cfg.out or default_out("pretrain"))
    # Written with dry_run off: `rs-ssl pretrain --config OUT/config.yaml` then trains this configuration.
    path = write_config(
        out,
        "pretrain",
        dataclasses.replace(cfg, dry_run=False),
        extra={"dry_run": resolved, "data": data_info},
    )
    import yaml

    print(yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False), end="")
    print(yaml.safe_dump({"resolved": resolved}, sort_keys=False), end="")
    print(
        f"dry run: {resolved['parameters']:,} parameters ({cfg.backbone} {resolved['backbone_parameters']:,}); "
        f"lr_effective {resolved['lr_effective']:.6g} on one device at batch {cfg.batch_size} (N devices: N times that); "
        f"nothing trained; config: {path}"
    )
    return {"config": str(path), **resolved}


def run(cfg: PretrainConfig) -> dict[str, Any]:
    import lightning as L
    from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    from rs_ssl.checkpoints import (
        AtomicCheckpointIO,
        LossHistory,
        LossProgressBar,
        NonFiniteGuard,
        RNGState,
        newest_valid_checkpoint,
    )
    from rs_ssl.data.loader import EpochSampler, ResumableLoader
    from rs_ssl.data.sampling import training_patches
    from rs_ssl.models import export_backbone
    from rs_ssl.models.folder import Provenance, data_licence, write_model_folder
    from rs_ssl.plots import loss_curve

    for name, v in (
        ("size", cfg.size),
        ("batch-size", cfg.batch_size),
        ("epochs", cfg.epochs),
        ("samples-per-epoch", cfg.samples_per_epoch),
    ):
        if v <= 0:
            raise UsageError(f"--{name} must be positive, got {v}")
    if cfg.samples_per_epoch < cfg.batch_size:
        raise UsageError(
            f"--samples-per-epoch {cfg.samples_per_epoch} is smaller than --batch-size {cfg.batch_size}"
        )
    if cfg.dry_run:
        return dry_run(cfg)
    selection = true_colour_for_s2(
        resolve_data_bands(cfg.bands, cfg.sensor, cfg.data, cfg.format, cfg.zoom),
        cfg.data,
        cfg.format,
    )
    if cfg.resume and not cfg.out:
        raise UsageError("--resume needs --out pointing at the run folder to continue")
    out = prepare_out(cfg.out or default_out("pretrain"))
    ckpt_dir = out / "checkpoints"
    resume_from = None
    if cfg.resume:
        resume_from = newest_valid_checkpoint(ckpt_dir)
        if resume_from is None:
            raise RsSslError(f"--resume: no valid checkpoint in {ckpt_dir}")
        print(f"resuming from {resume_from}")

    L.seed_everything(cfg.seed, workers=True, verbose=False)
    dataset, data_info = training_patches(
        cfg.data,
        cfg.format,
        selection,
        sampler=cfg.sampler,
        patch=cfg.size,
        samples_per_epoch=cfg.samples_per_epoch,
        batch_size=cfg.batch_size,
        seed=cfg.seed,
        region=cfg.region,
        skip_bad=cfg.skip_bad,
        subset=cfg.subset,
        zoom=cfg.zoom,
        split=cfg.split,
    )
    _print_data(data_info, selection, cfg)
    stats = load_stats(selection)
    method = build_method(cfg, selection, stats, samples=len(dataset))

    # torchgeo-batch keeps its order: each of its batches is one raster's
    shuffle = getattr(dataset, "shuffle", True)
    sampler = EpochSampler(len(dataset), seed=cfg.seed, shuffle=shuffle, dataset=dataset)
    workers = max(0, cfg.workers)
    # Its own generator: iterator creation must not draw from the global RNG that augmentations use,
    # or a resumed run would see different views than an uninterrupted one.
    loader = ResumableLoader(
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
    accelerator, devices = _accelerator(cfg.devices)
    world = world_size(accelerator, devices, cfg.num_nodes)
    steps_per_epoch = len(dataset) // world // cfg.batch_size
    if steps_per_epoch == 0:
        raise UsageError(
            f"{len(dataset)} samples over {world} device(s) make no full batch of {cfg.batch_size}"
        )
    method.total_steps = (
        steps_per_epoch * cfg.epochs
        if cfg.max_steps <= 0
        else min(cfg.max_steps, steps_per_epoch * cfg.epochs)
    )
    method.steps_per_epoch = steps_per_epoch
    precision = (
        cfg.precision
        if cfg.precision != "auto"
        else ("bf16-mixed" if accelerator == "gpu" else "32-true")
    )
    if cfg.compile:
        method.backbone = torch.compile(method.backbone)

    # Epoch-end checkpoints (the newest kept, or all with --keep-checkpoints, plus last.ckpt) and, with --ckpt-every, last.ckpt every N
    # steps; all written atomically by AtomicCheckpointIO.
    callbacks = [
        ModelCheckpoint(
            dirpath=ckpt_dir,
            filename="epoch{epoch:03d}",
            auto_insert_metric_name=False,
            save_last=True,
            save_top_k=-1 if cfg.keep_checkpoints else 1,
            every_n_epochs=1,
            save_on_train_epoch_end=True,
        ),
        LearningRateMonitor(logging_interval="step"),
        LossProgressBar(leave=True),
        RNGState(),
        guard := NonFiniteGuard(patience=cfg.nonfinite_patience),
        history := LossHistory(),
    ]
    if cfg.max_steps > 0:
        callbacks.append(_StopAtStep(cfg.max_steps))
    knn = online_knn(cfg, selection)
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
            )
        )
    # A new version folder per (re)start: CSVLogger would otherwise delete the earlier segment's rows.
    loggers = [CSVLogger(out, name="logs"), TensorBoardLogger(out, name="tensorboard")]
    trainer = L.Trainer(
        accelerator=accelerator,
        devices=devices,
        num_nodes=cfg.num_nodes,
        precision=precision,
        max_epochs=cfg.epochs,
        max_steps=-1,
        logger=loggers,
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
        log_every_n_steps=max(1, min(cfg.log_every, steps_per_epoch)),
        gradient_clip_val=gradient_clip(cfg.method),
        sync_batchnorm=world
        > 1,  # whenever DDP runs, `--devices auto` on a multi-GPU host included
        enable_model_summary=False,
        deterministic=False,
        default_root_dir=out,
        use_distributed_sampler=False,
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
            "precision": precision,
            "accelerator": accelerator,
            "data": data_info,
            "lr_effective": method.scaled_lr(world),
            "world_size": world,
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
            | {"steps": int(trainer.global_step), "rs_ssl_command": "pretrain"},
        ),
    )
    steps, losses = history.history()
    atomic_write_text(
        out / "loss_history.csv",
        "step,loss\n" + "".join(f"{s},{v!r}\n" for s, v in zip(steps, losses, strict=True)),
    )
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
        "nonfinite_steps_skipped": guard.skipped,
        "online_knn": knn.history if knn is not None else None,
        "lr_effective": method.scaled_lr(world),
        "train_seconds": round(elapsed, 2),
        "images_per_second": round(trainer.global_step * cfg.batch_size / elapsed, 2)
        if elapsed > 0
        else None,
        "resumed_from": str(resume_from) if resume_from else None,
        "data": {k: v for k, v in data_info.items() if k != "skipped_reasons"},
        "skipped": data_info["skipped"],
        "bad_patches_replaced": dataset.bad_reads.total,  # NaN/all-nodata reads redrawn under --skip-bad
        "outputs": {
            "checkpoint": str(ckpt_dir / "last.ckpt"),
            "backbone": str(weights),
            "model_folder": str(model_dir),
            "loss_curve": str(out / "loss.png"),
            "config": str(out / "config.yaml"),
        },
    }
    write_metrics(out, metrics)
    print(
        f"pretrain done: {cfg.method}/{cfg.backbone}, {len(selection)} bands, {metrics['steps']} steps in "
        f"{elapsed:.0f} s; loss {metrics['first_loss']:.3f} -> {metrics['final_loss']:.3f}\n"
        f"  backbone: {weights} (timm model folder: {model_dir})\n  run folder: {out}"
        if losses
        else f"pretrain done: {metrics['steps']} steps; run folder: {out}"
    )
    return metrics


os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
