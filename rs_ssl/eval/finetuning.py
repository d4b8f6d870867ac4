"""`rs-ssl finetune`: label efficiency, fine-tuning on fractions of the training labels over several
seeds, the checkpoint's backbone against the same architecture from random initialisation."""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from rs_ssl.bands import load_stats
from rs_ssl.config import FinetuneConfig, default_out
from rs_ssl.data.normalize import Normalize
from rs_ssl.eval import figures
from rs_ssl.eval import protocol as P
from rs_ssl.eval.features import load_backbone
from rs_ssl.eval.linear import scores
from rs_ssl.eval.splits import fraction_indices, parse_fractions, targets_of
from rs_ssl.models.backbone import output_dim
from rs_ssl.runs import prepare_out, write_config, write_metrics

PLATEAU_TOL = 0.01
PRELOAD_MAX = 4096  # splits up to this many samples are read once into memory


def curve_metric(multilabel: bool) -> str:
    """The label-efficiency metric: micro mAP (multi-label, threshold-free) or macro F1."""
    return "map_micro" if multilabel else "f1"


def plateau_epoch(curve: list[float], tol: float = PLATEAU_TOL) -> int:
    """First epoch (1-based) whose value is within `tol` of the curve's maximum."""
    best = max(curve)
    return next(i + 1 for i, v in enumerate(curve) if v >= best - tol)


class _Tensors(Dataset):
    def __init__(self, ds: Dataset):
        items = [ds[i] for i in range(len(ds))]
        self.x = torch.stack([it["image"] for it in items])
        self.y = torch.stack([it["label"] for it in items])

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"image": self.x[i], "label": self.y[i]}


def _batches(ds: Dataset, batch_size: int) -> DataLoader:
    return DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=0)


def _train_order(n: int, batch_size: int, g: torch.Generator) -> list[torch.Tensor]:
    """Shuffled index batches of at least 2 samples (BatchNorm in train mode needs two)."""
    idx = torch.randperm(n, generator=g)
    if n == 1:
        idx = idx.repeat(2)
    parts = list(idx.split(batch_size))
    if len(parts) > 1 and len(parts[-1]) == 1:
        parts[-2] = torch.cat([parts[-2], parts.pop()])
    return parts


class Classifier(nn.Module):
    """Normalise DN -> backbone -> linear head; every parameter trains."""

    def __init__(self, backbone: nn.Module, normalize: nn.Module, num_classes: int):
        super().__init__()
        self.normalize, self.backbone = normalize, backbone
        self.head = nn.Linear(output_dim(backbone), num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(self.normalize(x)))


@torch.no_grad()
def predict(model: nn.Module, ds: Dataset, batch_size: int, device: torch.device, multilabel: bool):
    model.eval()
    ys, ss = [], []
    for b in _batches(ds, batch_size):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits = model(b["image"].to(device))
        ss.append(scores(logits.float(), multilabel).cpu())
        ys.append(b["label"])
    return torch.cat(ys), torch.cat(ss)


