"""`rs-ssl report RUN_DIR...`: collect pretrain / probe / finetune / augsearch runs into report.md and
report.html with PNG figures (copied or drawn into `--out/figures`)."""

from __future__ import annotations

import html
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rs_ssl.config import ReportConfig, default_out
from rs_ssl.errors import UsageError
from rs_ssl.eval import figures
from rs_ssl.eval.protocol import HEADLINE, task_name
from rs_ssl.plots import loss_curve
from rs_ssl.runs import (
    atomic_write_text,
    losses_of,
    prepare_out,
    read_run,
    write_config,
    write_metrics,
)


def _fmt(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, float) else "–" if v is None else str(v)


class Doc:
    """Blocks rendered to both Markdown and HTML."""

    def __init__(self, title: str):
        self.title, self.blocks = title, []

    def h(self, text: str) -> None:
        self.blocks.append(("h", text))

    def p(self, text: str) -> None:
        self.blocks.append(("p", text))

    def table(self, header: list[str], rows: list[list[Any]]) -> None:
        self.blocks.append(("table", header, [[_fmt(c) for c in r] for r in rows]))

    def img(self, rel: str, caption: str) -> None:
        self.blocks.append(("img", rel, caption))

    def markdown(self) -> str:
        out = [f"# {self.title}", ""]
        for b in self.blocks:
            if b[0] == "h":
                out += [f"## {b[1]}", ""]
            elif b[0] == "p":
                out += [b[1], ""]
            elif b[0] == "table":
                out += ["| " + " | ".join(b[1]) + " |", "|" + "---|" * len(b[1])]
                out += ["| " + " | ".join(r) + " |" for r in b[2]] + [""]
            else:
                out += [f"![{b[2]}]({b[1]})", f"*{b[2]}*", ""]
        return "\n".join(out)

    def html(self) -> str:
        e = html.escape
        out = [
            "<!doctype html><html><head><meta charset='utf-8'>",
            f"<title>{e(self.title)}</title>",
            "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}img{max-width:100%}"
            "figcaption{color:#555;font-size:90%}</style></head><body>",
            f"<h1>{e(self.title)}</h1>",
        ]
        for b in self.blocks:
            if b[0] == "h":
                out.append(f"<h2>{e(b[1])}</h2>")
            elif b[0] == "p":
                out.append(f"<p>{e(b[1])}</p>")
            elif b[0] == "table":
                out.append("<table><tr>" + "".join(f"<th>{e(c)}</th>" for c in b[1]) + "</tr>")
                out += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in b[2]]
                out.append("</table>")
            else:
                out.append(
                    f"<figure><img src='{e(b[1])}' alt='{e(b[2])}'><figcaption>{e(b[2])}</figcaption></figure>"
                )
        out.append("</body></html>")
        return "\n".join(out)


