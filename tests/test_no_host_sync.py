"""The pretraining step makes no host sync: nothing in it waits for the device.

On a GPU every read of a device value (`.item()`, `bool(t)`, `nonzero`, Lightning turning logged
tensors into numbers) and every `torch.tensor(..., device=cuda)` stalls the step until the GPU
has caught up. Both are visible on the CPU too (with gated augmentations switched to their GPU
path): reads as `aten._local_scalar_dense` (and the other
ops whose output size depends on data) under a dispatch mode, tensor construction on a device as
a `device=` argument. A run of 6 steps must make exactly as many as a run of 2 (set-up, the
first step's caches and the end of the run are the same in both).
"""

from __future__ import annotations

import collections
import traceback
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from rs_ssl import pretrain
from rs_ssl.augment import pixel
from rs_ssl.callbacks import LossProgressBar
from rs_ssl.config import PretrainConfig

# Ops that copy a device value to the host, or whose output shape depends on device data.
HOST_READS = {
    "_local_scalar_dense",
    "nonzero",
    "masked_select",
    "unique",
    "_unique2",
    "unique_dim",
    "unique_consecutive",
    "is_nonzero",
    "equal",
    "repeat_interleave",
}


def _call_site() -> str:
    frames = [
        f
        for f in traceback.extract_stack()[:-3]
        if "/rs_ssl/" in f.filename or "lightning" in f.filename
    ]
    return " <- ".join(f"{f.filename.rsplit('/', 2)[-1]}:{f.lineno}" for f in frames[-3:][::-1])


class _HostReads(TorchDispatchMode):
    def __init__(self, where: collections.Counter):
        super().__init__()
        self.where = where

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func._overloadpacket.__name__
        if name in HOST_READS:
            self.where[f"{name} at {_call_site()}"] += 1
        return func(*args, **(kwargs or {}))


def _syncs(method: str, backbone: str, steps: int, monkeypatch, out: Path) -> collections.Counter:
    where: collections.Counter = collections.Counter()
    real_tensor = torch.tensor

    def tensor(*args, **kwargs):
        if kwargs.get("device") is not None:
            where[f"torch.tensor(device=...) at {_call_site()}"] += 1
        return real_tensor(*args, **kwargs)

    monkeypatch.setattr(torch, "tensor", tensor)
    # Gated augmentations as they run on a GPU (on the CPU they read the gate: free there).
    monkeypatch.setattr(pixel, "gate_on_host", lambda device: False)
    cfg = PretrainConfig(
        out=str(out),
        method=method,
        backbone=backbone,
        max_steps=steps,
        batch_size=8,
        size=32,
        samples_per_epoch=64,
        workers=0,
    )
    with _HostReads(where):
        pretrain.run(cfg)
    monkeypatch.setattr(torch, "tensor", real_tensor)
    return where


@pytest.mark.parametrize(
    "method,backbone",
    [
        ("simclr", "resnet18"),
        ("mocov2", "resnet18"),
        ("mocov3", "vit_tiny_patch16_224"),
        ("rpl", "resnet18"),
    ],
)
def test_a_training_step_makes_no_host_sync(method, backbone, monkeypatch, tmp_path):
    # The bar reads the loss once a second by design; here only once, so that timing cannot matter.
    monkeypatch.setattr(LossProgressBar, "every_s", 1e9)
    short = _syncs(method, backbone, 2, monkeypatch, tmp_path / "short")
    long = _syncs(method, backbone, 6, monkeypatch, tmp_path / "long")
    per_step = {
        k: (long[k] - short[k]) / 4 for k in long.keys() | short.keys() if long[k] != short[k]
    }
    assert not per_step, f"{method}: host syncs per step: {per_step}"


def test_the_counter_sees_a_host_read(monkeypatch, tmp_path):
    """The instrument itself: an `.item()` and a `device=` construction in the step are caught."""
    from rs_ssl.methods.simclr import SimCLR

    orig = SimCLR.ssl_step

    def reading(self, v1, v2):
        loss, feats = orig(self, v1, v2)
        if loss.item() > 1e9:  # a host read, as a careless NaN check would do
            raise AssertionError
        torch.tensor([1.0], device=loss.device)
        return loss, feats

    monkeypatch.setattr(LossProgressBar, "every_s", 1e9)
    monkeypatch.setattr(SimCLR, "ssl_step", reading)
    short = _syncs("simclr", "resnet18", 2, monkeypatch, tmp_path / "short")
    long = _syncs("simclr", "resnet18", 6, monkeypatch, tmp_path / "long")
    grew = [k for k in long if long[k] > short[k]]
    assert any(k.startswith("_local_scalar_dense") for k in grew)
    assert any(k.startswith("torch.tensor(device") for k in grew)
