"""`rs-ssl augsearch`: which augmentations help? A short pretraining run and a linear probe for every
pair of augmentations (and each one alone, on the diagonal), as in the SimCLR paper's Figure 5
heatmap; the ranking averages each augmentation's probe F1 over every run that uses it.

`--augs simclr-s2` follows the SimCLR-S2 study instead: every pair of its nine ops (both applied to
every view, `pretrain --augs simclr-s2:a+b`), scored by fine-tuning on a few percent of the labels
with `--evaluate finetune`; `--drop-bottom 0.25` then lists the lowest quarter of the pairs in
excluded_pairs.txt, the study's way to its nine excluded pairs. Not reproduced: the study averages the
F1 of its two binary irrigation labels (regular and extended); rs-ssl scores the dataset's own labels."""

from __future__ import annotations

import dataclasses
import itertools
import math
import statistics
from pathlib import Path
from typing import Any

import numpy as np

from rs_ssl.config import AugsearchConfig, FinetuneConfig, PretrainConfig, ProbeConfig, default_out
from rs_ssl.errors import UsageError
from rs_ssl.eval import figures
from rs_ssl.eval.protocol import task_name
from rs_ssl.runs import atomic_write_text, prepare_out, write_config, write_metrics


def pairs(augs: list[str]) -> list[tuple[str, str]]:
    """Every unordered pair, and each augmentation alone as (a, a)."""
    return [(a, a) for a in augs] + list(itertools.combinations(augs, 2))


def study_names(augs: str) -> list[str] | None:
    """`--augs simclr-s2[:a,b,...]`: the SimCLR-S2 slots searched (all nine by default); None otherwise."""
    from rs_ssl.augment.presets import SIMCLR_S2, SIMCLR_S2_SLOTS

    if augs != SIMCLR_S2 and not augs.startswith(SIMCLR_S2 + ":"):
        return None
    names = (
        [a.strip() for a in augs.split(":", 1)[1].split(",") if a.strip()]
        if ":" in augs
        else list(SIMCLR_S2_SLOTS)
    )
    bad = [a for a in names if a not in SIMCLR_S2_SLOTS]
    if bad or len(names) < 2 or len(set(names)) != len(names):
        raise UsageError(
            f"--augs {augs}: give two or more distinct names of SimCLR-S2's ops ({', '.join(SIMCLR_S2_SLOTS)})"
        )
    return names


def bottom_pairs(scores: dict[tuple[str, str], float], drop_bottom: float) -> list[tuple[str, str]]:
    """The lowest-scored `drop_bottom` fraction of the pairs (floor: 0.25 of 36 pairs drops 9), worst first."""
    n_drop = math.floor(drop_bottom * len(scores) + 1e-9)
    return sorted(scores, key=lambda p: scores[p])[:n_drop]


def rank(augs: list[str], scores: dict[tuple[str, str], float]) -> list[dict]:
    """Augmentations by the mean score of the runs that use them, best first (ties: list order)."""
    rows = []
    for a in augs:
        vals = [v for (x, y), v in scores.items() if a in (x, y)]
        rows.append({"augmentation": a, "mean_f1": statistics.fmean(vals), "runs": len(vals)})
    return sorted(rows, key=lambda r: -r["mean_f1"])


def keep_after_drop(ranking: list[dict], drop_bottom: float) -> list[str]:
    """The ranking without its lowest `drop_bottom` fraction (floor, so 0.25 of 4 drops one)."""
    n_drop = math.floor(drop_bottom * len(ranking) + 1e-9)
    return [r["augmentation"] for r in ranking[: len(ranking) - n_drop]]


def matrix(augs: list[str], scores: dict[tuple[str, str], float]) -> np.ndarray:
    m = np.full((len(augs), len(augs)), np.nan)
    for (a, b), v in scores.items():
        i, j = augs.index(a), augs.index(b)
        m[i, j] = m[j, i] = v
    return m


def _shared(cfg: AugsearchConfig) -> dict[str, Any]:
    """Options every pair's pretraining and evaluation share."""
    keys = ("bands", "sensor", "seed", "devices", "skip_bad", "size")
    return {k: getattr(cfg, k) for k in keys}


def _pair_base(cfg: AugsearchConfig) -> PretrainConfig:
    """The pretraining every pair runs, before its own augmentations, folder and length: the data
    (PretrainConfig's default split), method and batch of `cfg`, without DataLoader workers."""
    return PretrainConfig(
        **_shared(cfg),
        data=cfg.data,
        format=cfg.format,
        region=cfg.region,
        zoom=cfg.zoom,
        method=cfg.method,
        backbone=cfg.backbone,
        batch_size=cfg.batch_size,
        workers=0,
    )


def _pretrain_samples(base: PretrainConfig, selection) -> int | None:
    """Number of samples each pair pretrains on: a patch/image dataset's training split where it
    defines one, else all of it (None for large rasters, which are sampled randomly); read the way
    `rs-ssl pretrain` reads `base`'s data."""
    from rs_ssl.training import pretrain_data

    _, info = pretrain_data(base, selection, samples_per_epoch=base.batch_size)
    return info.get("samples")


