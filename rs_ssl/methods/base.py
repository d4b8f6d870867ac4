"""Shared plumbing of every SSL method: normalisation and views on the device, optimiser, schedule.

A method subclass takes its own hyper-parameters as typed keyword arguments (None: the paper
default of its entry in `rs_ssl.methods.table`, read as `cls.defaults`), builds its networks in
its `__init__`, and returns the loss from `ssl_step(v1, v2)`. Momentum methods list their
(online, momentum) pairs in `momentum_pairs()`; `momentum_update` updates them all.
"""

from __future__ import annotations

import inspect
import math
from typing import Any, ClassVar

import lightning as L
import torch
from torch import nn

from rs_ssl.bands import BandSelection, BandStats
from rs_ssl.data.normalize import Normalize
from rs_ssl.errors import UsageError
from rs_ssl.methods.optim import LARS
from rs_ssl.methods.table import LR_SCALINGS, OPTIMIZERS, SCHEDULES, MethodDefaults, spec
from rs_ssl.models.backbone import format_name, memory_format, output_dim, patch_projection


def scaling_rule(rule: str, optimizer: str) -> str:
    """`rule` (LR_SCALINGS) with `auto` resolved for `optimizer`: see `scale_lr`."""
    if rule not in LR_SCALINGS:
        raise UsageError(f"--lr-scaling {rule}: choose one of {', '.join(LR_SCALINGS)}")
    if rule == "auto":
        return "sqrt" if optimizer in ("adam", "adamw") else "linear"
    return rule


def scale_lr(base_lr: float, global_batch: int, optimizer: str, rule: str = "auto") -> float:
    """The learning rate at `global_batch` from `base_lr`, given at batch 256.

    `auto`: linear for SGD and LARS (Goyal et al. 2017: the SGD step is a sum of per-sample gradients,
    so k times the batch wants k times the rate); square root for Adam and AdamW, whose update is
    normalised by the gradient's second moment, so a bigger batch only lowers the gradient noise,
    by sqrt(k) (the square-root rule of Krizhevsky 2014 and Malladi et al. 2022, "On the SDEs and
    Scaling Rules for Adaptive Gradient Algorithms"). `linear` is what moco-v3 main_moco.py applies
    to AdamW as well (its paper recipe); `none` takes `base_lr` as is.
    """
    rule = scaling_rule(rule, optimizer)
    k = global_batch / 256
    return base_lr * {"linear": k, "sqrt": math.sqrt(k), "none": 1.0}[rule]


def lr_multiplier(step: int, total: int, warmup: int, schedule: str = "cosine") -> float:
    """LR multiplier of `schedule` (SCHEDULES): the warm-up of `warmup_cosine`, then its half cosine
    or, with `constant`, the full rate to the end."""
    if schedule == "constant":
        return step / warmup if warmup > 0 and step < warmup else 1.0
    return warmup_cosine(step, total, warmup)


def warmup_cosine(step: int, total: int, warmup: int) -> float:
    """LR multiplier: linear warm-up over `warmup` steps, then half-cosine to 0 at `total` (per step).

    Warm-up is `step / warmup` from 0, as moco-v3 main_moco.py `adjust_learning_rate`
    (`lr * epoch / warmup_epochs` with the fractional epoch `epoch + i / iters_per_epoch`).
    """
    if warmup > 0 and step < warmup:
        return step / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def build_optimizer(
    kind: str,
    groups: list[dict[str, Any]],
    lr: float,
    precision: str = "32-true",
    fused: bool = True,
) -> torch.optim.Optimizer:
    """The optimiser `kind` over `groups`.

    Fused kernels (`fused`): one launch for all parameters, and the NaN guard's on-device
    `found_inf` flag skips a step without a host sync; without them the guard reads the flag on the
    host and drops a bad step's gradients. On the CPU the fused, foreach and for-loop Adam kernels
    cost the same for ResNet-18 (49.7, 50.3, 50.7 ms a step, run round-robin on the idle 2-core dev
    CPU; benchmarks/cpu_step_costs.py, issue 15). Never under fp16, where Lightning must unscale the
    gradients before clipping and refuses optimisers that unscale internally.
    """
    kernel = {"fused": True} if fused and not precision.startswith("16") else {}
    if kind == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=0.9, **kernel)
    if kind == "adamw":
        # torch's default betas (0.9, 0.999), as moco-v3 main_moco.py's AdamW.
        return torch.optim.AdamW(groups, lr=lr, **kernel)
    if kind == "adam":
        return torch.optim.Adam(groups, lr=lr, **kernel)
    if kind == "lars":
        return LARS(groups, lr=lr, amp_scaling=bool(kernel))
    raise UsageError(f"--optimizer {kind}: choose one of {', '.join(OPTIMIZERS)}")


