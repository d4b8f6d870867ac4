"""CPU costs inside `rs-ssl pretrain`'s step that the plain loop of `quality.py` does not pay
(issue 15): the optimiser kernel, a dataset item's file reads and the epoch-end checkpoint write.

  adam        one Adam step over ResNet-18's parameters (two groups, as `param_groups`): torch's
              for-loop, foreach and fused kernels (`build_optimizer` uses fused)
  item        `SampleDataset.read` per item of a class-folder tree, its file opened once
              (`read_once`, what the dataset does) against opened for the header and again for
              the pixels (the lazy path DataLoader workers take for inherited readers)
  checkpoint  `AtomicCheckpointIO.save_checkpoint` of ResNet-18's weights with Adam's state
  memory_format
              a training step (forward and backward over 2 x batch images, Adam) of each
              `--backbones` timm model with its weights and input contiguous (NCHW) and
              channels_last (NHWC), the two run round-robin: what `--memory-format auto` chooses from

    python benchmarks/cpu_step_costs.py --data runs/q17time/pretrain_images --out runs/cpu_costs.json
    python benchmarks/cpu_step_costs.py --sections memory_format --rounds 8
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def _median_ms(fn, rounds: int) -> float:
    fn()  # warm-up
    ts = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return round(1000 * statistics.median(ts), 2)


def _resnet18_groups():
    import timm

    torch.manual_seed(0)
    net = timm.create_model("resnet18", num_classes=0)
    params = list(net.parameters())
    for p in params:
        p.grad = torch.randn_like(p)
    groups = [
        {"params": [p for p in params if p.ndim > 1], "weight_decay": 1e-6},
        {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0},
    ]
    return net, groups


def adam_kernels(rounds: int) -> dict[str, float]:
    """Median step time of each kernel, the kernels run round-robin so that load from other
    processes hits all of them alike."""
    _, groups = _resnet18_groups()
    kinds = {"forloop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}
    opts = {k: torch.optim.Adam(groups, lr=1e-3, **kw) for k, kw in kinds.items()}
    times: dict[str, list[float]] = {k: [] for k in kinds}
    for r in range(rounds + 1):
        for k, opt in opts.items():
            t0 = time.perf_counter()
            opt.step()
            if r:  # round 0 creates the optimiser state
                times[k].append(time.perf_counter() - t0)
    return {f"adam_{k}_ms": round(1000 * statistics.median(v), 2) for k, v in times.items()}


def item_reads(data: Path, items: int) -> dict[str, float]:
    from rs_ssl.bands import resolve_bands
    from rs_ssl.data import pretrain_dataset
    from rs_ssl.data.datasets import open_record

    sel = resolve_bands("3")
    ds, _ = pretrain_dataset(str(data), "folder", sel, patch=64, samples_per_epoch=1)
    n = min(items, len(ds))

    def once():
        for i in range(n):
            ds.read(i)

    def twice():
        for i in range(n):
            r = open_record(ds.catalog, ds.records[i], sel)
            r.read()
            r.close()

    return {
        "items": n,
        "item_read_once_ms": round(_median_ms(once, 3) / n, 3),
        "item_open_twice_ms": round(_median_ms(twice, 3) / n, 3),
    }


def checkpoint_write(rounds: int) -> dict[str, float]:
    from rs_ssl.checkpoints import AtomicCheckpointIO

    net, groups = _resnet18_groups()
    opt = torch.optim.Adam(groups, lr=1e-3)
    opt.step()  # Adam's two moments per parameter, as in a run's checkpoint
    ckpt = {"state_dict": net.state_dict(), "optimizer_states": [opt.state_dict()], "loops": {}}
    io_ = AtomicCheckpointIO()
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "x.ckpt"
        ms = _median_ms(lambda: io_.save_checkpoint(ckpt, path), rounds)
        size = path.stat().st_size
    return {"checkpoint_write_ms": ms, "checkpoint_mb": round(size / 1e6, 1)}


def memory_formats(backbones: list[str], batch: int, size: int, rounds: int) -> dict[str, dict]:
    """Median training-step time per backbone in each layout, and channels_last over contiguous."""
    import timm

    out = {}
    for name in backbones:
        runs = {}
        for label, fmt in (
            ("contiguous", torch.contiguous_format),
            ("channels_last", torch.channels_last),
        ):
            torch.manual_seed(0)
            net = timm.create_model(name, num_classes=0, in_chans=3).to(memory_format=fmt)
            x = torch.randn(2 * batch, 3, size, size).contiguous(memory_format=fmt)
            runs[label] = (net, torch.optim.Adam(net.parameters(), lr=1e-3), x)
        times: dict[str, list[float]] = {k: [] for k in runs}

        def step(net, opt, x):
            loss = net(x).float().pow(2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        for r in range(rounds + 1):
            for label, (net, opt, x) in runs.items():
                t0 = time.perf_counter()
                step(net, opt, x)
                if r:  # round 0: oneDNN's kernel selection and Adam's state
                    times[label].append(time.perf_counter() - t0)
        med = {k: 1000 * statistics.median(v) for k, v in times.items()}
        out[name] = {
            "contiguous_ms": round(med["contiguous"], 1),
            "channels_last_ms": round(med["channels_last"], 1),
            "ratio": round(med["channels_last"] / med["contiguous"], 3),
        }
        print(f"[memory_format] {name}: {out[name]}", flush=True)
    return {"memory_format": {"batch": batch, "size": size, "backbones": out}}


SECTIONS = ("adam", "item", "checkpoint", "memory_format")
BACKBONES = "resnet18,resnet50,resnext50_32x4d,mobilenetv3_large_100,efficientnet_b0,convnext_tiny"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(SHARED / "aid_scenes"), help="class-folder tree to read")
    ap.add_argument("--items", type=int, default=600)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--out", default="")
    ap.add_argument("--sections", default=",".join(SECTIONS), help=f"comma list of {SECTIONS}")
    ap.add_argument("--backbones", default=BACKBONES, help="timm models of memory_format")
    ap.add_argument("--batch", type=int, default=32, help="memory_format: images per view")
    ap.add_argument("--size", type=int, default=64, help="memory_format: image side in pixels")
    a = ap.parse_args(argv)
    sections = [s.strip() for s in a.sections.split(",") if s.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        ap.error(f"--sections: unknown {sorted(unknown)}; choose from {SECTIONS}")
    result = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="minutes"),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "data": a.data,
    }
    if "adam" in sections:
        result |= adam_kernels(a.rounds)
    if "item" in sections:
        result |= item_reads(Path(a.data), a.items)
    if "checkpoint" in sections:
        result |= checkpoint_write(max(3, a.rounds // 4))
    if "memory_format" in sections:
        names = [b.strip() for b in a.backbones.split(",") if b.strip()]
        result |= memory_formats(names, a.batch, a.size, a.rounds)
    print(json.dumps(result, indent=1))
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
