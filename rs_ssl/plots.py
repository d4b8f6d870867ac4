"""Figures written into run folders (matplotlib, Agg backend: works headless)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def save_figure(fig, path: Path) -> Path:
    """Lay out, write and close a figure (closing frees it: reports draw many)."""
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def loss_curve(
    series: dict[str, tuple[list[int], list[float]]],
    path: Path,
    title: str = "Pretraining loss",
    milestones: dict[str, int] | None = None,
) -> Path:
    """Plot one or more (steps, losses) curves with a smoothed overlay and optional milestones."""
    fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
    for label, (steps, losses) in series.items():
        (line,) = ax.plot(steps, losses, alpha=0.35, lw=1)
        if len(losses) >= 5:
            w = max(2, len(losses) // 20)
            sm = [
                sum(losses[max(0, i - w + 1) : i + 1]) / len(losses[max(0, i - w + 1) : i + 1])
                for i in range(len(losses))
            ]
            ax.plot(
                steps, sm, color=line.get_color(), lw=2, label=f"{label} (moving mean, {w} steps)"
            )
        else:
            line.set_label(label)
    for name, step in (milestones or {}).items():
        ax.axvline(step, color="grey", ls=":", lw=1)
        ax.text(step, ax.get_ylim()[1], f" {name}", va="top", fontsize=7, color="grey", rotation=90)
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)
