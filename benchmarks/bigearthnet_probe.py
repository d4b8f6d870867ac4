"""BigEarthNet v2 (reBEN) multi-label linear probe: micro/macro F1 (threshold chosen on validation),
micro/macro mAP and per-class F1 on the official test split, plus a k-NN classifier.

Full protocol on a user's copy (BigEarthNet-S2 folders + metadata.parquet):

    python benchmarks/bigearthnet_probe.py --data /data/BigEarthNet-v2 --checkpoint runs/pretrain-X --size 120

CI / development, on the 21 real patches in ../shared/data/bigearthnet_v2 (7 per split; numbers are
a smoke test, never comparable to published full-dataset results):

    python benchmarks/bigearthnet_probe.py --mini [--checkpoint RUN]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rs_ssl.cli import run_for_metrics

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def run(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", help="BigEarthNet v2 root (with metadata.parquet)")
    ap.add_argument(
        "--checkpoint",
        help="pretraining run folder or backbone .safetensors (default: random init)",
    )
    ap.add_argument(
        "--mini", action="store_true", help="use the real samples in ../shared/data/bigearthnet_v2"
    )
    ap.add_argument(
        "--size", type=int, default=None, help="patch size (default: 120 full, 32 mini)"
    )
    ap.add_argument("--knn", type=int, default=20)
    ap.add_argument("--out", default="runs/bench-bigearthnet-probe")
    a = ap.parse_args(argv)
    if not a.mini and not a.data:
        ap.error("give --data BIGEARTHNET_ROOT or --mini")
    data = SHARED / "bigearthnet_v2" if a.mini else Path(a.data)
    size = a.size or (32 if a.mini else 120)
    knn = min(a.knn, 3) if a.mini else a.knn
    init = ["--checkpoint", a.checkpoint] if a.checkpoint else ["--random-init"]
    argv = [
        "probe",
        *init,
        "--data",
        str(data),
        "--dataset",
        "bigearthnet",
        "--bands",
        "12",
        "--size",
        str(size),
        "--knn",
        str(knn),
        "--out",
        a.out,
    ]
    m = run_for_metrics(argv, a.out)
    print(
        json.dumps(
            {
                "benchmark": "bigearthnet_probe",
                "mini": a.mini,
                "data": str(data),
                **{k: m[k] for k in ("f1_micro", "f1_macro", "map_micro", "map_macro")},
            }
        )
    )
    return m


if __name__ == "__main__":
    run(sys.argv[1:])
