"""Online k-NN accuracy during pretraining: how well do current features separate labelled classes?

At every epoch end the backbone (eval mode, no gradients) embeds a labelled set once, and each
sample is classified by its k nearest other samples (leave-one-out, cosine similarity, uniform
votes; `rs_ssl.eval.knn`, the scoring of `rs-ssl probe --knn`). Single-label data reports accuracy, multi-label
data micro F1 at a 0.5 vote threshold.
"""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader, Dataset, Subset

from rs_ssl.eval.knn import knn_metric, knn_scores


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
        scores = knn_scores(x, y, None, self.k, len(self.classes), self.multilabel)
        value = knn_metric(scores, y, self.multilabel)
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
