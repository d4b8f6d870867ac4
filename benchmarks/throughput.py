"""Throughput benchmark of the full pretraining step (the throughput issue).

Runs `rs-ssl bench` for the issue's configurations, each timing in one process the rs-ssl step
(Lightning, device-side fused views, one forward over both views where the method allows it),
TorchGeo's task on identical inputs, and a hand-written PyTorch step; then measures whether peak
host memory of `rs-ssl pretrain` grows with dataset size. Prints a Markdown table for
benchmarks/RESULTS.md.

    python benchmarks/throughput.py                 # CPU: SimCLR and MoCo v2, ResNet-18, 64 px
    python benchmarks/throughput.py --device cuda   # GPU: the issue's H100 table (224/128 px, batch 256)
    python benchmarks/throughput.py --memory        # also: peak RSS of pretrain on 1, 8 and 64 scenes
    python benchmarks/throughput.py --device cuda --compile --stream 14
                                                    # compiled backbones; patches also streamed from zarr
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CPU_CONFIGS = [
    {"method": "simclr", "backbone": "resnet18", "size": 64, "batch_size": 32},
    {"method": "mocov2", "backbone": "resnet18", "size": 64, "batch_size": 32},
]
GPU_CONFIGS = [
    {"method": "mocov3", "backbone": "vit_base_patch16_224", "size": 224, "batch_size": 256},
    {"method": "mocov3", "backbone": "resnet50", "size": 224, "batch_size": 256},
    {"method": "simclr", "backbone": "resnet50", "size": 128, "batch_size": 256},
]


def zarr_copy(size: int, tmp: Path) -> Path:
    """The embedded sample as a zarr store chunked at the patch size (`rs-ssl convert`), made once per size."""
    out = tmp / f"sample_{size}.zarr"
    if not out.exists():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "rs_ssl",
                "convert",
                "--to",
                "zarr",
                "--size",
                str(size),
                "--out",
                str(out),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
    return out


def bench(
    cfg: dict,
    device: str,
    steps: int,
    warmup: int,
    out: Path,
    compile: bool = False,
    stream: Path | None = None,
    workers: int = 0,
    rounds: int = 1,
) -> dict:
    argv = [
        sys.executable,
        "-m",
        "rs_ssl",
        "bench",
        "--bands",
        "13",
        "--device",
        device,
        "--compare",
        "torchgeo",
        "--steps",
        str(steps),
        "--warmup",
        str(warmup),
        "--rounds",
        str(rounds),
        "--out",
        str(out),
        *(["--compile"] if compile else []),
        *(["--data", str(stream), "--workers", str(workers)] if stream else []),
        *[a for k, v in cfg.items() for a in (f"--{k.replace('_', '-')}", str(v))],
    ]
    p = subprocess.run(argv, capture_output=True, text=True)
    if p.returncode != 0:
        return {
            **cfg,
            "error": p.stderr.strip().splitlines()[-1]
            if p.stderr.strip()
            else f"exit {p.returncode}",
        }
    return json.loads(p.stdout.strip().splitlines()[-1])


# Runs `rs-ssl pretrain` and prints its own peak RSS and that of its largest DataLoader worker: a
# parent's RUSAGE_CHILDREN is the maximum over every child it ever had (the bench runs included).
_MEASURED_PRETRAIN = """
import resource, sys
from rs_ssl import cli
rc = cli.main(sys.argv[1:])
print("PEAK_RSS_KIB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(rc)
"""


def pretrain_peak_rss(scenes: int, tmp: Path) -> tuple[float, float]:
    """Peak RSS (GiB) of a short `rs-ssl pretrain` over `scenes` symlinked copies of the embedded
    scene: (main process, largest DataLoader worker)."""
    from rs_ssl.data import sample_path

    root = tmp / f"scenes{scenes}"
    root.mkdir()
    for i in range(scenes):
        d = root / f"scene{i:03d}"
        d.mkdir()
        for f in sample_path().glob("*.tif"):
            (d / f.name).symlink_to(f)
    p = subprocess.run(
        [
            sys.executable,
            "-c",
            _MEASURED_PRETRAIN,
            "pretrain",
            "--data",
            str(root),
            "--max-steps",
            "10",
            "--workers",
            "2",
            "--out",
            str(tmp / f"run{scenes}"),
        ],
        capture_output=True,
        text=True,
    )
    if p.returncode != 0:
        raise SystemExit(p.stderr[-2000:])
    line = next(x for x in p.stdout.splitlines() if x.startswith("PEAK_RSS_KIB"))
    main_kib, worker_kib = (int(v) for v in line.split()[1:])
    return main_kib / 2**20, worker_kib / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument(
        "--steps", type=int, default=None, help="timed steps (default 10 on CPU, 30 on GPU)"
    )
    ap.add_argument(
        "--warmup", type=int, default=None, help="untimed steps (default 3 on CPU, 10 on GPU)"
    )
    ap.add_argument(
        "--memory",
        action="store_true",
        help="also measure pretrain peak host memory (main process, largest worker) on 1, 8 and 64 scenes",
    )
    ap.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="alternating timing rounds per variant, medians reported (default 3 on CPU, 1 on GPU)",
    )
    ap.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the backbone (rs-ssl and hand-written steps)",
    )
    ap.add_argument(
        "--stream",
        type=int,
        default=0,
        metavar="WORKERS",
        help="also time rs-ssl's step with patches streamed by WORKERS DataLoader workers from a zarr "
        "copy of the embedded sample chunked at the patch size (0: in memory only)",
    )
    args = ap.parse_args()
    steps = args.steps or (30 if args.device == "cuda" else 10)
    warmup = args.warmup or (10 if args.device == "cuda" else 3)
    rounds = args.rounds or (1 if args.device == "cuda" else 3)
    configs = GPU_CONFIGS if args.device == "cuda" else CPU_CONFIGS
    load = os.getloadavg()
    print(
        f"# {time.strftime('%Y-%m-%d')} · {platform.machine()} · {os.cpu_count()} CPUs · load {load[0]:.1f} · "
        f"python {platform.python_version()}",
        flush=True,
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, cfg in enumerate(configs):
            stream = zarr_copy(cfg["size"], Path(tmp)) if args.stream else None
            r = bench(
                cfg,
                args.device,
                steps,
                warmup,
                Path(tmp) / f"b{i}",
                args.compile,
                stream,
                args.stream,
                rounds,
            )
            rows.append(r)
            print(json.dumps(r), flush=True)
        print(
            f"\n{steps} timed steps after {warmup} warm-up, median of {rounds} alternating round(s); "
            f"compile: {args.compile}; streamed: {f'zarr, {args.stream} workers' if args.stream else 'no'}"
        )
        print(
            "\n| method | backbone | px | batch | device | rs-ssl img/s | TorchGeo img/s | ratio | hand-written img/s "
            "| vs hand-written | streamed img/s | streamed / in memory | peak GPU GiB | MFU |"
        )
        print("|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            if "error" in r:
                print(
                    f"| {r['method']} | {r['backbone']} | {r['size']} | {r['batch_size']} | {args.device} | error: {r['error']} |||||||||"
                )
                continue
            print(
                f"| {r['method']} | {r['backbone']} | {r['size']} | {r['batch_size']} | {r['device_name']} | "
                f"{r['img_per_s']} | {r.get('torchgeo_img_per_s', '–')} | {r.get('ratio', '–')} | "
                f"{r.get('handwritten_img_per_s', '–')} | {r.get('ratio_vs_handwritten', '–')} | "
                f"{r.get('streamed_img_per_s', '–')} | {r.get('streamed_vs_memory', '–')} | "
                f"{r.get('peak_gpu_mem_gib', '–')} | {r.get('mfu', '–')} |"
            )
        if args.memory:
            rss = {n: pretrain_peak_rss(n, Path(tmp)) for n in (1, 8, 64)}
            print(
                "\n| scenes | pretrain peak RSS, main process (GiB) | largest worker (GiB) |\n|---:|---:|---:|"
            )
            for n, (main_gib, worker_gib) in rss.items():
                print(f"| {n} | {main_gib:.2f} | {worker_gib:.2f} |")
    print(f"\nload average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
