"""Online k-NN accuracy during pretraining: how well do current features separate labelled classes?

At every epoch end the backbone (eval mode, no gradients) embeds a labelled set once, and each
sample is classified by its k nearest other samples (leave-one-out, cosine similarity, uniform
votes; the same scoring as `rs-ssl probe --knn`). Single-label data reports accuracy, multi-label
data micro F1 at a 0.5 vote threshold.
"""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader, Dataset, Subset


def loo_knn_scores(
    x: torch.Tensor, y: torch.Tensor, k: int, num_classes: int, multilabel: bool
) -> torch.Tensor:
    """Class scores of every row from its k nearest *other* rows (leave-one-out)."""
    x = torch.nn.functional.normalize(x.float(), dim=1)
    sim = x @ x.T
    sim.fill_diagonal_(float("-inf"))
    k = max(1, min(k, len(x) - 1))
    idx = sim.topk(k, dim=1).indices
    if multilabel:
        return y.float()[idx].mean(1)
    return torch.nn.functional.one_hot(y[idx], num_classes).float().mean(1)


def knn_metric(scores: torch.Tensor, y: torch.Tensor, multilabel: bool) -> float:
    if multilabel:
        pred = scores >= 0.5
        tp = (pred & (y > 0.5)).sum().item()
        fp = (pred & (y <= 0.5)).sum().item()
        fn = (~pred & (y > 0.5)).sum().item()
        return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    return (scores.argmax(1) == y).float().mean().item()


class OnlineKNN(Callback):
    """Logs `train/knn_accuracy` (or `train/knn_f1_micro`) at every epoch end; keeps the history."""

    def __init__(
        self,
        dataset: Dataset,
        k: int = 20,
        batch_size: int = 64,
        max_samples: int = 2000,
        seed: int = 0,
    ):
        if len(dataset) > max_samples:
            g = torch.Generator().manual_seed(seed)
            dataset = Subset(
                dataset, torch.randperm(len(dataset), generator=g)[:max_samples].tolist()
            )
        self.dataset, self.k, self.batch_size = dataset, k, batch_size
        base = dataset.dataset if isinstance(dataset, Subset) else dataset
        self.classes, self.multilabel = list(base.classes), bool(base.multilabel)
        self.key = "train/knn_f1_micro" if self.multilabel else "train/knn_accuracy"
        self.history: list[dict[str, Any]] = []

    @torch.no_grad()
    def on_train_epoch_end(self, trainer, pl_module) -> None:
        backbone = pl_module.backbone
        was_training = backbone.training
        backbone.eval()
        feats, labels = [], []
        try:
            # Own generator: creating a loader iterator must not draw from the global RNG (exact resume).
            loader = DataLoader(
                self.dataset, batch_size=self.batch_size, num_workers=0, generator=torch.Generator()
            )
            for batch in loader:
                x = pl_module.normalize(batch["image"].to(pl_module.device))
                feats.append(backbone(x).float().cpu())
                labels.append(batch["label"])
        finally:
            backbone.train(was_training)
        x, y = torch.cat(feats), torch.cat(labels)
        value = knn_metric(
            loo_knn_scores(x, y, self.k, len(self.classes), self.multilabel), y, self.multilabel
        )
        self.history.append(
            {
                "epoch": trainer.current_epoch,
                "step": trainer.global_step,
                self.key.split("/")[1]: value,
            }
        )
        pl_module.log(self.key, value, on_step=False, on_epoch=True, rank_zero_only=True)

    def state_dict(self) -> dict[str, Any]:
        return {"history": [dict(h) for h in self.history]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history = list(state.get("history", []))
