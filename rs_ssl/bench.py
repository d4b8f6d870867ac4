"""`rs-ssl bench`: images/s of the full pretraining step, against TorchGeo and a hand-written step.

All variants run in the same process on identical inputs: one batch of real patches (the
embedded sample, or `--data`) held in memory, so only the step is timed. With `--data` the rs-ssl
step is timed a second time with patches streamed from the files by DataLoader workers, which
shows whether loading keeps up with the step. Throughput counts images (each gives two views).
"""

from __future__ import annotations

import dataclasses
import json
import math
import resource
import statistics
import time
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from rs_ssl.bands import load_stats
from rs_ssl.callbacks import StepTimer
from rs_ssl.config import BenchConfig, PretrainConfig, default_out
from rs_ssl.errors import UsageError
from rs_ssl.runs import prepare_out, write_config, write_metrics

# Dense bf16 tensor-core peaks (TFLOP/s, vendor datasheets) for model-FLOPs utilisation.
PEAK_TFLOPS_BF16 = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L4": 121.0, "A10": 125.0}

TORCHGEO_TASKS = {
    "simclr": ("SimCLRTask", {"version": 1, "layers": 2, "memory_bank_size": 0}),
    "mocov2": ("MoCoTask", {"version": 2}),
    "mocov3": ("MoCoTask", {"version": 3}),
}


class _RepeatBatch(Dataset):
    """`length` items cycling over a fixed set of real patches (no I/O in the timed loop)."""

    def __init__(self, images: torch.Tensor, length: int):
        self.images, self.length = images, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"image": self.images[i % len(self.images)]}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _fit_timed(
    module,
    loader,
    steps: int,
    warmup: int,
    device: torch.device,
    precision: str,
    callbacks: list | None = None,
    clip: float | None = None,
    log_dir=None,
) -> float:
    """Run Lightning for warmup+steps optimiser steps; returns seconds for the timed steps.

    With `log_dir`, metrics are logged to CSV every `PretrainConfig.log_every` steps, as pretrain does."""
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger

    timer = StepTimer(warmup, device)
    logger = CSVLogger(log_dir, name="logs") if log_dir is not None else False
    trainer = L.Trainer(
        accelerator="gpu" if device.type == "cuda" else "cpu",
        devices=1,
        precision=precision,
        max_steps=warmup + steps,
        max_epochs=-1,
        logger=logger,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[*(callbacks or []), timer],
        num_sanity_val_steps=0,
        gradient_clip_val=clip,
        log_every_n_steps=min(PretrainConfig.log_every, warmup + steps),
    )
    trainer.fit(module, train_dataloaders=loader)
    return timer.seconds()


