"""The training loader under Lightning: each epoch draws new patches, the same with or without workers."""

import lightning as L
import torch

from rs_ssl.bands import resolve_bands
from rs_ssl.data import pretrain_dataset
from rs_ssl.data.loader import EpochSampler, ResumableLoader


class _Record(L.LightningModule):
    """Records the patches it is fed, per epoch; trains a dummy parameter."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))
        self.seen: dict[int, list[float]] = {}

    def training_step(self, batch, idx):
        self.seen.setdefault(self.current_epoch, []).extend(
            batch["image"].double().sum((1, 2, 3)).tolist()
        )
        return self.w * 0 + self.w.sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _patches_per_epoch(workers: int) -> dict[int, list[float]]:
    ds, _ = pretrain_dataset(None, "auto", resolve_bands(13), patch=16, samples_per_epoch=8, seed=5)
    loader = ResumableLoader(
        ds,
        batch_size=4,
        sampler=EpochSampler(len(ds), seed=5, dataset=ds),
        num_workers=workers,
        generator=torch.Generator(),
    )
    module = _Record()
    L.Trainer(
        max_epochs=3,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    ).fit(module, loader)
    return module.seen


def test_every_epoch_draws_new_patches_and_workers_change_nothing():
    in_process = _patches_per_epoch(0)
    with_workers = _patches_per_epoch(2)
    assert with_workers == in_process
    epochs = [sorted(v) for v in in_process.values()]
    assert len(epochs) == 3 and epochs[0] != epochs[1] != epochs[2] and epochs[0] != epochs[2]
