"""The evaluation protocol shared by `rs-ssl probe` and `rs-ssl finetune` (and read by `report`,
`augsearch` and `embed`): which metrics headline a task, how test scores become metrics, where the
backbone and the three splits come from, and the device and progress display."""

from __future__ import annotations

from typing import Any

import torch

from rs_ssl.errors import UsageError
from rs_ssl.eval import metrics as M
from rs_ssl.eval.splits import Splits, load_splits

# The task names written to metrics.json, and the metrics that headline each (tables, bar charts).
TASKS = {False: "single-label", True: "multi-label"}
HEADLINE = {
    False: ("accuracy", "precision", "recall", "f1"),
    True: ("f1_micro", "f1_macro", "map_micro", "map_macro"),
}


def task_name(multilabel: bool) -> str:
    return TASKS[bool(multilabel)]


def device_for(devices: str) -> torch.device:
    return torch.device("cuda" if devices != "cpu" and torch.cuda.is_available() else "cpu")


def progress_bar():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=True,
    )


def evaluate(
    y_test: torch.Tensor,
    s_test: torch.Tensor,
    y_val: torch.Tensor,
    s_val: torch.Tensor,
    classes: list[str],
    multilabel: bool,
) -> dict[str, Any]:
    """Test metrics of class scores; the multi-label threshold is chosen on the validation scores."""
    if multilabel:
        return M.multilabel_metrics(y_test, s_test, classes, M.choose_threshold(y_val, s_val))
    return M.single_label_metrics(y_test, s_test.argmax(1), classes)


def data_format(cfg) -> str:
    """`--dataset bigearthnet|millionaid` fixes the reader when `--format` is auto."""
    return (
        cfg.dataset
        if cfg.format == "auto" and cfg.dataset in ("bigearthnet", "millionaid")
        else cfg.format
    )


def load_eval_splits(cfg, selection) -> Splits:
    """Train/validation/test of the labelled data: polygon labels (`--labels`) or the data's own."""
    if cfg.labels:
        from rs_ssl.eval.polygons import polygon_splits

        return polygon_splits(cfg, selection)
    if cfg.label_field:
        raise UsageError("--label-field needs --labels VECTOR_FILE")
    return load_splits(
        cfg.data,
        data_format(cfg),
        selection,
        patch=cfg.size,
        level=cfg.level,
        seed=cfg.seed,
        skip_bad=cfg.skip_bad,
    )


def load_backbone_and_splits(cfg):
    """The backbone to evaluate (checkpoint or random init, its bands read against the data) and the
    labelled splits read in that backbone's bands."""
    from rs_ssl.eval.features import load_backbone

    lb = load_backbone(
        cfg.checkpoint,
        cfg.random_init,
        cfg.backbone,
        cfg.bands,
        cfg.sensor,
        cfg.seed,
        data=cfg.data,
        fmt=data_format(cfg),
    )
    return lb, load_eval_splits(cfg, lb.selection)