def augsearch(cfg: AugsearchConfig) -> dict[str, Any]:
    """Run every pair, write heatmap.png, the ranking and (with --drop-bottom) augmentations.txt."""
    from rs_ssl.augment.presets import AUG_NAMES
    from rs_ssl.data import resolve_data_bands
    from rs_ssl.eval.finetuning import finetune
    from rs_ssl.eval.probing import probe
    from rs_ssl.training import train as pretrain

    study = study_names(cfg.augs)
    augs = study or [a.strip() for a in cfg.augs.split(",") if a.strip()]
    bad = [] if study else [a for a in augs if a not in AUG_NAMES]
    if bad:
        raise UsageError(
            f"--augs: unknown augmentation(s) {', '.join(bad)}; valid names: {', '.join(AUG_NAMES)}"
        )
    if len(augs) < 2 or len(set(augs)) != len(augs):
        raise UsageError(f"--augs {cfg.augs}: give two or more distinct augmentations")
    if "crop" in augs and "resized_crop" in augs:
        raise UsageError(
            "--augs: `crop` and `resized_crop` cannot form a pair (a view has one crop); keep one"
        )
    out = prepare_out(cfg.out or default_out("augsearch"))
    selection = resolve_data_bands(cfg.bands, cfg.sensor, cfg.data, cfg.format, cfg.zoom)
    base = _pair_base(cfg)
    n = _pretrain_samples(base, selection)
    subset = None if n is None else max(cfg.batch_size, round(cfg.fraction * n))
    if subset is not None and subset > n:
        raise UsageError(
            f"--batch-size {cfg.batch_size} is larger than the {n} pretraining samples; lower it"
        )
    steps_per_epoch = (subset // cfg.batch_size) if subset else 1
    # The SimCLR-S2 study trains each pair of its ops (both on every view); it runs no op alone.
    todo = list(itertools.combinations(augs, 2)) if study else pairs(augs)
    write_config(
        out, "augsearch", cfg, extra={"pretrain_samples": n, "subset": subset, "runs": len(todo)}
    )
    scores: dict[tuple[str, str], float] = {}
    runs = []
    key = None
    for a, b in todo:
        name = a if a == b else f"{a}+{b}"
        run_dir = Path(out) / "runs" / name
        pre = dataclasses.replace(
            base,
            out=str(run_dir / "pretrain"),
            epochs=math.ceil(cfg.steps / steps_per_epoch),
            max_steps=cfg.steps,
            samples_per_epoch=cfg.steps * cfg.batch_size if subset is None else 512,
            subset=subset,
            augs=f"simclr-s2:{a}+{b}" if study else ",".join(dict.fromkeys([a, b])),
        )
        pretrain(pre)
        common = dict(
            **_shared(cfg),
            data=cfg.probe_data or cfg.data,
            format="auto",
            checkpoint=str(run_dir / "pretrain"),
            dataset=cfg.dataset,
        )
        if cfg.evaluate == "finetune":
            # The study's score: fine-tuning on a few percent of the labels, one seed per pair.
            m = finetune(
                FinetuneConfig(
                    **common,
                    out=str(run_dir / "finetune"),
                    label_fraction=str(cfg.label_fraction),
                    epochs=cfg.finetune_epochs,
                    seeds=1,
                )
            )
        else:
            m = probe(ProbeConfig(**common, out=str(run_dir / "probe")))
        key = "f1_micro" if m["task"] == task_name(True) else "f1"
        scores[(a, b)] = m[key]
        runs.append({"augs": [a, b] if a != b else [a], key: m[key], "folder": str(run_dir)})
    ranking = rank(augs, scores)
    fig = figures.heatmap(
        matrix(augs, scores),
        augs,
        out / "heatmap.png",
        title=f"Probe {key} after {cfg.steps} {cfg.method} steps per augmentation pair",
    )
    metrics: dict[str, Any] = {
        "command": "augsearch",
        "metric": key,
        "evaluate": cfg.evaluate,
        "protocol": "simclr-s2" if study else "pairs",
        "augs": augs,
        "fraction": cfg.fraction,
        "pretrain_samples": n,
        "subset": subset,
        "steps": cfg.steps,
        "runs": runs,
        "ranking": ranking,
        "matrix": matrix(augs, scores).tolist(),
        "figures": {"heatmap": str(fig)},
    }
    if cfg.drop_bottom > 0:
        keep = keep_after_drop(ranking, cfg.drop_bottom)
        atomic_write_text(out / "augmentations.txt", ",".join(keep) + "\n")
        metrics["selected"] = keep
        metrics["outputs"] = {"augmentations": str(out / "augmentations.txt")}
        if study:
            dropped = bottom_pairs(scores, cfg.drop_bottom)
            atomic_write_text(out / "excluded_pairs.txt", "".join(f"{a}+{b}\n" for a, b in dropped))
            metrics["excluded_pairs"] = [[a, b] for a, b in dropped]
            metrics["outputs"]["excluded_pairs"] = str(out / "excluded_pairs.txt")
    write_metrics(out, metrics)
    print(
        "augsearch ranking (mean probe "
        + key
        + "): "
        + ", ".join(f"{r['augmentation']} {r['mean_f1']:.3f}" for r in ranking)
        + (
            f"\n  full run: rs-ssl pretrain --augs {','.join(metrics['selected'])}"
            if "selected" in metrics
            else ""
        )
        + f"\n  run folder: {out}"
    )
    return metrics
