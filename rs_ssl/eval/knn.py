"""k-nearest-neighbour classification of frozen features: the one definition behind `rs-ssl probe
--knn` and the online monitor of `rs-ssl pretrain` (`methods/online_knn.py`).

Cosine similarity, uniform votes: a query's class scores are the fraction of its k nearest bank
features of each class (single-label) or carrying each label (multi-label). With `leave_one_out`
the query set is the bank itself and a sample never counts as its own neighbour.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rs_ssl.eval import metrics as M


def knn_scores(
    bank_x: torch.Tensor,
    bank_y: torch.Tensor,
    query: torch.Tensor | None,
    k: int,
    num_classes: int,
    multilabel: bool,
) -> torch.Tensor:
    """(N, K) class scores of `query` from its k nearest rows of `bank_x`; `query=None` scores the
    bank itself leave-one-out. k is capped at the bank's size (minus one when leaving one out)."""
    bank = F.normalize(bank_x.float(), dim=1)
    if query is None:
        sim = bank @ bank.T
        sim.fill_diagonal_(float("-inf"))
        k = max(1, min(k, len(bank) - 1))
    else:
        sim = F.normalize(query.float(), dim=1) @ bank.T
        k = min(k, len(bank))
    idx = sim.topk(k, dim=1).indices
    if multilabel:
        return bank_y.float()[idx].mean(1)
    return F.one_hot(bank_y[idx], num_classes).float().mean(1)


def knn_metric(scores: torch.Tensor, y: torch.Tensor, multilabel: bool) -> float:
    """Accuracy (single-label) or micro F1 with a label predicted at >= half the votes (multi-label):
    the online monitor's threshold-free summary; `rs-ssl probe` chooses its threshold on validation."""
    if multilabel:
        return M.f1_scores(y > 0.5, scores >= 0.5)[0]
    return float((scores.argmax(1) == y).double().mean())
