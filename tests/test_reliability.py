"""Kills, resumes, NaN batches and unsafe files: nothing lost, nothing poisoned, nothing executed."""

import json
import os
import pickle
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
import torch
from safetensors.torch import load_file

from rs_ssl import cli
from rs_ssl.callbacks import NonFiniteGuard
from rs_ssl.checkpoints import newest_valid_checkpoint
from rs_ssl.errors import RsSslError
from rs_ssl.runs import read_loss_history

HERE = Path(__file__).resolve().parent
# 3 epochs x 4 steps, a checkpoint after every step; MoCo v2 so that queue and momentum encoder
# must be restored too.
ARGS = [
    "pretrain",
    "--bands",
    "13",
    "--size",
    "32",
    "--batch-size",
    "8",
    "--samples-per-epoch",
    "32",
    "--epochs",
    "3",
    "--workers",
    "0",
    "--method",
    "mocov2",
    "--ckpt-every",
    "1",
    "--seed",
    "7",
]
TOTAL = 12


def _run(out: Path, kill_at: int = -1, resume: bool = False) -> subprocess.CompletedProcess:
    argv = [*ARGS, "--out", str(out)] + (["--resume"] if resume else [])
    return subprocess.run(
        [sys.executable, str(HERE / "_pretrain_kill_at.py"), str(kill_at), *argv],
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[list[int], list[float]]:
    out = tmp_path_factory.mktemp("ref") / "run"
    p = _run(out)
    assert p.returncode == 0, p.stderr[-3000:]
    return read_loss_history(out)


def test_kill_then_resume_matches_the_uninterrupted_run_step_for_step(tmp_path, reference):
    out = tmp_path / "run"
    p = _run(
        out, kill_at=6
    )  # killed mid-epoch 1 (steps 4..7), before step 6's checkpoint is written
    assert p.returncode == -signal.SIGKILL
    p = _run(out, resume=True)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "resuming from" in p.stdout
    m = json.loads((out / "metrics.json").read_text())
    assert m["steps"] == TOTAL
    steps, losses = read_loss_history(out)
    ref_steps, ref_losses = reference
    assert steps == ref_steps == list(range(TOTAL))  # no gap, no repeat
    assert losses == pytest.approx(ref_losses, rel=1e-4, abs=1e-5)


@pytest.mark.slow
def test_random_external_kills_lose_no_steps(tmp_path, reference):
    """kill -9 from outside at random moments, three times, resuming each time."""
    out = tmp_path / "run"
    rng = random.Random(1234)
    kills = 0
    for attempt in range(3):
        argv = [*ARGS, "--out", str(out)] + (["--resume"] if attempt else [])
        proc = subprocess.Popen(
            [sys.executable, "-m", "rs_ssl", *argv],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        target = rng.randint(
            2 + 3 * attempt, 3 + 3 * attempt
        )  # wait for this many step checkpoints
        deadline = time.time() + 300
        ckpt = out / "checkpoints" / "last.ckpt"
        while time.time() < deadline and proc.poll() is None:
            c = newest_valid_checkpoint(out / "checkpoints") if ckpt.exists() else None
            if c is not None and torch.load(c, weights_only=True)["global_step"] >= target:
                break
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 0.3))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            kills += 1
        assert newest_valid_checkpoint(out / "checkpoints") is not None
    p = subprocess.run(
        [sys.executable, "-m", "rs_ssl", *ARGS, "--out", str(out), "--resume"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    assert kills >= 2
    assert json.loads((out / "metrics.json").read_text())["steps"] == TOTAL
    steps, losses = read_loss_history(out)
    assert steps == list(range(TOTAL))
    assert losses == pytest.approx(reference[1], rel=1e-4, abs=1e-5)


def _nan_at(monkeypatch, steps: set[int] | None):
    from rs_ssl.methods.simclr import SimCLR

    orig = SimCLR.ssl_step

    def poisoned(self, v1, v2):
        loss, feats = orig(self, v1, v2)
        if steps is None or self.trainer.global_step in steps:
            loss = loss * float("nan")
        return loss, feats

    monkeypatch.setattr(SimCLR, "ssl_step", poisoned)


def test_a_nan_batch_is_skipped_and_counted(tmp_path, monkeypatch):
    _nan_at(monkeypatch, {2})
    out = tmp_path / "run"
    assert (
        cli.main(
            [
                "pretrain",
                "--method",
                "simclr",
                "--size",
                "32",
                "--batch-size",
                "8",
                "--samples-per-epoch",
                "32",
                "--epochs",
                "1",
                "--workers",
                "0",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    m = json.loads((out / "metrics.json").read_text())
    assert m["nonfinite_steps_skipped"] == 1 and m["steps"] == 4
    assert all(
        torch.isfinite(t).all() for t in load_file(str(out / "backbone.safetensors")).values()
    )


def test_nan_every_step_stops_with_a_message_and_weights_stay_finite(tmp_path, monkeypatch, capsys):
    _nan_at(monkeypatch, None)
    out = tmp_path / "run"
    rc = cli.main(
        [
            "pretrain",
            "--method",
            "simclr",
            "--size",
            "32",
            "--batch-size",
            "8",
            "--samples-per-epoch",
            "64",
            "--epochs",
            "1",
            "--workers",
            "0",
            "--nonfinite-patience",
            "3",
            "--ckpt-every",
            "1",
            "--out",
            str(out),
        ]
    )
    assert rc == 1
    assert "3 optimiser steps in a row had NaN/Inf" in capsys.readouterr().err


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch /tmp/rs_ssl_pwned",))


def test_pickle_with_code_is_refused(tmp_path, capsys):
    evil = tmp_path / "weights.pth"
    with open(evil, "wb") as f:
        pickle.dump({"conv1.weight": _Evil()}, f)
    if os.path.exists("/tmp/rs_ssl_pwned"):
        os.unlink("/tmp/rs_ssl_pwned")
    rc = cli.main(
        [
            "pretrain",
            "--init",
            str(evil),
            "--max-steps",
            "1",
            "--out",
            str(tmp_path / "r"),
            "--workers",
            "0",
        ]
    )
    assert rc == 1
    err = capsys.readouterr().err
    assert "refused to load" in err and str(evil) in err
    assert not os.path.exists("/tmp/rs_ssl_pwned")


def test_resume_skips_a_corrupt_or_unsafe_newest_checkpoint(tmp_path):
    out = tmp_path / "run"
    assert cli.main([*ARGS[:-4], "--seed", "7", "--epochs", "1", "--out", str(out)]) == 0
    good = newest_valid_checkpoint(out / "checkpoints")
    time.sleep(0.05)
    bad = out / "checkpoints" / "zz-truncated.ckpt"
    bad.write_bytes(good.read_bytes()[:1000])
    evil = out / "checkpoints" / "zz-evil.ckpt"
    with open(evil, "wb") as f:
        pickle.dump({"state_dict": _Evil(), "loops": {}}, f)
    assert newest_valid_checkpoint(out / "checkpoints") == good
    assert not os.path.exists("/tmp/rs_ssl_pwned")


@pytest.mark.parametrize(
    ("options", "files", "written"),
    [
        ([], ["last.ckpt"], ["last.ckpt"] * 2),
        (
            ["--keep-checkpoints"],
            ["epoch000.ckpt", "epoch001.ckpt", "last.ckpt"],
            ["epoch000.ckpt", "last.ckpt", "epoch001.ckpt", "last.ckpt"],
        ),
        # step 6 comes after the first epoch's last.ckpt: the step callback overwrites it, no -v1
        (
            ["--ckpt-every", "6"],
            ["last.ckpt", "step0000006.ckpt"],
            ["last.ckpt", "step0000006.ckpt", "last.ckpt", "last.ckpt"],
        ),
    ],
)
def test_each_epoch_end_writes_last_ckpt_once_and_epoch_files_only_on_request(
    tmp_path, monkeypatch, options, files, written
):
    """One checkpoint write per epoch by default (it was two, epochNNN.ckpt and the same bytes again
    as last.ckpt); --keep-checkpoints adds each epoch's own file, --ckpt-every N step files. The
    run resumes from last.ckpt."""
    from rs_ssl.checkpoints import AtomicCheckpointIO

    writes = []
    save = AtomicCheckpointIO.save_checkpoint

    def counting(self, checkpoint, path, storage_options=None):
        writes.append(Path(path).name)
        return save(self, checkpoint, path, storage_options)

    monkeypatch.setattr(AtomicCheckpointIO, "save_checkpoint", counting)
    out = tmp_path / "run"
    argv = [*ARGS[:-4], "--epochs", "2", "--out", str(out), *options]
    assert cli.main(argv) == 0
    assert sorted(p.name for p in (out / "checkpoints").glob("*.ckpt")) == files
    assert writes == written
    assert newest_valid_checkpoint(out / "checkpoints") == out / "checkpoints" / "last.ckpt"
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 8  # 2 epochs of 4 steps: written at the last epoch end


class _Linear(L.LightningModule):
    """A linear model trained with `build_optimizer` at a constant rate; NaN gradients on chosen batches."""

    def __init__(self, kind: str, nan_batches: set[int], fused: bool = True):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Linear(6, 3)
        self.kind, self.nan_batches, self.fused = kind, nan_batches, fused

    def training_step(self, batch, idx):
        x = batch[0]
        loss = self.net(x).pow(2).mean()
        return loss * float("nan") if idx in self.nan_batches else loss

    def configure_optimizers(self):
        from rs_ssl.methods.base import build_optimizer

        groups = [
            {"params": [self.net.weight], "weight_decay": 0.01},
            {"params": [self.net.bias], "weight_decay": 0.0},
        ]
        return build_optimizer(self.kind, groups, lr=0.05, fused=self.fused)


def _train(
    kind: str,
    xs: torch.Tensor,
    nan_batches: set[int],
    guard: NonFiniteGuard,
    fused: bool = True,
):
    from torch.utils.data import DataLoader, TensorDataset

    module = _Linear(kind, nan_batches, fused)
    trainer = L.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[guard],
    )
    trainer.fit(module, DataLoader(TensorDataset(xs), batch_size=4))
    return module, trainer.optimizers[0]


@pytest.mark.parametrize("kind", ["sgd", "adam", "adamw", "lars"])
def test_a_skipped_step_leaves_no_trace_and_needs_no_sync(kind):
    """Run A has NaN gradients on batch 2; run B never sees batch 2. The guard skips on the device
    (the optimiser's `found_inf`), so weights and optimiser state (momenta, Adam's step counts) end
    equal, and the skip is counted when the counters are read at the end."""
    xs = torch.randn(20, 6, generator=torch.Generator().manual_seed(1))
    guard = NonFiniteGuard(patience=3)
    a, opt_a = _train(kind, xs, {2}, guard)
    b, opt_b = _train(kind, torch.cat([xs[:8], xs[12:]]), set(), NonFiniteGuard(patience=3))
    assert (
        guard.skipped == 1 and guard._dev is not None
    )  # the device path ran, not the host fallback
    torch.testing.assert_close(a.net.weight, b.net.weight, rtol=0, atol=0)
    torch.testing.assert_close(a.net.bias, b.net.bias, rtol=0, atol=0)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        for key, va in opt_a.state[pa].items():
            torch.testing.assert_close(
                va, opt_b.state[pb][key], rtol=0, atol=0, msg=f"{kind} state {key}"
            )


@pytest.mark.parametrize("kind", ["sgd", "adam", "adamw", "lars"])
def test_without_fused_kernels_the_host_fallback_also_leaves_no_trace(kind):
    """Without fused kernels (fp16, or `build_optimizer(fused=False)`) the guard reads the flag on
    the host and drops the bad step's gradients, with the same outcome."""
    xs = torch.randn(20, 6, generator=torch.Generator().manual_seed(1))
    guard = NonFiniteGuard(patience=3)
    a, opt_a = _train(kind, xs, {2}, guard, fused=False)
    b, opt_b = _train(kind, torch.cat([xs[:8], xs[12:]]), set(), NonFiniteGuard(patience=3), False)
    assert not opt_a.defaults.get("fused")  # the for-loop kernel
    assert guard.skipped == 1 and guard._dev is None  # the host path ran
    torch.testing.assert_close(a.net.weight, b.net.weight, rtol=0, atol=0)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        for key, va in opt_a.state[pa].items():
            torch.testing.assert_close(
                va, opt_b.state[pb][key], rtol=0, atol=0, msg=f"{kind} state {key}"
            )


def test_a_run_of_bad_steps_stops_at_the_next_check():
    xs = torch.randn(40, 6, generator=torch.Generator().manual_seed(1))
    guard = NonFiniteGuard(patience=3, check_every=4)
    with pytest.raises(
        RsSslError, match=r"3 optimiser steps in a row had NaN/Inf gradients \(longest run 3"
    ):
        _train("adamw", xs, {1, 2, 3}, guard)
    assert guard.skipped == 3
    # Two bad steps, a good one, two bad: never 3 in a row, so the run goes on.
    ok = NonFiniteGuard(patience=3, check_every=4)
    _train("adamw", xs, {1, 2, 4, 5}, ok)
    assert ok.skipped == 4