def fit_one(
    model: Classifier,
    train: Dataset,
    val: Dataset,
    test: Dataset,
    classes: list[str],
    multilabel: bool,
    epochs: int,
    lr: float,
    batch_size: int,
    seed: int,
    device: torch.device,
) -> tuple[list[float], dict]:
    """AdamW (weight decay 1e-4), cosine LR, random flips; returns the validation curve and final test metrics."""
    g = torch.Generator().manual_seed(seed)
    model = model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * len(_train_order(len(train), batch_size, torch.Generator().manual_seed(0)))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, steps))
    metric = curve_metric(multilabel)
    curve = []
    for _ in range(epochs):
        model.train()
        for idx in _train_order(len(train), batch_size, g):
            items = [train[int(i)] for i in idx]
            x = torch.stack([it["image"] for it in items]).to(device)
            y = torch.stack([it["label"] for it in items]).to(device)
            if torch.rand((), generator=g) < 0.5:
                x = x.flip(-1)
            if torch.rand((), generator=g) < 0.5:
                x = x.flip(-2)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                logits = model(x).float()
            loss = (
                F.binary_cross_entropy_with_logits(logits, y.float())
                if multilabel
                else F.cross_entropy(logits, y)
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        yv, sv = predict(model, val, batch_size, device, multilabel)
        curve.append(P.evaluate(yv, sv, yv, sv, classes, multilabel)[metric])
    yv, sv = predict(model, val, batch_size, device, multilabel)
    yt, st = predict(model, test, batch_size, device, multilabel)
    return curve, P.evaluate(yt, st, yv, sv, classes, multilabel)


def finetune(cfg: FinetuneConfig) -> dict[str, Any]:
    """Fine-tune per (initialisation, label fraction, seed); write the table, the plot and metrics.json."""
    fractions = parse_fractions(cfg.label_fraction)
    out = prepare_out(cfg.out or default_out("finetune"))
    probe_lb, splits = P.load_backbone_and_splits(cfg)
    selection = probe_lb.selection
    parts = {k: (_Tensors(v) if len(v) <= PRELOAD_MAX else v) for k, v in splits.parts.items()}
    train_targets = targets_of(splits.parts["train"])
    write_config(
        out,
        "finetune",
        cfg,
        extra={
            "backbone": probe_lb.name,
            "weights": probe_lb.source,
            "bands": list(selection.names),
            "splits": splits.info["sizes"],
        },
    )
    inits = ["scratch"] if cfg.random_init else ["pretrained", "scratch"]
    device = P.device_for(cfg.devices)
    ml, metric = splits.multilabel, curve_metric(splits.multilabel)
    stats = load_stats(selection)
    runs: list[dict] = []
    t0 = time.perf_counter()
    with P.progress_bar() as bar:
        task = bar.add_task("fine-tuning", total=len(inits) * len(fractions) * cfg.seeds)
        for init in inits:
            for frac in fractions:
                for s in range(cfg.seeds):
                    seed = cfg.seed + s
                    idx = fraction_indices(train_targets, ml, frac, seed)
                    lb = load_backbone(
                        cfg.checkpoint if init == "pretrained" else None,
                        init == "scratch",
                        probe_lb.name,
                        ",".join(selection.names),
                        selection.sensor.key,
                        seed,
                        verbose=False,
                    )
                    torch.manual_seed(seed)
                    model = Classifier(lb.model, Normalize(selection, stats), len(splits.classes))
                    curve, test = fit_one(
                        model,
                        Subset(parts["train"], idx),
                        parts["validation"],
                        parts["test"],
                        splits.classes,
                        ml,
                        cfg.epochs,
                        cfg.lr,
                        cfg.batch_size,
                        seed,
                        device,
                    )
                    runs.append(
                        {
                            "init": init,
                            "fraction": frac,
                            "seed": seed,
                            "train_samples": len(idx),
                            "val_curve": curve,
                            "test": {k: test[k] for k in P.HEADLINE[ml]},
                        }
                    )
                    bar.advance(task)
    table = []
    for init in inits:
        for frac in fractions:
            rs = [r for r in runs if r["init"] == init and r["fraction"] == frac]
            vals = [r["test"][metric] for r in rs]
            mean_curve = [
                statistics.fmean(c) for c in zip(*(r["val_curve"] for r in rs), strict=True)
            ]
            table.append(
                {
                    "init": init,
                    "fraction": frac,
                    "train_samples": rs[0]["train_samples"],
                    "seeds": len(rs),
                    "mean": statistics.fmean(vals),
                    "std": statistics.pstdev(vals),
                    "min": min(vals),
                    "max": max(vals),
                    "plateau_epoch": plateau_epoch(mean_curve),
                    "val_curve_mean": mean_curve,
                }
            )
    main_init, top = inits[0], max(fractions)
    headline_runs = [r for r in runs if r["init"] == main_init and r["fraction"] == top]
    metrics: dict[str, Any] = {
        "command": "finetune",
        "task": P.task_name(ml),
        **{k: statistics.fmean(r["test"][k] for r in headline_runs) for k in P.HEADLINE[ml]},
        "headline": f"{main_init} backbone, label fraction {top}, mean over {cfg.seeds} seeds, test split",
        "metric": metric,
        "seeds": cfg.seeds,
        "epochs": cfg.epochs,
        "plateau_rule": f"first epoch whose seed-mean validation {metric} is within {PLATEAU_TOL} of its maximum",
        "test_metric_epoch": "last epoch",
        "table": table,
        "runs": runs,
        "backbone": {
            "name": probe_lb.name,
            "weights": probe_lb.source,
            "bands": list(selection.names),
            "band_transfer": probe_lb.transfer,
        },
        "classes": splits.classes,
        "splits": {k: v for k, v in splits.info.items() if k != "data"},
        "train_seconds": round(time.perf_counter() - t0, 2),
        "device": device.type,
    }
    fig = figures.label_efficiency(
        table,
        metric,
        out / "label_efficiency.png",
        title=f"Label efficiency: {probe_lb.name}, {len(splits.classes)} classes",
    )
    metrics["figures"] = {"label_efficiency": str(fig)}
    write_metrics(out, metrics)
    lines = [
        f"{'init':<11}{'fraction':>9}{'labels':>8}{metric + ' mean':>16}{'std':>8}{'plateau ep':>12}"
    ]
    lines += [
        f"{t['init']:<11}{t['fraction']:>9g}{t['train_samples']:>8}{t['mean']:>16.3f}{t['std']:>8.3f}{t['plateau_epoch']:>12}"
        for t in table
    ]
    print(
        "finetune (test "
        + metric
        + ", "
        + str(cfg.seeds)
        + " seeds):\n  "
        + "\n  ".join(lines)
        + f"\n  run folder: {out}"
    )
    return metrics
