"""`--schedule`: the learning rate after the warm-up, cosine (the methods' default) or constant."""

from __future__ import annotations

import math

import pytest
import yaml

from rs_ssl import cli
from rs_ssl.methods import SimCLR
from rs_ssl.methods.base import lr_multiplier
from tests.test_fidelity import make


def test_constant_holds_the_rate_after_the_same_warm_up():
    total, warmup = 40, 8
    for s in range(total):
        cos = lr_multiplier(s, total, warmup, "cosine")
        const = lr_multiplier(s, total, warmup, "constant")
        if s < warmup:
            assert const == cos == pytest.approx(s / warmup)
        else:
            assert const == 1.0
            assert cos == pytest.approx(
                0.5 * (1 + math.cos(math.pi * (s - warmup) / (total - warmup)))
            )


def rates(method, steps: int) -> list[float]:
    """The learning rate of each of the first `steps` steps of the method's own scheduler."""
    conf = method.configure_optimizers()
    opt, sched = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    lrs = []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


@pytest.mark.parametrize("schedule, last", [("cosine", None), ("constant", 1.0)])
def test_the_methods_scheduler_follows_the_schedule(schedule, last):
    m = make(SimCLR, lr=0.1, lr_scaling="none", schedule=schedule)
    m.total_steps, m.steps_per_epoch = 20, 5
    lrs = rates(m, 20)
    assert lrs[0] == pytest.approx(0.1)  # SimCLR has no warm-up by default
    if last is None:
        assert lrs[-1] < 0.01 and lrs == sorted(lrs, reverse=True)
    else:
        assert lrs == [pytest.approx(0.1 * last)] * 20


def test_schedule_option_reaches_the_run_config(tmp_path):
    out = tmp_path / "dry"
    assert cli.main(["pretrain", "--schedule", "constant", "--dry-run", "--out", str(out)]) == 0
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["schedule"] == "constant"
    with pytest.raises(SystemExit) as e:  # argparse's choices
        cli.main(["pretrain", "--schedule", "linear", "--dry-run", "--out", str(out)])
    assert e.value.code == 2


def test_mocov3_warm_up_is_the_papers_fraction_of_a_shorter_run():
    """40 warm-up epochs of moco-v3's 300: an 8-epoch run warms up 40 x 8/300 epochs, a run of 300
    or more the full 40; a --warmup-epochs given is kept whatever the length."""
    from rs_ssl.methods import MoCoV3

    per_epoch = 45
    for epochs, want in ((8, 40 * 8 / 300), (300, 40.0), (600, 40.0)):
        m = make(MoCoV3, mlp_dim=16, total_steps=epochs * per_epoch, steps_per_epoch=per_epoch)
        assert m.warmup_epochs == pytest.approx(want)
    assert make(MoCoV3, mlp_dim=16).warmup_epochs == 40  # run length unknown: the table's value
    m = make(MoCoV3, mlp_dim=16, warmup_epochs=40, total_steps=8 * per_epoch, steps_per_epoch=45)
    assert m.warmup_epochs == 40
    # the scheduler then reaches the full rate after int(1.067 x 45) = 48 steps
    m = make(MoCoV3, mlp_dim=16, lr=0.1, lr_scaling="none", total_steps=360, steps_per_epoch=45)
    lrs = rates(m, 50)
    assert lrs[24] == pytest.approx(0.1 * 24 / 48) and lrs[48] == pytest.approx(0.1, rel=1e-3)


def test_simclr_warm_up_does_not_scale():
    m = make(SimCLR, warmup_epochs=2, total_steps=10, steps_per_epoch=5)
    assert (
        m.warmup_epochs == 2 and make(SimCLR, total_steps=10, steps_per_epoch=5).warmup_epochs == 0
    )
