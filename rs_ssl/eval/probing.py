"""`rs-ssl probe`: linear probe (and k-NN) on frozen features, extracted once."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path
from typing import Any

import torch

from rs_ssl.config import ProbeConfig, default_out
from rs_ssl.eval import figures
from rs_ssl.eval.features import FrozenEncoder, extract
from rs_ssl.eval.knn import knn_scores
from rs_ssl.eval.linear import Split, scores, sweep_linear
from rs_ssl.eval.protocol import (
    HEADLINE,
    device_for,
    evaluate,
    load_backbone_and_splits,
    progress_bar,
    task_name,
)
from rs_ssl.runs import prepare_out, write_config, write_metrics


def _short(name: str, n: int = 18) -> str:
    return name if len(name) <= n else name[: n - 1] + "…"


def sample_titles(
    y: torch.Tensor, s: torch.Tensor, classes: list[str], multilabel: bool, threshold: float
) -> tuple[list[str], list[bool]]:
    """Grid captions and whether each test sample counts as correct: the predicted class (single-label),
    or a sample F1 of at least 0.5 between true and predicted label sets (multi-label)."""
    titles, ok = [], []
    for yi, si in zip(y, s, strict=True):
        if multilabel:
            t = {classes[j] for j in torch.nonzero(yi > 0.5).flatten().tolist()}
            p = {classes[j] for j in torch.nonzero(si >= threshold).flatten().tolist()}
            parts = [
                (f"hit: {', '.join(_short(c) for c in sorted(t & p))}" if t & p else "hit: none"),
                *([f"missed: {', '.join(_short(c) for c in sorted(t - p))}"] if t - p else []),
                *([f"extra: {', '.join(_short(c) for c in sorted(p - t))}"] if p - t else []),
            ]
            lines = [ln for part in parts for ln in textwrap.wrap(part, 40)]
            titles.append(
                "\n".join(lines[:5] if len(lines) <= 5 else [*lines[:4], lines[4][:36] + " …"])
            )
            ok.append(2 * len(t & p) >= 0.5 * (len(t) + len(p)) and bool(t | p))
        else:
            t, p = classes[int(yi)], classes[int(si.argmax())]
            titles.append(f"true: {t}\npred: {p} ({float(si.max()):.2f})")
            ok.append(t == p)
    return titles, ok


def grid_indices(ok: list[bool], n: int = 8) -> list[int]:
    """Up to n/2 correct and n/2 incorrect test samples (topped up from the other group)."""
    good = [i for i, v in enumerate(ok) if v]
    bad = [i for i, v in enumerate(ok) if not v]
    take_good = good[: max(n // 2, n - len(bad))]
    take_bad = bad[: n - len(take_good)]
    return take_good + take_bad


def probe(cfg: ProbeConfig) -> dict[str, Any]:
    """Extract frozen features once, sweep a linear head on validation, report test metrics."""
    out = prepare_out(cfg.out or default_out("probe"))
    torch.manual_seed(cfg.seed)
    lb, splits = load_backbone_and_splits(cfg)
    write_config(
        out,
        "probe",
        cfg,
        extra={
            "backbone": lb.name,
            "weights": lb.source,
            "bands": list(lb.selection.names),
            "splits": splits.info["sizes"],
        },
    )
    device = device_for(cfg.devices)
    encoder = FrozenEncoder(lb.model, lb.selection)
    t0 = time.perf_counter()
    feats: dict[str, Split] = {}
    with progress_bar() as bar:
        for name, ds in splits.parts.items():
            x, y = extract(encoder, ds, cfg.batch_size, device, bar, f"features: {name}")
            feats[name] = Split(x, y)
    t_feat = time.perf_counter() - t0
    k, ml = len(splits.classes), splits.multilabel
    head, sweep = sweep_linear(feats["train"], feats["validation"], k, ml, seed=cfg.seed)
    with torch.no_grad():
        s_val = scores(head(feats["validation"].x), ml)
        s_test = scores(head(feats["test"].x), ml)
    result = evaluate(feats["test"].y, s_test, feats["validation"].y, s_val, splits.classes, ml)
    metrics: dict[str, Any] = {
        "command": "probe",
        "task": task_name(ml),
        **{m: result[m] for m in HEADLINE[ml]},
        "linear": result,
        "sweep": sweep,
        "backbone": {
            "name": lb.name,
            "weights": lb.source,
            "method": lb.method,
            "bands": list(lb.selection.names),
            "frozen": True,
            "feature_dim": int(feats["train"].x.shape[1]),
            "band_transfer": lb.transfer,
        },
        "classes": splits.classes,
        "splits": {k_: v for k_, v in splits.info.items() if k_ != "data"},
        "data": {k_: v for k_, v in splits.info.get("data", {}).items() if k_ != "skipped_reasons"},
        "feature_seconds": round(t_feat, 2),
        "device": device.type,
    }
    if cfg.knn:
        bank = (feats["train"].x, feats["train"].y)
        kv = knn_scores(*bank, feats["validation"].x, cfg.knn, k, ml)
        kt = knn_scores(*bank, feats["test"].x, cfg.knn, k, ml)
        knn = evaluate(feats["test"].y, kt, feats["validation"].y, kv, splits.classes, ml)
        metrics["knn"] = {"k": min(cfg.knn, len(feats["train"].x)), **knn}

    # Test-set scores and targets, for independent re-computation and for reports.
    torch.save(
        {
            "classes": splits.classes,
            "multilabel": ml,
            "target": feats["test"].y,
            "score": s_test,
            "val_target": feats["validation"].y,
            "val_score": s_val,
        },
        out / "predictions.pt",
    )
    # figures
    figs = {}
    headline = {m: result[m] for m in HEADLINE[ml]}
    bars = {"linear": headline}
    if cfg.knn:
        bars[f"{metrics['knn']['k']}-NN"] = {m: metrics["knn"][m] for m in HEADLINE[ml]}
    figs["metrics"] = figures.metric_bars(
        bars,
        out / "metrics.png",
        title=f"Probe on {lb.name} ({Path(lb.source).parent.name or lb.source})",
    )
    if not ml:
        figs["confusion"] = figures.confusion(
            result["confusion_matrix"], splits.classes, out / "confusion.png"
        )
    titles, ok = sample_titles(
        feats["test"].y, s_test, splits.classes, ml, result.get("threshold", 0.5)
    )
    pick = grid_indices(ok)
    test_ds = splits.parts["test"]
    figs["samples"] = figures.sample_grid(
        [test_ds[i]["image"] for i in pick],
        [titles[i] for i in pick],
        [ok[i] for i in pick],
        lb.selection.rgb_indices(),
        out / "samples.png",
        title=(
            f"Test samples: {sum(ok)} of {len(ok)} "
            + (
                "with sample F1 >= 0.5 (green), the others red"
                if ml
                else "correct (green), the others red"
            )
        ),
        as_is=figures.display_scale(lb.selection),
    )
    metrics["figures"] = {k_: str(v) for k_, v in figs.items()}
    metrics["outputs"] = {
        "predictions": str(out / "predictions.pt"),
        "config": str(out / "config.yaml"),
    }
    write_metrics(out, metrics)
    line = ", ".join(f"{m} {result[m]:.3f}" for m in HEADLINE[ml])
    knn_line = (
        f"\n  {metrics['knn']['k']}-NN: "
        + ", ".join(f"{m} {metrics['knn'][m]:.3f}" for m in HEADLINE[ml])
        if cfg.knn
        else ""
    )
    print(
        f"probe ({metrics['task']}, {k} classes, {lb.name} from {lb.source}): test {line}{knn_line}\n"
        f"  train/val/test {splits.info['sizes']}; run folder: {out}"
    )
    return metrics
