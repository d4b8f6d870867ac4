"""MillionAID single-label linear probe at hierarchy level 1, 2 or 3: accuracy, macro
precision/recall/F1 and the confusion matrix on MillionAID's test folders.

Full protocol on a user's copy:

    python benchmarks/millionaid_probe.py --data /data/MillionAID --level 2 --checkpoint runs/pretrain-X

There is no MillionAID sample in ../shared/data, so `--mini` runs the same single-label protocol on
the nearest real stand-in, the RGB scene folders of UC Merced (../shared/data/rgb_aerial/ucmerced,
4 images in 2 classes, seeded stratified split). A smoke test, not a MillionAID result.
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
    ap.add_argument("--data", help="MillionAID root (train/test folders)")
    ap.add_argument("--level", type=int, default=1, choices=(1, 2, 3))
    ap.add_argument(
        "--checkpoint", help="RGB pretraining run folder or .safetensors (default: random init)"
    )
    ap.add_argument(
        "--mini",
        action="store_true",
        help="UC Merced scene folders from ../shared/data as a stand-in",
    )
    ap.add_argument(
        "--size", type=int, default=None, help="patch size (default: 224 full, 64 mini)"
    )
    ap.add_argument("--knn", type=int, default=20)
    ap.add_argument("--out", default="runs/bench-millionaid-probe")
    a = ap.parse_args(argv)
    if not a.mini and not a.data:
        ap.error("give --data MILLIONAID_ROOT or --mini")
    if a.mini:
        data, dataset = SHARED / "rgb_aerial" / "ucmerced", "folder"
    else:
        data, dataset = Path(a.data), "millionaid"
    size = a.size or (64 if a.mini else 224)
    knn = 1 if a.mini else a.knn
    init = ["--checkpoint", a.checkpoint] if a.checkpoint else ["--random-init"]
    argv = [
        "probe",
        *init,
        "--data",
        str(data),
        "--dataset",
        dataset,
        "--level",
        str(a.level),
        "--bands",
        "3",
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
                "benchmark": "millionaid_probe",
                "mini": a.mini,
                "data": str(data),
                "level": a.level,
                **{k: m[k] for k in ("accuracy", "precision", "recall", "f1")},
            }
        )
    )
    return m


if __name__ == "__main__":
    run(sys.argv[1:])
