"""Speed of rs-ssl's fused view pipelines against TorchGeo's MoCo v3 Kornia pipeline.

Times two views of a (batch, bands, size, size) float batch, in one process, with the
pipelines run round-robin so that load from other processes hits all of them alike:

  torchgeo-mocov3     `torchgeo.trainers.moco.moco_augmentations(3, size, torch.ones(bands))`,
                      exactly as `MoCoTask` builds it (its default grayscale weights), aug1 + aug2
  rs_ssl-mocov3       `rs_ssl.augment.make_views("mocov3", bands, size)` (fused)
  rs_ssl-mocov3-ops   the same rs-ssl ops run one by one through `kornia.augmentation.ImageSequential`
  rs_ssl-s2           `make_views("s2", bands, size)` (fused), for reference

The input is built from the real Sentinel-2 L1C scene of ../shared/data (13 bands on the 10 m
grid, DN * 1e-4, standardised per band) when present, otherwise standard normal values (no
pipeline's cost depends on pixel values).

    python benchmarks/augment_speed.py --device cpu --batch 32
    python benchmarks/augment_speed.py --device cuda --batch 256
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

from rs_ssl.bands import get_sensor

ROOT = Path(__file__).resolve().parents[1]
SCENE = ROOT.parent / "shared" / "data" / "sentinel2_l1c_scene"
L1C_BANDS = get_sensor("s2_l1c").names  # the band registry's order


def real_batch(batch: int, bands: int, size: int) -> torch.Tensor | None:
    """Tiles of the L1C scene as a standardised (batch, bands, size, size) batch, or None."""
    if bands > len(L1C_BANDS) or not SCENE.is_dir():
        return None
    import numpy as np
    import rasterio
    from rasterio.enums import Resampling

    planes = []
    for name in L1C_BANDS[:bands]:
        with rasterio.open(SCENE / f"s2_{name}.tif") as src:
            planes.append(
                src.read(1, out_shape=(960, 960), resampling=Resampling.nearest).astype(np.float32)
            )
    scene = np.stack(planes) * 1e-4
    scene = (scene - scene.mean(axis=(1, 2), keepdims=True)) / scene.std(axis=(1, 2), keepdims=True)
    tiles = [
        scene[:, i : i + size, j : j + size]
        for i in range(0, 960 - size + 1, size)
        for j in range(0, 960 - size + 1, size)
    ]
    return torch.from_numpy(np.stack([tiles[k % len(tiles)] for k in range(batch)]))


def pipelines(
    bands: int, size: int, device: torch.device
) -> dict[str, Callable[[torch.Tensor], object]]:
    """The pipelines to time, each a callable that makes two views of a batch."""
    import kornia.augmentation as K
    from torchgeo.trainers.moco import moco_augmentations

    from rs_ssl.augment import make_views

    # As MoCoTask.__init__: grayscale_weights defaults to torch.ones(in_channels).
    aug1, aug2 = moco_augmentations(3, size, torch.ones(bands))
    aug1, aug2 = aug1.to(device), aug2.to(device)  # as when the LightningModule moves to the GPU
    ours = make_views("mocov3", bands, size).to(device)
    ops1, ops2 = K.ImageSequential(*ours.view1.ops), K.ImageSequential(*ours.view2.ops)
    s2 = make_views("s2", bands, size).to(device)
    return {
        "torchgeo-mocov3": lambda x: (aug1(x), aug2(x)),
        "rs_ssl-mocov3": ours,
        "rs_ssl-mocov3-ops": lambda x: (ops1(x), ops2(x)),
        "rs_ssl-s2": s2,
    }


def machine(device: torch.device) -> dict[str, str]:
    """What the figures were measured on."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "date": dt.date.today().isoformat(),
        "cpu": f"{cpu}, {os.cpu_count()} logical cores, {platform.machine()}",
        "torch_threads": str(torch.get_num_threads()),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }
    for name in ("kornia", "torchgeo"):
        try:
            info[name] = __import__(name).__version__
        except ImportError:
            info[name] = "missing"
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    try:
        info["load_average_1min"] = f"{os.getloadavg()[0]:.2f}"
    except OSError:
        pass
    return info


def run(args: argparse.Namespace) -> dict:
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    x = None if args.input == "random" else real_batch(args.batch, args.bands, args.size)
    source = "L1C scene tiles" if x is not None else "standard normal"
    if x is None:
        x = torch.randn(
            args.batch, args.bands, args.size, args.size, generator=torch.Generator().manual_seed(0)
        )
    x = x.to(device)
    names = args.pipelines.split(",")
    todo = {k: v for k, v in pipelines(args.bands, args.size, device).items() if k in names}
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    torch.manual_seed(0)
    for _ in range(args.warmup):
        for fn in todo.values():
            fn(x)
    sync()
    times: dict[str, list[float]] = {k: [] for k in todo}
    for _ in range(args.repeats):
        for name, fn in todo.items():  # round-robin: background load hits every pipeline alike
            sync()
            start = time.perf_counter()
            fn(x)
            sync()
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["torchgeo-mocov3"]) if "torchgeo-mocov3" in times else None
    rows = []
    for name, ts in times.items():
        med = statistics.median(ts)
        rows.append(
            {
                "pipeline": name,
                "median_ms": 1000 * med,
                "min_ms": 1000 * min(ts),
                "views_per_s": 2 * args.batch / med,
                "speedup_vs_torchgeo": (base / med) if base else None,
            }
        )
    return {"machine": machine(device), "input": source, "args": vars(args), "results": rows}


def table(report: dict) -> str:
    a = report["args"]
    lines = [
        f"two views of {a['batch']} x {a['bands']} x {a['size']} x {a['size']} ({report['input']}) on "
        f"{a['device']}, {a['repeats']} repeats after {a['warmup']} warm-up",
        "",
        "| pipeline | median ms | min ms | views/s | speed-up vs TorchGeo (median) |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in report["results"]:
        speed = f"{r['speedup_vs_torchgeo']:.2f}x" if r["speedup_vs_torchgeo"] else "-"
        lines.append(
            f"| {r['pipeline']} | {r['median_ms']:.1f} | {r['min_ms']:.1f} | {r['views_per_s']:.0f} | {speed} |"
        )
    lines.append("")
    lines.append("machine: " + ", ".join(f"{k}={v}" for k, v in report["machine"].items()))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument(
        "--batch", type=int, default=None, help="images per batch (default 32 on CPU, 256 on CUDA)"
    )
    parser.add_argument("--bands", type=int, default=13)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument(
        "--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)"
    )
    parser.add_argument("--input", choices=("real", "random"), default="real")
    parser.add_argument(
        "--pipelines", default="torchgeo-mocov3,rs_ssl-mocov3,rs_ssl-mocov3-ops,rs_ssl-s2"
    )
    parser.add_argument(
        "--json", type=Path, default=None, help="also write the report as JSON here"
    )
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available here")
    if args.batch is None:
        args.batch = 256 if args.device.startswith("cuda") else 32
    warnings.filterwarnings("ignore", category=UserWarning)
    report = run(args)
    print(table(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
