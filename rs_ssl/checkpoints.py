"""Checkpoint I/O: atomic writes, and choosing the newest valid checkpoint for --resume."""

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
