"""Two CPU processes of DDP (gloo): SimCLR's gathered negatives give the global-batch loss and gradients.

In float64: the two sides sum in different orders (per-rank losses, all-reduced gradients), so the
tolerances follow from double rounding and hold on any machine."""

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from rs_ssl.losses import nt_xent

N_PER_RANK, DIM_IN, DIM_OUT, T = 4, 6, 5, 0.1


def _data():
    g = torch.Generator().manual_seed(0)
    model = nn.Linear(DIM_IN, DIM_OUT).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
    x1 = torch.randn(2 * N_PER_RANK, DIM_IN, generator=g, dtype=torch.float64)
    x2 = torch.randn(2 * N_PER_RANK, DIM_IN, generator=g, dtype=torch.float64)
    return model, x1, x2


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        from rs_ssl.losses import nt_xent_all_ranks  # what SimCLR.ssl_step calls

        model, x1, x2 = _data()
        ddp = nn.parallel.DistributedDataParallel(model)
        sl = slice(rank * N_PER_RANK, (rank + 1) * N_PER_RANK)
        z1, z2 = ddp(x1[sl]), ddp(x2[sl])
        loss = nt_xent_all_ranks(z1, z2, T)
        loss.backward()  # DDP averages the gradients over the two ranks
        torch.save(
            {"loss": loss.detach(), "grads": [p.grad for p in model.parameters()]},
            f"{out_dir}/rank{rank}.pt",
        )
        # Neither rank tears gloo down while its peer still talks to it: without this barrier one
        # CI run (of many) aborted in teardown ("terminate called without an active exception").
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_simclr_ddp_gradients_equal_single_process_global_batch(tmp_path):
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in range(2))
    model, x1, x2 = _data()
    loss = nt_xent(model(x1), model(x2), T)  # one process, all 8 images
    loss.backward()
    torch.testing.assert_close((r0["loss"] + r1["loss"]) / 2, loss.detach(), rtol=1e-12, atol=1e-14)
    for g0, g1, g in zip(
        r0["grads"], r1["grads"], [p.grad for p in model.parameters()], strict=True
    ):
        assert g0.dtype == torch.float64
        torch.testing.assert_close(
            g0, g1, rtol=0, atol=0
        )  # DDP synchronised: the same all-reduced values
        torch.testing.assert_close(g0, g, rtol=1e-10, atol=1e-13)
