"""Atomic checkpoints and choosing the newest valid one for --resume."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from rs_ssl.runs import atomic_write_bytes


class AtomicCheckpointIO(TorchCheckpointIO):
    """Serialise to memory, then write-fsync-rename: a kill leaves the old or the new file, never a torn one."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        buf = io.BytesIO()
        torch.save(checkpoint, buf)
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(p, buf.getvalue())


def is_valid_checkpoint(path: Path) -> bool:
    """True when the file loads as a Lightning checkpoint with model weights and loop state."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - any failure to load means "not valid"
        return False
    return isinstance(ckpt, dict) and "state_dict" in ckpt and "loops" in ckpt


def newest_valid_checkpoint(folder: Path) -> Path | None:
    """The most recently written checkpoint in `folder` that loads; None if there is none."""
    cands = sorted(Path(folder).glob("*.ckpt"), key=lambda p: p.stat().st_mtime, reverse=True)
    for c in cands:
        if is_valid_checkpoint(c):
            return c
    return None


def _callback_base():
    from lightning.pytorch.callbacks import Callback

    return Callback


class RNGState(_callback_base()):
    """Saves and restores the Python, NumPy and torch RNG states with every checkpoint.

    Device-side augmentations draw from the global torch generator; with the state restored, a
    resumed run draws the same views as an uninterrupted one (Lightning does not save RNG state).
    """

    def state_dict(self) -> dict[str, Any]:
        import random

        import numpy as np

        state: dict[str, Any] = {
            "python": _tensorise(random.getstate()),
            "numpy": _tensorise(np.random.get_state()),
            "torch": torch.get_rng_state(),
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        import random

        import numpy as np

        random.setstate(_untensorise_python(state["python"]))
        np.random.set_state(_untensorise_numpy(state["numpy"]))
        torch.set_rng_state(state["torch"])
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])


# RNG states hold tuples of ints and arrays; store them as tensors so that checkpoints still load
# with torch.load(weights_only=True).
def _tensorise(state: tuple) -> dict[str, Any]:
    import numpy as np

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
    import numpy as np

    return (d["0"], d["1"].numpy().astype(np.uint32), int(d["2"]), int(d["3"]), float(d["4"]))


class NonFiniteGuard(_callback_base()):
    """Skips any optimiser step whose gradients hold NaN/Inf, counts it, and stops after `patience` in a row.

    The check runs after backward and before the update (inside Lightning's optimiser closure):
    all gradients are set to None, so the optimiser leaves every parameter and its momentum
    untouched. Costs one scalar host sync per step.
    """

    def __init__(self, patience: int = 10):
        self.patience = patience
        self.skipped = 0
        self.in_a_row = 0

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        if not grads:
            return
        finite = bool(torch.stack(torch._foreach_norm(grads)).isfinite().all())
        if finite:
            self.in_a_row = 0
            return
        for g in optimizer.param_groups:
            for p in g["params"]:
                p.grad = None
        self.skipped += 1
        self.in_a_row += 1
        pl_module.log("train/nonfinite_skipped", float(self.skipped), on_step=True, on_epoch=False)
        if self.in_a_row >= self.patience:
            from rs_ssl.errors import RsSslError

            raise RsSslError(
                f"stopped at step {trainer.global_step}: {self.in_a_row} optimiser steps in a row had NaN/Inf "
                f"gradients ({self.skipped} skipped in all); the weights were not updated by any of them. "
                "Lower --lr, check the input data (rs-ssl manifest --check), or resume from the last checkpoint"
            )

    def state_dict(self) -> dict[str, Any]:
        return {"skipped": self.skipped}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.skipped = int(state.get("skipped", 0))


class LossHistory(_callback_base()):
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
        return {"steps": torch.tensor(self.steps, dtype=torch.int64), "values": torch.tensor(self.values, dtype=torch.float64)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps = state["steps"].tolist()
        self.values = state["values"].tolist()
        self._pending = []