def _handwritten_seconds(
    method,
    images: torch.Tensor,
    steps: int,
    warmup: int,
    device: torch.device,
    precision: str,
) -> float:
    """The same networks, views and loss in a bare PyTorch loop (what a careful user would write)."""
    method = method.to(device).train()
    opt = torch.optim.SGD(
        [p for p in method.parameters() if p.requires_grad], lr=1e-3, momentum=0.9
    )
    x_dn = images.to(device)
    autocast = torch.autocast(
        device.type, dtype=torch.bfloat16, enabled=precision.startswith("bf16")
    )
    t0 = 0.0
    for i in range(warmup + steps):
        if i == warmup:
            _sync(device)
            t0 = time.perf_counter()
        with torch.no_grad():
            v1, v2 = method.views(method.normalize(x_dn))
        # The layout rs-ssl's step uses (`--memory-format`, applied to the weights by build_method).
        v1, v2 = (v.contiguous(memory_format=method.input_format) for v in (v1, v2))
        with autocast:
            loss, _ = method.ssl_step(v1, v2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    _sync(device)
    return time.perf_counter() - t0


def _torchgeo_task(cfg: BenchConfig, bands: int):
    """TorchGeo's own task for the method, with its default augmentations."""
    import torchgeo.trainers as tg

    name, kwargs = TORCHGEO_TASKS[cfg.method]
    return getattr(tg, name)(model=cfg.backbone, in_channels=bands, size=cfg.size, **kwargs)


def _model_flops(method, images: torch.Tensor, device: torch.device) -> float | None:
    """FLOPs of one training step (forward + backward over both views), counted by torch."""
    from torch.utils.flop_counter import FlopCounterMode

    try:
        with torch.no_grad():
            v1, v2 = method.views(method.normalize(images.to(device)))
        counter = FlopCounterMode(display=False)
        with counter:
            loss, _ = method.ssl_step(v1, v2)
            loss.backward()
        method.zero_grad(set_to_none=True)
        return float(counter.get_total_flops())
    except Exception:  # noqa: BLE001 - FLOP counting is informational; some ops have no formula
        return None


def _real_patches(cfg: BenchConfig, selection, n: int) -> torch.Tensor:
    from rs_ssl.data import pretrain_dataset

    ds, _ = pretrain_dataset(
        cfg.data, cfg.format, selection, patch=cfg.size, samples_per_epoch=n, seed=cfg.seed
    )
    return torch.stack([ds[i]["image"] for i in range(n)])


def run(cfg: BenchConfig) -> dict[str, Any]:
    from rs_ssl.training import build_method, precision_for, select_bands, step_callbacks

    if cfg.compare == "torchgeo" and cfg.method not in TORCHGEO_TASKS:
        raise UsageError(
            f"--compare torchgeo: TorchGeo has no task for --method {cfg.method} (it has {', '.join(TORCHGEO_TASKS)})"
        )
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is visible")
    device = torch.device(
        "cuda"
        if cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
        else "cpu"
    )
    precision = precision_for(cfg.precision, "gpu" if device.type == "cuda" else "cpu")
    selection = select_bands(cfg)
    out = prepare_out(cfg.out or default_out("bench"))
    write_config(out, "bench", cfg)
    torch.manual_seed(cfg.seed)

    images = _real_patches(cfg, selection, cfg.batch_size)
    total = cfg.batch_size * (cfg.warmup + cfg.steps)
    pcfg = PretrainConfig(
        **{
            f.name: getattr(cfg, f.name)
            for f in dataclasses.fields(PretrainConfig)
            if hasattr(cfg, f.name) and f.name not in ("precision", "workers")
        },
        samples_per_epoch=total,
    )

    def fresh_method():
        torch.manual_seed(cfg.seed)
        steps = cfg.warmup + cfg.steps
        m = build_method(
            pcfg,
            selection,
            load_stats(selection),
            samples=total,
            total_steps=steps,
            steps_per_epoch=steps,
        )
        if cfg.compile:
            m.backbone = torch.compile(
                m.backbone
            )  # as pretrain --compile; compiled in the warm-up steps
        return m

    def time_rs_ssl(method, loader) -> float:
        """rs-ssl's step as pretrain runs it: its callbacks, gradient clipping and CSV logging."""
        return _fit_timed(
            method,
            loader,
            cfg.steps,
            cfg.warmup,
            device,
            precision,
            callbacks=step_callbacks(),
            clip=method.defaults.gradient_clip,
            log_dir=out,
        )

    def mem_loader(workers: int = 0, source: torch.Tensor = images):
        return DataLoader(
            _RepeatBatch(source, total),
            batch_size=cfg.batch_size,
            shuffle=False,
            drop_last=True,
            num_workers=workers,
            pin_memory=device.type == "cuda",
        )

    result: dict[str, Any] = {
        "method": cfg.method,
        "backbone": cfg.backbone,
        "bands": len(selection),
        "size": cfg.size,
        "batch_size": cfg.batch_size,
        "steps": cfg.steps,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "precision": precision,
        "torch_threads": torch.get_num_threads(),
    }
    with torch.no_grad():  # TorchGeo tasks take the batch as given: the same standardised input
        standardised = fresh_method().normalize(images)
    loader_io = None
    if cfg.data:
        from rs_ssl.data import pretrain_dataset

        ds, _ = pretrain_dataset(
            cfg.data, cfg.format, selection, patch=cfg.size, samples_per_epoch=total, seed=cfg.seed
        )
        loader_io = DataLoader(
            ds,
            batch_size=cfg.batch_size,
            drop_last=True,
            num_workers=cfg.workers,
            pin_memory=device.type == "cuda",
            persistent_workers=cfg.workers > 0,
            prefetch_factor=4 if cfg.workers else None,
        )
    # Variants alternate round by round, so that a burst of load on a shared machine hits all of
    # them alike; each figure is the median over rounds.
    times: dict[str, list[float]] = {
        "rs_ssl": [],
        "streamed": [],
        "handwritten": [],
        "torchgeo": [],
    }
    flops = None
    for r in range(cfg.rounds):
        if device.type == "cuda" and r == 0:
            torch.cuda.reset_peak_memory_stats(device)
        method = fresh_method()
        if device.type == "cuda" and r == 0:
            flops = _model_flops(method, images, device)
        times["rs_ssl"].append(time_rs_ssl(method, mem_loader()))
        if device.type == "cuda" and r == 0:
            result["peak_gpu_mem_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
        if loader_io is not None:
            times["streamed"].append(time_rs_ssl(fresh_method(), loader_io))
        if cfg.handwritten:
            times["handwritten"].append(
                _handwritten_seconds(
                    fresh_method(), images, cfg.steps, cfg.warmup, device, precision
                )
            )
        if cfg.compare == "torchgeo":
            torch.manual_seed(cfg.seed)
            times["torchgeo"].append(
                _fit_timed(
                    _torchgeo_task(cfg, len(selection)),
                    mem_loader(source=standardised),
                    cfg.steps,
                    cfg.warmup,
                    device,
                    precision,
                )
            )
    secs = statistics.median(times["rs_ssl"])
    per_s = {k: cfg.steps * cfg.batch_size / statistics.median(v) for k, v in times.items() if v}
    result["rounds"] = cfg.rounds
    result["img_per_s"] = round(per_s["rs_ssl"], 2)
    result["step_ms"] = round(1000 * secs / cfg.steps, 2)
    if flops:
        peak = next((v for k, v in PEAK_TFLOPS_BF16.items() if k in result["device_name"]), None)
        if peak:
            result["mfu"] = round(flops / (secs / cfg.steps) / (peak * 1e12), 4)
    if "streamed" in per_s:
        result["streamed_img_per_s"] = round(per_s["streamed"], 2)
        result["streamed_vs_memory"] = round(per_s["streamed"] / per_s["rs_ssl"], 3)
        result["workers"] = cfg.workers
    if "handwritten" in per_s:
        result["handwritten_img_per_s"] = round(per_s["handwritten"], 2)
        result["ratio_vs_handwritten"] = round(per_s["rs_ssl"] / per_s["handwritten"], 3)
    if "torchgeo" in per_s:
        result["torchgeo_img_per_s"] = round(per_s["torchgeo"], 2)
        result["ratio"] = round(per_s["rs_ssl"] / per_s["torchgeo"], 3)
    result["peak_host_rss_gib"] = round(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2
    )
    result = {
        k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in result.items()
    }
    write_metrics(out, {"command": "bench", **result})
    print(json.dumps(result))
    return result