class _TableDefaults:
    """`cls.defaults`: the class's entry in the method table, the one place its defaults are written."""

    def __get__(self, obj: Any, owner: type) -> MethodDefaults:
        return spec(owner.name).defaults


class SSLMethod(L.LightningModule):
    name: ClassVar[str] = ""
    defaults: ClassVar[MethodDefaults] = _TableDefaults()  # type: ignore[assignment]

    def __init__(
        self,
        *,
        backbone: nn.Module,
        selection: BandSelection,
        stats: BandStats,
        views: nn.Module,
        lr: float | None = None,
        weight_decay: float | None = None,
        batch_size: int = 256,
        warmup_epochs: float | None = None,
        schedule: str | None = None,
        optimizer: str | None = None,
        lr_scaling: str = "auto",
        total_steps: int | None = None,
        steps_per_epoch: int | None = None,
        epoch_samples: int | None = None,
    ):
        """`total_steps`, `steps_per_epoch`: the run's length, for the schedules (default: Lightning's
        estimate at fit time); `epoch_samples`: distinct samples per epoch (None: not known)."""
        super().__init__()
        self.backbone = backbone
        self.normalize = Normalize(selection, stats)
        self.views = views
        self.optimizer_name = self.defaults.optimizer if optimizer is None else optimizer
        if self.optimizer_name not in OPTIMIZERS:
            raise UsageError(
                f"--optimizer {self.optimizer_name}: choose one of {', '.join(OPTIMIZERS)}"
            )
        if lr is None and self.optimizer_name == "lars" and self.defaults.optimizer != "lars":
            if self.defaults.lars_lr is None:
                raise UsageError(
                    f"--optimizer lars: {self.name} has no paper learning rate for LARS; give --lr"
                )
            lr = self.defaults.lars_lr
        self.base_lr = self.default_lr(backbone) if lr is None else lr
        self.weight_decay = self.defaults.weight_decay if weight_decay is None else weight_decay
        self.warmup_epochs = (
            self.default_warmup_epochs(total_steps, steps_per_epoch)
            if warmup_epochs is None
            else warmup_epochs
        )
        self.schedule = self.defaults.schedule if schedule is None else schedule
        if self.schedule not in SCHEDULES:
            raise UsageError(f"--schedule {self.schedule}: choose one of {', '.join(SCHEDULES)}")
        self.batch_size = batch_size
        # auto with the method's own optimiser: the table's rule for it (measured with that optimiser)
        if lr_scaling == "auto" and self.optimizer_name == self.defaults.optimizer:
            lr_scaling = self.defaults.lr_scaling
        self.lr_scaling = scaling_rule(lr_scaling, self.optimizer_name)
        self.total_steps = total_steps
        self.steps_per_epoch = steps_per_epoch
        self.epoch_samples = epoch_samples
        self.feature_dim = output_dim(backbone)
        # The views' layout; `use_memory_format` (called by build_method) moves weights and views.
        self.input_format = torch.contiguous_format

    @classmethod
    def default_lr(cls, backbone: nn.Module) -> float:
        """The table's rate at batch 256 for `backbone`: `cnn_lr` for a backbone without a ViT patch
        projection where the table gives one, else `lr`."""
        d = cls.defaults
        return d.cnn_lr if d.cnn_lr is not None and patch_projection(backbone) is None else d.lr

    @classmethod
    def default_warmup_epochs(
        cls, total_steps: int | None = None, steps_per_epoch: int | None = None
    ) -> float:
        """The table's warm-up, for a run of `total_steps` steps of `steps_per_epoch`: scaled by the
        run's length over `paper_epochs` when the run is shorter (the same fraction of the run as in
        the paper); the table's value when the length or `paper_epochs` is not known."""
        d = cls.defaults
        if d.paper_epochs is None or not total_steps or not steps_per_epoch:
            return d.warmup_epochs
        return d.warmup_epochs * min(1.0, total_steps / steps_per_epoch / d.paper_epochs)

    @classmethod
    def accepted_options(cls) -> set[str]:
        """Keyword arguments of the constructor, the class's own and its bases' (what build_method may pass)."""
        names: set[str] = set()
        for c in cls.__mro__:
            if "__init__" in vars(c) and issubclass(c, SSLMethod):
                params = inspect.signature(vars(c)["__init__"]).parameters.values()
                names |= {p.name for p in params if p.kind is p.KEYWORD_ONLY}
        return names

    def resolved_hyper_parameters(self) -> dict[str, Any]:
        """The values the run trains with, defaults filled in (dry run, config.yaml)."""
        return {
            "optimizer": self.optimizer_name,
            "lr_scaling": self.lr_scaling,
            "weight_decay": self.weight_decay,
            "warmup_epochs": self.warmup_epochs,
            "schedule": self.schedule,
            "memory_format": format_name(self.input_format),
        }

    # -- to implement -----------------------------------------------------------------------------
    @classmethod
    def backbone_input_size(cls, size: int) -> int:
        """Side in pixels of the images the backbone sees when views are `size` pixels (ViTs need it)."""
        return size

    def ssl_step(self, v1: torch.Tensor, v2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (loss, online features of v1 before the projector) for one batch of two views."""
        raise NotImplementedError

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return []

    # -- shared -----------------------------------------------------------------------------------
    @torch.no_grad()
    def momentum_update(self, m: float) -> None:
        """EMA update `momentum = m * momentum + (1 - m) * online` for every declared pair."""
        for online, target in self.momentum_pairs():
            po = [p.detach() for p in online.parameters()]
            pt = [p.detach() for p in target.parameters()]
            torch._foreach_mul_(pt, m)
            torch._foreach_add_(pt, po, alpha=1.0 - m)
            # BatchNorm running statistics of the momentum encoder are its own (as in the reference
            # code, where buffers are never copied after initialisation).

    def on_after_batch_transfer(self, batch: dict[str, Any], dataloader_idx: int) -> dict[str, Any]:
        # Augment on the device, after transfer: GPU work instead of CPU workers (torchgeo's pattern).
        if self.trainer is not None and not self.trainer.training:
            return batch
        x = self.normalize(batch["image"])
        with torch.no_grad():
            v1, v2 = self.views(x)
        # In the weights' layout (`use_memory_format`), so that no convolution mixes the two.
        v1 = v1.contiguous(memory_format=self.input_format)
        v2 = v2.contiguous(memory_format=self.input_format)
        return {**batch, "v1": v1, "v2": v2}

    def use_memory_format(self, choice: str) -> torch.memory_format:
        """Keep every 4-D weight (backbone, momentum encoder, heads) and the views in the layout
        `choice` resolves to for this backbone (`models.backbone.memory_format`). In place: the
        Parameters stay the same objects, so an optimiser built before keeps them."""
        fmt = memory_format(self.backbone, choice)
        self.to(memory_format=fmt)
        self.input_format = fmt
        return fmt

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss, feats = self.ssl_step(batch["v1"], batch["v2"])
        # Collapse monitor: per-dimension std of L2-normalised features; ~1/sqrt(D) when healthy, -> 0 when collapsed.
        with torch.no_grad():
            fstd = torch.nn.functional.normalize(feats.float(), dim=1).std(
                dim=0
            ).mean() * math.sqrt(feats.shape[1])
        # Logged as tensors, not on the progress bar: no host sync in the step (Lightning reads them
        # at logging time, every --log-every steps; the bar reads the loss itself, once a second).
        self.log("train/loss", loss, on_step=True, on_epoch=True, batch_size=feats.shape[0])
        self.log("train/feature_std", fstd, on_step=True, on_epoch=False, batch_size=feats.shape[0])
        return loss

    def scaled_lr(self, world: int | None = None) -> float:
        """The peak learning rate after batch scaling (`lr_effective` in config.yaml and metrics.json)."""
        if world is None:
            world = self._trainer.world_size if self._trainer is not None else 1
        return scale_lr(self.base_lr, self.batch_size * world, self.optimizer_name, self.lr_scaling)

    def param_groups(self) -> list[dict[str, Any]]:
        """No weight decay on biases and normalisation parameters (timm's and moco-v3 LARS's rule; note
        moco-v3's AdamW decays every parameter)."""
        decay, no_decay = [], []
        for n, p in self.named_parameters():
            if not p.requires_grad:
                continue
            (no_decay if p.ndim <= 1 or n.endswith(".bias") else decay).append(p)
        return [
            {"params": decay, "weight_decay": self.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]

    def configure_optimizers(self):
        lr = self.scaled_lr()
        precision = str(self._trainer.precision) if self._trainer is not None else "32-true"
        opt = build_optimizer(self.optimizer_name, self.param_groups(), lr, precision)
        # The schedule spans the run's real length (given by the training assembly, which knows --max-steps).
        total = self.total_steps or max(1, int(self.trainer.estimated_stepping_batches))
        steps_per_epoch = self.steps_per_epoch or max(
            1, total // max(1, self.trainer.max_epochs or 1)
        )
        warmup = int(self.warmup_epochs * steps_per_epoch)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: lr_multiplier(s, total, warmup, self.schedule)
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
