"""Classification metrics as plain torch functions (checked against scikit-learn in tests/test_eval.py).

Defined behaviour for classes that are absent from an evaluation split (the mini samples have many):

- single-label macro precision/recall/F1 average over the classes that occur in the targets or the
  predictions (scikit-learn's default label set, `zero_division=0`);
- multi-label macro F1 averages over the classes with at least one positive target or prediction; a
  class with neither has no defined F1 and is reported as `None` (scikit-learn would count it as 0
  or 1 depending on `zero_division`, which moves the mean by a convention, not by the model);
- AP is undefined for a class without positives: it is reported as `None` and left out of macro mAP
  (scikit-learn warns and returns 0 for it); micro mAP pools every (sample, class) pair, so
  all-negative samples and empty classes still count there through their false positives.
"""

from __future__ import annotations

import torch

THRESHOLDS = torch.linspace(0.05, 0.95, 19)


def confusion_matrix(target: torch.Tensor, pred: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(num_classes, num_classes) counts; rows are true classes, columns predicted ones."""
    idx = target.long() * num_classes + pred.long()
    return torch.bincount(idx, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes
    )


def _safe_div(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.where(b > 0, a / b.clamp(min=1e-12), torch.zeros_like(a))


def single_label_metrics(target: torch.Tensor, pred: torch.Tensor, classes: list[str]) -> dict:
    """Accuracy, macro precision/recall/F1 (over classes seen in target or pred), per-class F1, confusion matrix."""
    k = len(classes)
    cm = confusion_matrix(target, pred, k).double()
    tp = cm.diag()
    precision = _safe_div(tp, cm.sum(0))
    recall = _safe_div(tp, cm.sum(1))
    f1 = _safe_div(2 * tp, cm.sum(0) + cm.sum(1))
    seen = (cm.sum(0) + cm.sum(1)) > 0
    return {
        "accuracy": float(tp.sum() / cm.sum()) if cm.sum() > 0 else 0.0,
        "precision": float(precision[seen].mean()),
        "recall": float(recall[seen].mean()),
        "f1": float(f1[seen].mean()),
        "classes_averaged": int(seen.sum()),
        "per_class_f1": {c: (float(f1[i]) if seen[i] else None) for i, c in enumerate(classes)},
        "confusion_matrix": cm.long().tolist(),
    }


def multilabel_counts(
    target: torch.Tensor, pred: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-class true positives, false positives, false negatives of 0/1 matrices (N, K)."""
    t, p = target.bool(), pred.bool()
    return (t & p).sum(0).double(), (~t & p).sum(0).double(), (t & ~p).sum(0).double()


def f1_scores(
    target: torch.Tensor, pred: torch.Tensor
) -> tuple[float, float, torch.Tensor, torch.Tensor]:
    """(micro F1, macro F1 over defined classes, per-class F1, mask of defined classes) of 0/1 matrices."""
    tp, fp, fn = multilabel_counts(target, pred)
    denom = 2 * tp + fp + fn
    per_class = _safe_div(2 * tp, denom)
    defined = denom > 0
    micro = float(_safe_div(2 * tp.sum(), denom.sum()))
    macro = float(per_class[defined].mean()) if defined.any() else 0.0
    return micro, macro, per_class, defined


def average_precision(target: torch.Tensor, score: torch.Tensor) -> float | None:
    """AP of one binary problem: sum over thresholds of (R_n - R_{n-1}) * P_n (scikit-learn's definition,
    tied scores form one threshold); None when there is no positive."""
    t = target.double().flatten()
    s = score.double().flatten()
    npos = t.sum()
    if npos == 0:
        return None
    order = torch.argsort(s, descending=True, stable=True)
    s, t = s[order], t[order]
    tps = torch.cumsum(t, 0)
    fps = torch.cumsum(1 - t, 0)
    # keep the last index of each run of tied scores
    last = torch.ones_like(s, dtype=torch.bool)
    last[:-1] = s[1:] != s[:-1]
    tps, fps = tps[last], fps[last]
    precision = tps / (tps + fps)
    recall = tps / npos
    prev = torch.cat([torch.zeros(1, dtype=recall.dtype), recall[:-1]])
    return float(((recall - prev) * precision).sum())


def multilabel_metrics(
    target: torch.Tensor, score: torch.Tensor, classes: list[str], threshold: float
) -> dict:
    """Micro/macro F1 at `threshold`, micro/macro mAP (threshold-free) and per-class F1/AP of (N, K) scores in [0, 1].

    A label is predicted when `score >= threshold`; torchmetrics' multilabel F1 uses `score > threshold`.
    The two differ only for scores exactly at the threshold (a sigmoid output of exactly 0.5 counts as
    positive here, negative there); the threshold itself is chosen on validation with the same `>=`.
    """
    pred = score >= threshold
    micro, macro, per_class, defined = f1_scores(target, pred)
    aps = [average_precision(target[:, j], score[:, j]) for j in range(len(classes))]
    present = [a for a in aps if a is not None]
    return {
        "f1_micro": micro,
        "f1_macro": macro,
        "map_micro": average_precision(target, score) or 0.0,
        "map_macro": sum(present) / len(present) if present else 0.0,
        "threshold": float(threshold),
        "classes_with_positives": len(present),
        "per_class_f1": {
            c: (float(per_class[j]) if defined[j] else None) for j, c in enumerate(classes)
        },
        "per_class_ap": dict(zip(classes, aps, strict=True)),
    }


def choose_threshold(
    target: torch.Tensor, score: torch.Tensor, grid: torch.Tensor = THRESHOLDS
) -> float:
    """The decision threshold (one for all classes) that maximises micro F1 on these (validation) scores;
    ties go to the threshold closest to 0.5."""
    best, best_t = -1.0, 0.5
    for t in sorted(grid.tolist(), key=lambda v: abs(v - 0.5)):
        f1 = f1_scores(target, score >= t)[0]
        if f1 > best + 1e-12:
            best, best_t = f1, t
    return float(best_t)