def _pretrain_section(doc: Doc, runs: list[dict], fig_dir: Path) -> list[str]:
    series, milestones, rows = {}, {}, []
    for r in runs:
        steps, losses = losses_of(r["path"])
        m = r["metrics"]
        label = f"{r['name']} ({m.get('method')}, {r['config'].get('optimizer') or 'default opt'}, lr {r['config'].get('lr') or 'default'})"
        if steps:
            series[label] = (steps, losses)
        rows.append(
            [
                r["name"],
                m.get("method"),
                m.get("backbone"),
                m.get("steps"),
                m.get("first_loss"),
                m.get("final_loss"),
            ]
        )
        epochs, n = m.get("epochs_completed") or 0, m.get("steps") or 0
        if not milestones and epochs > 1 and n:
            milestones = {f"epoch {e}": e * n // epochs for e in range(1, min(epochs, 10))}
    doc.table(["run", "method", "backbone", "steps", "first loss", "final loss"], rows)
    if not series:
        doc.p("No logged losses were found (loss_history.csv or logs/*/metrics.csv).")
        return []
    path = loss_curve(
        series,
        fig_dir / "loss_curves.png",
        title="Pretraining loss" + (" (overlaid runs)" if len(series) > 1 else ""),
        milestones=milestones,
    )
    doc.img(
        f"figures/{path.name}",
        "Pretraining loss per optimiser step" + (", epoch ends dotted" if milestones else ""),
    )
    return [path.name]


def _embed_run_figure(doc: Doc, run: dict, figure: str, fig_dir: Path, caption: str) -> list[str]:
    """Copy `figure` from a run folder into the report's figures (prefixed by the run name) and show
    it; the names of the figures copied ([] when the run has none)."""
    src = run["path"] / figure
    if not src.is_file():
        return []
    dst = fig_dir / f"{run['name']}_{src.name}"
    shutil.copyfile(src, dst)
    doc.img(f"figures/{dst.name}", f"{run['name']}: {caption}")
    return [dst.name]


def _probe_section(doc: Doc, runs: list[dict], fig_dir: Path) -> list[str]:
    made = []
    for ml, keys in HEADLINE.items():
        task = task_name(ml)
        sel = [r for r in runs if r["metrics"].get("task") == task]
        if not sel:
            continue
        rows, bars = [], {}
        for r in sel:
            m = r["metrics"]
            rows.append(
                [
                    r["name"],
                    m["backbone"]["weights"],
                    *[m.get(k) for k in keys],
                    *([m["knn"].get(keys[-1])] if "knn" in m else ["–"]),
                ]
            )
            bars[r["name"]] = {k: m[k] for k in keys}
        doc.table(["run", "weights", *keys, f"k-NN {keys[-1]}"], rows)
        name = f"probe_metrics_{task}.png"
        figures.metric_bars(bars, fig_dir / name, title=f"Linear probe, {task} (test split)")
        doc.img(f"figures/{name}", f"Probe metrics per run ({task}, test split)")
        made.append(name)
    for r in runs:
        for fig, caption in (
            (
                "samples.png",
                "correctly (green) and incorrectly (red) classified test samples, true colour",
            ),
            ("confusion.png", "confusion matrix on the test split"),
        ):
            made += _embed_run_figure(doc, r, fig, fig_dir, caption)
    return made


def _finetune_run(doc: Doc, r: dict, fig_dir: Path) -> list[str]:
    m = r["metrics"]
    doc.p(
        f"{r['name']}: test {m['metric']} by label fraction, mean ± std over {m['seeds']} seeds; "
        "plateau = first epoch within 0.01 of the curve's best validation value."
    )
    # metrics.json key -> column title
    columns = {"init": "init", "fraction": "fraction", "train_samples": "train labels"}
    columns |= {"mean": f"{m['metric']} mean", "std": "std", "min": "min", "max": "max"}
    columns |= {"plateau_epoch": "plateau epoch"}
    doc.table(list(columns.values()), [[t[k] for k in columns] for t in m["table"]])
    caption = "label-efficiency curves (pretrained vs scratch, band: min–max over seeds)"
    return _embed_run_figure(doc, r, "label_efficiency.png", fig_dir, caption)


def _augsearch_run(doc: Doc, r: dict, fig_dir: Path) -> list[str]:
    ranking = r["metrics"].get("ranking", [])
    doc.table(
        ["rank", "augmentation", "mean F1 of its pairs"],
        [[i + 1, a["augmentation"], a["mean_f1"]] for i, a in enumerate(ranking)],
    )
    caption = "probe F1 for each pair of augmentations"
    return _embed_run_figure(doc, r, "heatmap.png", fig_dir, caption)


def _each_run(body: Callable[[Doc, dict, Path], list[str]]):
    """A section that writes `body` for each of its runs in turn."""

    def section(doc: Doc, runs: list[dict], fig_dir: Path) -> list[str]:
        return [name for r in runs for name in body(doc, r, fig_dir)]

    return section


# The report's sections in order: the command whose run folders each shows -> (heading, writer of
# the section over all those runs: its tables and figures; returns the figures' names).
SECTIONS = {
    "pretrain": ("Pretraining", _pretrain_section),
    "probe": ("Linear probes (frozen features)", _probe_section),
    "finetune": ("Label efficiency (fine-tuning)", _each_run(_finetune_run)),
    "augsearch": ("Augmentation search", _each_run(_augsearch_run)),
}


def report(cfg: ReportConfig) -> dict[str, Any]:
    """Write report.md, report.html and figures/ for the given run folders."""
    if not cfg.runs:
        raise UsageError("give one or more run folders: rs-ssl report RUN_DIR...")
    runs = [read_run(Path(p)) for p in cfg.runs]
    out = prepare_out(cfg.out or default_out("report"))
    write_config(out, "report", cfg)
    fig_dir = out / "figures"
    fig_dir.mkdir(exist_ok=True)
    doc = Doc("rs-ssl report")
    doc.p("Runs: " + ", ".join(f"{r['name']} ({r['command']})" for r in runs))
    unknown = [r["name"] for r in runs if r["command"] not in SECTIONS]
    made: list[str] = []
    for command, (heading, section) in SECTIONS.items():
        if chosen := [r for r in runs if r["command"] == command]:
            doc.h(heading)
            made += section(doc, chosen, fig_dir)
    if unknown:
        doc.p(f"Not shown (no report section for their command): {', '.join(unknown)}")
    atomic_write_text(out / "report.md", doc.markdown())
    atomic_write_text(out / "report.html", doc.html())
    metrics = {
        "command": "report",
        "runs": {r["name"]: r["command"] for r in runs},
        "figures": made,
        "outputs": {"markdown": str(out / "report.md"), "html": str(out / "report.html")},
    }
    write_metrics(out, metrics)
    print(
        f"report: {len(runs)} run(s), {len(made)} figure(s) -> {out / 'report.md'}, {out / 'report.html'}"
    )
    return metrics
