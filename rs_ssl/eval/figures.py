"""Evaluation figures (matplotlib, Agg): metric bars, confusion matrix, sample grid, label efficiency, heatmap."""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from rs_ssl.plots import save_figure  # noqa: E402


def metric_bars(
    runs: dict[str, dict[str, float]], path: Path, title: str = "Probe metrics"
) -> Path:
    """Grouped bars: one group per metric, one bar per run."""
    metrics = list(dict.fromkeys(m for v in runs.values() for m in v))
    fig, ax = plt.subplots(
        figsize=(max(5, 1.4 * len(metrics) * max(1, len(runs)) ** 0.5), 3.8), dpi=120
    )
    width = 0.8 / max(1, len(runs))
    x = np.arange(len(metrics))
    for i, (label, vals) in enumerate(runs.items()):
        ys = [vals.get(m, np.nan) for m in metrics]
        bars = ax.bar(x + (i - (len(runs) - 1) / 2) * width, ys, width, label=label)
        ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=1)
    ax.set_xticks(x, metrics)
    ax.set_ylim(0, 1.08)
    ax.set_ylabel("score")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return save_figure(fig, path)


def confusion(
    cm: list[list[int]], classes: list[str], path: Path, title: str = "Confusion matrix (test)"
) -> Path:
    a = np.asarray(cm)
    k = len(classes)
    fig, ax = plt.subplots(figsize=(max(4, 0.45 * k + 2.5), max(3.5, 0.45 * k + 2)), dpi=120)
    im = ax.imshow(a, cmap="Blues")
    ax.set_xticks(range(k), classes, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(k), classes, fontsize=7)
    if k <= 30:
        for i in range(k):
            for j in range(k):
                ax.text(
                    j,
                    i,
                    str(a[i, j]),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if a[i, j] > a.max() / 2 else "black",
                )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046)
    return save_figure(fig, path)


# Sensors whose pixels are display colours already (8-bit photographs): shown as they are, not stretched.
AS_IS_SENSORS = ("rgb",)


def display_scale(selection) -> float | None:
    """DN -> [0, 1] display factor for imagery shown as it is (RGB photographs), None for stretched sensors."""
    return selection.sensor.scale if selection.sensor.key in AS_IS_SENSORS else None


def true_colour(
    image: torch.Tensor, rgb: list[int] | None, as_is: float | None = None
) -> np.ndarray:
    """(C, H, W) DN -> (H, W, 3) in [0, 1]: the selection's red, green, blue bands (first band as grey when
    it has none). With `as_is` (a DN -> [0, 1] factor, see `display_scale`) the image is shown as it is:
    a photograph's colours are its own, and any per-band stretch would tint it (green meadows turn pink
    when the red band's low end is subtracted less than the green's). Otherwise each band's 2nd
    percentile is subtracted (removes the haze offset, strong in the blue of top-of-atmosphere L1C),
    then one joint scale maps the 98th percentile to white (keeps the hue)."""
    x = torch.nan_to_num(image.float())
    chans = x[rgb] if rgb is not None else x[:1].expand(3, -1, -1)
    if as_is is not None:
        return (chans * as_is).clamp(0, 1).permute(1, 2, 0).numpy()
    lo = torch.quantile(chans.flatten(1), 0.02, dim=1).view(3, 1, 1)
    shifted = chans - lo
    hi = torch.quantile(shifted.flatten(), 0.98).clamp(min=1e-6)
    return (shifted / hi).clamp(0, 1).permute(1, 2, 0).numpy()


def sample_grid(
    images: list[torch.Tensor],
    titles: list[str],
    correct: list[bool],
    rgb: list[int] | None,
    path: Path,
    title: str = "Test samples",
    as_is: float | None = None,
) -> Path:
    """True-colour renders (`true_colour`; `as_is` for photographs) with true label / prediction, framed
    green when correct, red when not."""
    n = len(images)
    cols = min(4, max(1, n))
    rows = max(1, -(-n // cols))
    lines = max(t.count("\n") + 1 for t in titles) if titles else 1
    fig, axes = plt.subplots(
        rows,
        cols,
        figsize=(3.0 * cols, rows * (2.6 + 0.11 * lines)),
        dpi=120,
        squeeze=False,
        layout="constrained",
    )
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, t, ok in zip(axes.flat, images, titles, correct, strict=False):
        ax.imshow(true_colour(img, rgb, as_is))
        ax.set_title(t, fontsize=5.5, loc="left", color="darkgreen" if ok else "firebrick")
        ax.axis("on")
        ax.set_xticks([])
        ax.set_yticks([])
        for s in ax.spines.values():
            s.set_color("green" if ok else "red")
            s.set_linewidth(3)
    fig.suptitle(title, fontsize=9)
    fig.savefig(path)
    plt.close(fig)
    return path


def label_efficiency(
    rows: list[dict], metric: str, path: Path, title: str = "Label efficiency"
) -> Path:
    """Metric vs label fraction (log x) per initialisation: mean line, min-max band over seeds."""
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for init in sorted({r["init"] for r in rows}):
        rs = sorted((r for r in rows if r["init"] == init), key=lambda r: r["fraction"])
        x = [r["fraction"] for r in rs]
        mean = [r["mean"] for r in rs]
        (line,) = ax.plot(x, mean, marker="o", label=f"{init} (mean of {rs[0]['seeds']} seeds)")
        ax.fill_between(
            x, [r["min"] for r in rs], [r["max"] for r in rs], color=line.get_color(), alpha=0.2
        )
    ax.set_xscale("log")
    fr = sorted({r["fraction"] for r in rows})
    ax.set_xticks(fr, [f"{f:g}" for f in fr])
    ax.minorticks_off()
    ax.set_xlabel("fraction of training labels")
    ax.set_ylabel(f"test {metric}")
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def heatmap(
    matrix: np.ndarray, names: list[str], path: Path, title: str = "Probe F1 by augmentation pair"
) -> Path:
    k = len(names)
    fig, ax = plt.subplots(figsize=(max(4, 0.6 * k + 2), max(3.5, 0.6 * k + 1.5)), dpi=120)
    im = ax.imshow(matrix, cmap="viridis")
    ax.set_xticks(range(k), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(k), names, fontsize=8)
    for i in range(k):
        for j in range(k):
            if not np.isnan(matrix[i, j]):
                ax.text(
                    j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=7, color="white"
                )
    ax.set_title("\n".join(textwrap.wrap(title, 45)), fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046)
    return save_figure(fig, path)
