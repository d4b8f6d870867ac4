"""Evaluation: linear probe, fine-tuning, reports (the evaluation issue; not built yet)."""

from rs_ssl.errors import NotImplementedYet


def probe(cfg) -> None:
    raise NotImplementedYet("probe", "evaluation")


def finetune(cfg) -> None:
    raise NotImplementedYet("finetune", "evaluation")


def report(cfg) -> None:
    raise NotImplementedYet("report", "evaluation")
