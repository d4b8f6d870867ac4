"""Label efficiency on BigEarthNet v2: fine-tune with 1%, 10%, 50% and 100% of the training labels
(stratified, seeded), three seeds each, pretrained backbone against the same one from random
initialisation; writes the table, label_efficiency.png and the plateau epoch of each curve.

Full protocol on a user's copy:

    python benchmarks/label_efficiency.py --data /data/BigEarthNet-v2 --checkpoint runs/pretrain-X

CI / development on the 21 real patches in ../shared/data/bigearthnet_v2 (7 training patches, so
fractions 0.3 and 1.0, 2 seeds, 3 epochs; a smoke test of the protocol, not a result):

    python benchmarks/label_efficiency.py --mini [--checkpoint RUN]
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
        "--checkpoint", help="pretraining run folder or .safetensors (default: scratch only)"
    )
    ap.add_argument(
        "--mini", action="store_true", help="use the real samples in ../shared/data/bigearthnet_v2"
    )
    ap.add_argument("--out", default="runs/bench-label-efficiency")
    a = ap.parse_args(argv)
    if not a.mini and not a.data:
        ap.error("give --data BIGEARTHNET_ROOT or --mini")
    if a.mini:
        data, extra = (
            SHARED / "bigearthnet_v2",
            [
                "--size",
                "32",
                "--label-fraction",
                "0.3,1.0",
                "--seeds",
                "2",
                "--epochs",
                "3",
                "--batch-size",
                "8",
            ],
        )
    else:
        data, extra = (
            Path(a.data),
            [
                "--size",
                "120",
                "--label-fraction",
                "0.01,0.1,0.5,1.0",
                "--seeds",
                "3",
                "--epochs",
                "20",
                "--batch-size",
                "256",
            ],
        )
    init = ["--checkpoint", a.checkpoint] if a.checkpoint else ["--random-init"]
    argv = [
        "finetune",
        *init,
        "--data",
        str(data),
        "--dataset",
        "bigearthnet",
        "--bands",
        "12",
        *extra,
        "--out",
        a.out,
    ]
    m = run_for_metrics(argv, a.out)
    print(
        json.dumps(
            {
                "benchmark": "label_efficiency",
                "mini": a.mini,
                "metric": m["metric"],
                "table": [
                    {k: t[k] for k in ("init", "fraction", "mean", "std", "plateau_epoch")}
                    for t in m["table"]
                ],
            }
        )
    )
    return m


if __name__ == "__main__":
    run(sys.argv[1:])
