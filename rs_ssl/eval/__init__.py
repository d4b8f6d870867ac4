"""Evaluation: linear probe and k-NN on frozen features, fine-tuning by label fraction, reports.

The command entry points import their modules lazily so that `rs-ssl --help` stays fast.
"""

from __future__ import annotations

from typing import Any


def probe(cfg) -> dict[str, Any]:
    """`rs-ssl probe`: linear probe (and k-NN) on frozen features."""
    from rs_ssl.eval.probing import probe as _probe

    return _probe(cfg)


def finetune(cfg) -> dict[str, Any]:
    """`rs-ssl finetune`: label-efficiency experiment, pretrained vs random initialisation."""
    from rs_ssl.eval.finetuning import finetune as _finetune

    return _finetune(cfg)


def report(cfg) -> dict[str, Any]:
    """`rs-ssl report RUN_DIR...`: report.md and report.html with figures."""
    from rs_ssl.eval.reporting import report as _report

    return _report(cfg)


def augsearch(cfg) -> dict[str, Any]:
    """`rs-ssl augsearch`: probe F1 for every pair of augmentations, heatmap and ranking."""
    from rs_ssl.eval.augment_search import augsearch as _augsearch

    return _augsearch(cfg)
