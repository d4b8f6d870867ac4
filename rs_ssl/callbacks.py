"""The training callbacks of `rs-ssl pretrain` (and of `rs-ssl bench`, which times the same step).

None of them syncs with the device per step: values stay on the device and are read every N steps.
"""

from __future__ import annotations

import random
import time
from typing import Any

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, RichProgressBar

from rs_ssl.errors import RsSslError


class StopAtStep(Callback):
    """Ends training after `max_steps` optimiser steps.

    Not Lightning's `max_steps`: with it set, Lightning treats every resume as mid-epoch and
    restores the finished epoch's batch counter, which cuts the next epoch short.
    """

    def __init__(self, max_steps: int):
        self.max_steps = max_steps

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step >= self.max_steps:
            trainer.should_stop = True


class StepTimer(Callback):
    """Wall time between the ends of consecutive optimiser steps, after `warmup` steps (bench)."""

    def __init__(self, warmup: int, device: torch.device):
        self.warmup, self.device = warmup, device
        self.ends: list[float] = []

    def on_train_batch_end(self, trainer, *args) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.ends.append(time.perf_counter())

    def seconds(self) -> float:
        return self.ends[-1] - self.ends[self.warmup - 1]


class RNGState(Callback):
    """Saves and restores the Python, NumPy and torch RNG states with every checkpoint.

    Device-side augmentations draw from the global torch generator; with the state restored, a
    resumed run draws the same views as an uninterrupted one (Lightning does not save RNG state).
    """

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "python": _tensorise(random.getstate()),
            "numpy": _tensorise(np.random.get_state()),
            "torch": torch.get_rng_state(),
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        random.setstate(_untensorise_python(state["python"]))
        np.random.set_state(_untensorise_numpy(state["numpy"]))
        torch.set_rng_state(state["torch"])
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])


# RNG states hold tuples of ints and arrays; store them as tensors so that checkpoints still load
# with torch.load(weights_only=True).
def _tensorise(state: tuple) -> dict[str, Any]:
    out = {}
    for i, v in enumerate(state):
        if isinstance(v, np.ndarray):
            out[str(i)] = torch.from_numpy(v.astype(np.int64))
        elif isinstance(v, tuple):
            out[str(i)] = torch.tensor(v, dtype=torch.int64)
        else:
            out[str(i)] = v
    return out


def _untensorise_python(d: dict[str, Any]) -> tuple:
    return (d["0"], tuple(int(x) for x in d["1"].tolist()), d["2"])


def _untensorise_numpy(d: dict[str, Any]) -> tuple:
    return (d["0"], d["1"].numpy().astype(np.uint32), int(d["2"]), int(d["3"]), float(d["4"]))


