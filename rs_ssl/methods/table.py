"""The method registry: each `--method` name, where its class lives and its paper defaults.

Torch-free, so that `rs_ssl.config` reads its `--method` choices and the defaults in `--help` from
here without importing a network. Every default value of a method is written once, in its entry
below; the class (imported only when a run builds it) reads them back as `cls.defaults`.
A new method is one file (its `SSLMethod` subclass), one entry here and its tests.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, fields
from typing import Any

from rs_ssl.errors import UsageError

OPTIMIZERS = ("sgd", "adamw", "adam", "lars")
LR_SCALINGS = ("auto", "linear", "sqrt", "none")
# Learning-rate schedules after the warm-up: per-step half cosine to 0, or the rate held.
SCHEDULES = ("cosine", "constant")


@dataclass(frozen=True)
class MethodDefaults:
    """A method's paper hyper-parameters, used where the user gives none.

    None: the method has no such hyper-parameter (RPL has no temperature, SimCLR no queue).
    """

    lr: float  # at batch size 256 (at every batch size with lr_scaling "none")
    weight_decay: float
    preset: str  # view preset (`--augs`)
    optimizer: str  # one of OPTIMIZERS
    # lr at batch size 256 for backbones without a ViT patch projection (ResNets and other CNNs),
    # where the paper's rate was written for ViTs; None: `lr` for every backbone.
    cnn_lr: float | None = None
    warmup_epochs: float = 0.0
    # The run length (epochs) `warmup_epochs` was written for: a shorter run warms up for the same
    # fraction of itself (moco-v3: 40 of 300 epochs; an 8-epoch run, 1.07), a longer one for
    # `warmup_epochs`. None: `warmup_epochs` whatever the run's length.
    paper_epochs: int | None = None
    schedule: str = "cosine"  # one of SCHEDULES (after the warm-up)
    # What `--lr-scaling auto` means for this method with its own optimiser (LR_SCALINGS; "auto":
    # linear for SGD/LARS, square root for Adam/AdamW, see `scale_lr`).
    lr_scaling: str = "auto"
    lars_lr: float | None = None  # lr at batch size 256 when the user picks LARS and gives no --lr
    gradient_clip: float | None = 3.0  # gradient-norm clip of pretraining; None: no clipping
    temperature: float | None = None
    proj_dim: int | None = None  # output of the projection head
    momentum: float | None = None  # key encoder momentum (its start, for a schedule)
    queue_size: int | None = None  # negatives kept in a queue
    mlp_dim: int | None = None  # hidden width of the heads
    # Images per optimiser step and device where the user gives no --batch-size: what trained best
    # at a fixed number of epochs on a 2-core CPU (issue 15), not the paper's (256 to 4096).
    batch_size: int = 32


@dataclass(frozen=True)
class MethodSpec:
    """One registered method: its class, as "module:Class" (imported on use), and its defaults."""

    target: str
    defaults: MethodDefaults

    def load(self) -> type:
        module, cls = self.target.split(":")
        return getattr(importlib.import_module(module), cls)


# The registry: `--method` name -> spec. A test may add an entry (monkeypatch.setitem) to register a
# toy method: the CLI choices, build_method and the registry-wide tests read this dict when they run.
METHOD_TABLE: dict[str, MethodSpec] = {
    # moco main_moco.py: SGD lr 0.03 at batch 256, wd 1e-4, --moco-t 0.2, --moco-m 0.999;
    # queue 16384 (65536 in the paper; clamped to half an epoch's samples, see MoCoV2).
    # Rate: 0.12 at every batch size (lr_scaling none), not 0.03 x batch/256. At the default batch 32
    # the linear rule gives 3.75e-3; an 8-epoch ResNet-18 AID run chose, on the validation part,
    # among 3.75e-3, 0.0106, 0.03, 0.06 and 0.12: 0.340, 0.320, 0.377, 0.360, 0.390 (issue 15,
    # benchmarks/RESULTS.md). Momentum 0.99 instead of 0.999 changed nothing (0.338, 0.377).
    # The paper's rate: recipes/mocov2-resnext50.yaml, or --lr 0.03 --lr-scaling linear.
    "mocov2": MethodSpec(
        "rs_ssl.methods.mocov2:MoCoV2",
        MethodDefaults(
            lr=0.12,
            weight_decay=1e-4,
            preset="mocov2",
            optimizer="sgd",
            lr_scaling="none",
            temperature=0.2,
            proj_dim=128,
            momentum=0.999,
            queue_size=16384,
        ),
    ),
    # moco-v3 ViT settings: AdamW lr 1.5e-4 at batch 256, wd 0.1, 40 warm-up epochs of 300, T 0.2,
    # momentum 0.99 -> 1, heads 4096 -> 256. No gradient clipping: the reference has none. Runs
    # shorter than 300 epochs warm up for 40/300 of their length (paper_epochs): the full 40 epochs
    # left an 8-epoch AID run at a fifth of the peak rate throughout (benchmarks/RESULTS.md).
    # CNN backbones: AdamW at 1e-2 (square-root scaled: 3.5e-3 at batch 32), chosen on the
    # validation part of an 8-epoch ResNet-18 AID run over 1.5e-4, 1e-3, 1e-2 and 3e-2 (0.338,
    # 0.382, 0.432, 0.408) and kept over three training seeds (0.442 +- 0.009; issue 15). The ViT
    # rate is 70x too low for a ResNet here; moco-v3's own ResNet recipe is LARS 0.6, wd 1e-6, T 1.0.
    "mocov3": MethodSpec(
        "rs_ssl.methods.mocov3:MoCoV3",
        MethodDefaults(
            lr=1.5e-4,
            cnn_lr=1e-2,
            weight_decay=0.1,
            preset="mocov3",
            optimizer="adamw",
            warmup_epochs=40,
            paper_epochs=300,
            gradient_clip=None,
            temperature=0.2,
            proj_dim=256,
            momentum=0.99,
            mlp_dim=4096,
        ),
    ),
    # Adam 1e-3 at batch 256, square-root scaled (`scale_lr`): 3.5e-4 at batch 32, where these were
    # measured (the earlier default, 5e-4 "at 256" linearly scaled, trained at 6.25e-5; the
    # SimCLR-S2 study it was attributed to trains with SGD, see recipes/simclr-s2-bigearthnet.yaml).
    # Views: the `light` preset. Together (not measured apart) the two changes raised the probe
    # accuracy of an 8-epoch 64 px AID run from 0.310 to 0.345, and the light gain on standardised
    # values (not reflectance) to 0.378, and a constant rate after it instead of the paper's cosine
    # decay to 0.425 (validation 0.407 -> 0.440; benchmarks/RESULTS.md, issue 15);
    # `--augs simclr --schedule cosine` gives the paper's views and schedule.
    # LARS: "learning rate of 4.8 (= 0.3 x BatchSize/256) and weight decay of 1e-6" (SimCLR Sec. B.6).
    # Batch 64 (5e-4 after the square-root scaling), not 32: over training seeds 0-2 of the 8-epoch
    # AID benchmark, validation 0.459 +- 0.014 against 0.437 +- 0.030 at 32 (test 0.435 against
    # 0.439) in about 0.9x the wall time; batch 128 gave 0.443 (seed 0). benchmarks/RESULTS.md.
    "simclr": MethodSpec(
        "rs_ssl.methods.simclr:SimCLR",
        MethodDefaults(
            lr=1e-3,
            batch_size=64,
            weight_decay=1e-6,
            preset="light",
            optimizer="adam",
            schedule="constant",
            lars_lr=0.3,
            temperature=0.1,
            proj_dim=128,
        ),
    ),
    # Not from the paper (Caffe SGD with its own schedule): MoCo v2's SGD setup, cosine schedule.
    "rpl": MethodSpec(
        "rs_ssl.methods.rpl:RelativePatchLocation",
        MethodDefaults(lr=0.05, weight_decay=1e-4, preset="s2", optimizer="sgd"),
    ),
}


def method_names() -> Any:
    """The registered `--method` names (a live view: a method registered later is in it)."""
    return METHOD_TABLE.keys()


def spec(name: str) -> MethodSpec:
    """The registered method `name`, or a UsageError listing the registered ones."""
    if name not in METHOD_TABLE:
        raise UsageError(f"--method {name}: unknown; available: {', '.join(METHOD_TABLE)}")
    return METHOD_TABLE[name]


def defaults_text(key: str, fmt: str = "{}") -> str:
    """ "0.2 for mocov2, mocov3; 0.1 for simclr": the methods' defaults of `key`, for `--help`."""
    if key not in {f.name for f in fields(MethodDefaults)}:
        raise KeyError(key)
    by_value: dict[Any, list[str]] = {}
    for name, s in METHOD_TABLE.items():
        v = getattr(s.defaults, key)
        if v is not None:
            by_value.setdefault(v, []).append(name)
    return "; ".join(f"{fmt.format(v)} for {', '.join(ns)}" for v, ns in by_value.items())
