"""Patches per second of each `pretrain --sampler`, as pretraining reads them (issue 14).

Each sampler's dataset is what `rs-ssl pretrain --sampler NAME` builds
(`rs_ssl.data.sampling.training_patches`, with `--region` when given); the timed loop reads
`dataset[i]` for `--n` indices of an epoch, one process, one thread; the epoch's draw
(`set_epoch`, which for the TorchGeo samplers draws the epoch's queries) is inside the timed part.
The build time (catalog, opening, first draw) is reported apart. The samplers take turns in `--rounds` rounds so that load from other
processes on a shared machine falls on all of them alike; medians are reported.

    .venv/bin/python benchmarks/sampler_throughput.py [--data DIR] [--size 64] [--n 256] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("GDAL_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)


def main() -> None:
    from rs_ssl.data import resolve_data_bands
    from rs_ssl.data.sampling import SAMPLERS, training_patches

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None, help="raster data (default: the embedded sample)")
    ap.add_argument("--size", type=int, default=64, help="patch size in pixels")
    ap.add_argument("--n", type=int, default=256, help="patches read per sampler per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--region", default=None)
    ap.add_argument("--samplers", default=",".join(SAMPLERS))
    args = ap.parse_args()

    sel = resolve_data_bands("auto", None, args.data)
    datasets, draw = {}, {}
    training_patches(args.data, "auto", sel, patch=args.size, samples_per_epoch=8)  # imports warm
    for name in args.samplers.split(","):
        t0 = time.perf_counter()
        datasets[name], _ = training_patches(
            args.data,
            "auto",
            sel,
            sampler=name,
            patch=args.size,
            samples_per_epoch=args.n,
            batch_size=32,
            region=args.region,
        )
        draw[name] = time.perf_counter() - t0
    rates: dict[str, list[float]] = {n: [] for n in datasets}
    for r in range(args.rounds):
        for name, ds in datasets.items():
            ds[0]  # warm: files opened
            t0 = time.perf_counter()
            ds.set_epoch(r + 1)  # TorchGeo samplers: the epoch's queries are drawn here
            n = min(args.n, len(ds))
            for i in range(n):
                ds[i]["image"]
            rates[name].append(n / (time.perf_counter() - t0))
    base = statistics.median(rates["rs-ssl"]) if "rs-ssl" in rates else None
    print(
        f"data {args.data or 'embedded sample'}, {len(sel)} bands, {args.size} px patches, "
        f"{args.n} per round, {args.rounds} rounds, 1 thread"
    )
    print("| --sampler | patches/s (median) | min | max | vs rs-ssl | build + first draw s |")
    print("|---|---|---|---|---|---|")
    for name, v in rates.items():
        med = statistics.median(v)
        rel = f"{med / base:.2f}x" if base else "-"
        print(f"| {name} | {med:.0f} | {min(v):.0f} | {max(v):.0f} | {rel} | {draw[name]:.2f} |")


if __name__ == "__main__":
    main()