class NonFiniteGuard(Callback):
    """Skips any optimiser step whose gradients hold NaN/Inf, counts it, and stops after `patience` in a row.

    The check runs after backward and before the update (inside Lightning's optimiser closure),
    and the skip happens on the device, without a host sync in the step: optimisers that take a
    `found_inf` flag (torch's fused SGD/Adam/AdamW, which `SSLMethod` builds, and `LARS`) get it
    and leave every parameter and its optimiser state untouched when it is set. The counters stay
    on the device and are read every `check_every` steps, at checkpoints and at the end, so a run
    of `patience` bad steps stops the run at the next check (the skipped steps changed nothing).
    Other optimisers, or fp16 with a GradScaler (which skips such steps itself), fall back to
    reading the flag each step and dropping the gradients.
    """

    def __init__(self, patience: int = 10, check_every: int = 50):
        self.patience, self.check_every = patience, check_every
        self.skipped = 0
        self.in_a_row = 0
        self._dev: torch.Tensor | None = (
            None  # [skipped since the last check, current run, longest run]
        )
        self._since_check = 0
        self._trainer = None

    def setup(self, trainer, pl_module, stage: str) -> None:
        self._trainer = trainer  # for the step number when a check at checkpoint time stops the run

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        opt = getattr(optimizer, "_optimizer", optimizer)  # LightningOptimizer -> torch optimiser
        grads = [p.grad for g in opt.param_groups for p in g["params"] if p.grad is not None]
        if not grads:
            return
        finite = torch.stack(torch._foreach_norm(grads)).isfinite().all()
        scaler = getattr(trainer.precision_plugin, "scaler", None)
        if not getattr(opt, "_step_supports_amp_scaling", False) or scaler is not None:
            self._host_step(pl_module, opt, bool(finite))
            return
        bad = (~finite).float()
        opt.found_inf, opt.grad_scale = bad, None
        if self._dev is None or self._dev.device != bad.device:
            self._dev = torch.zeros(3, device=bad.device)
        run = (self._dev[1] + bad) * bad
        self._dev = torch.stack([self._dev[0] + bad, run, torch.maximum(self._dev[2], run)])
        self._since_check += 1
        if self._since_check >= self.check_every:
            self.check(pl_module)

    def _host_step(self, pl_module, opt, finite: bool) -> None:
        if finite:
            self.in_a_row = 0
            return
        for g in opt.param_groups:
            for p in g["params"]:
                p.grad = None
        self.skipped += 1
        self.in_a_row += 1
        pl_module.log("train/nonfinite_skipped", float(self.skipped), on_step=True, on_epoch=False)
        if self.in_a_row >= self.patience:
            self._stop(self.in_a_row)

    def check(self, pl_module=None) -> None:
        """Read the device counters (one host sync) and stop if a run of bad steps reached `patience`.

        `pl_module`: log the count (only from a hook where step-level logging is allowed)."""
        self._since_check = 0
        if self._dev is None:
            return
        since, run, longest = (int(v) for v in self._dev.tolist())
        self._dev = torch.tensor([0.0, run, run], device=self._dev.device)
        self.skipped += since
        self.in_a_row = run
        if since and pl_module is not None:
            pl_module.log(
                "train/nonfinite_skipped", float(self.skipped), on_step=True, on_epoch=False
            )
        if longest >= self.patience:
            self._stop(longest)

    def _stop(self, longest: int) -> None:
        step = self._trainer.global_step if self._trainer is not None else "?"
        raise RsSslError(
            f"stopped by step {step}: {self.patience} optimiser steps in a row had NaN/Inf gradients (longest run "
            f"{longest}, {self.skipped} skipped in all); the weights were not updated by any of them. "
            "Lower --lr, check the input data (rs-ssl manifest --check), or resume from the last checkpoint"
        )

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.check()

    def on_train_end(self, trainer, pl_module) -> None:
        self.check()

    def state_dict(self) -> dict[str, Any]:
        self.check()
        return {"skipped": self.skipped}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.skipped = int(state.get("skipped", 0))


class LossHistory(Callback):
    """Per-step training loss, saved inside every checkpoint.

    Lightning's CSV logger flushes after the checkpoint of a step is written, so a kill in between
    would leave a gap in its log; the history travels with the checkpoint instead, so a resumed
    run's curve has neither gaps nor repeats. Values stay on the device until a checkpoint or every
    `flush_every` steps (one host sync then, none per step).
    """

    def __init__(self, flush_every: int = 256):
        self.flush_every = flush_every
        self.steps: list[int] = []
        self.values: list[float] = []
        self._pending: list[tuple[int, torch.Tensor]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is None:
            return
        self._pending.append((trainer.global_step - 1, loss.detach().float()))
        if len(self._pending) >= self.flush_every:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            vals = torch.stack([v for _, v in self._pending]).cpu().tolist()
            self.steps.extend(s for s, _ in self._pending)
            self.values.extend(vals)
            self._pending = []

    def history(self) -> tuple[list[int], list[float]]:
        self._flush()
        return list(self.steps), list(self.values)

    def state_dict(self) -> dict[str, Any]:
        self._flush()
        return {
            "steps": torch.tensor(self.steps, dtype=torch.int64),
            "values": torch.tensor(self.values, dtype=torch.float64),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps = state["steps"].tolist()
        self.values = state["values"].tolist()
        self._pending = []


class LossProgressBar(RichProgressBar):
    """Rich progress bar that shows the latest training loss, read from the device at most every `every_s` s.

    Lightning's `prog_bar=True` turns the logged tensors into numbers at every step, a host sync
    that stalls a GPU step; the shown loss is instead the loss of the newest step at the last
    read (so at most `every_s` seconds old).
    """

    every_s: float = 1.0

    def __init__(self, every_s: float | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        if every_s is not None:
            self.every_s = every_s
        self._shown: float | None = None
        self._read_at = float("-inf")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        now = time.monotonic()
        if loss is not None and now - self._read_at >= self.every_s:
            self._shown, self._read_at = float(loss.detach()), now
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def get_metrics(self, trainer, pl_module) -> dict[str, Any]:
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        if self._shown is not None:
            items["loss"] = f"{self._shown:.4f}"
        return items
