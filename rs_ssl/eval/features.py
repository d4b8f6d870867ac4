"""Backbones for evaluation (a pretraining run folder, a .safetensors file, or random init) and
frozen-feature extraction."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from rs_ssl.bands import BandSelection, load_stats, resolve_bands
from rs_ssl.data import resolve_data_bands
from rs_ssl.data.normalize import Normalize
from rs_ssl.errors import DataError, RsSslError, UsageError
from rs_ssl.models.backbone import create_backbone, load_weights, weights_file, weights_metadata
from rs_ssl.models.transfer import describe, mapping_record, transfer_state


@dataclass
class LoadedBackbone:
    model: nn.Module
    selection: BandSelection
    name: str
    source: str  # "random-init" or the weights file
    method: str | None
    transfer: dict | None = None  # the band mapping when the weights were trained on other bands


def native_bands(data, fmt: str, sensor: str | None) -> BandSelection | None:
    """The data's own bands (what `--bands auto` reads), or None where the data cannot tell them."""
    try:
        return resolve_data_bands("auto", sensor, data, fmt)
    except (UsageError, DataError):
        return None


def eval_bands(
    bands: str, sensor: str | None, data, fmt: str, trained: BandSelection | None
) -> BandSelection:
    """The bands a model reads from `data`: an explicit `--bands`; else the weights' own bands when the data
    holds them all; else the data's own bands (the weights' first layer is then transferred)."""
    if trained is None or str(bands).strip().lower() != "auto":
        # The data layer resolves counts, lists and `auto`, and says why when the data cannot tell.
        return resolve_data_bands(bands, sensor, data, fmt)
    found = native_bands(data, fmt, sensor)
    if found is None or set(trained.names) <= set(found.names):
        return trained
    return found


def load_backbone(
    checkpoint: str | None,
    random_init: bool,
    backbone: str,
    bands: str,
    sensor: str | None,
    seed: int = 0,
    *,
    data=None,
    fmt: str = "auto",
    verbose: bool = True,
) -> LoadedBackbone:
    """The backbone to evaluate on `data`. A checkpoint's safetensors metadata (`timm_model`, `bands`,
    `sensor`) overrides `backbone`; when the data lacks some of its bands (or `--bands` names others),
    its first layer is moved to the data's bands by name, then wavelength (`rs_ssl.models.transfer`),
    and the mapping is printed."""
    if random_init == (checkpoint is not None):
        raise UsageError("give exactly one of --checkpoint RUN_OR_WEIGHTS and --random-init")
    if random_init:
        selection = eval_bands(bands, sensor, data, fmt, None)
        torch.manual_seed(seed)
        return LoadedBackbone(
            create_backbone(backbone, selection), selection, backbone, "random-init", None
        )
    path = weights_file(checkpoint)
    meta = weights_metadata(path)
    name = meta.get("timm_model", backbone)
    trained = resolve_bands(meta["bands"], meta.get("sensor")) if meta.get("bands") else None
    selection = eval_bands(bands, sensor, data, fmt, trained)
    state = load_weights(path)
    model = create_backbone(name, selection)
    transfer = None
    if trained is not None and trained.names != selection.names:
        state, maps = transfer_state(model, state, trained, selection)
        transfer = mapping_record(trained, selection, maps)
        if verbose:
            print(describe(trained, selection, maps))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise RsSslError(
            f"{path}: weights do not fit {name} with {len(selection)} bands: missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
    return LoadedBackbone(model, selection, name, str(path), meta.get("method"), transfer)


class FrozenEncoder(nn.Module):
    """Normalise DN then run the backbone; always in eval mode, never builds a graph."""

    def __init__(self, backbone: nn.Module, selection: BandSelection):
        super().__init__()
        self.normalize = Normalize(selection, load_stats(selection))
        self.backbone = backbone
        self.backbone.requires_grad_(False)

    def train(self, mode: bool = True) -> FrozenEncoder:  # BatchNorm statistics must not move
        return super().train(False)

    @torch.inference_mode()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(self.normalize(x)).float()


def extract(
    encoder: FrozenEncoder,
    dataset: Dataset,
    batch_size: int,
    device: torch.device,
    progress=None,
    description: str = "features",
) -> tuple[torch.Tensor, torch.Tensor]:
    """(features (N, D) float32 on CPU, labels) of every item, in order; bf16 autocast on GPU."""
    encoder = encoder.to(device).eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0)
    feats, labels = [], []
    task = progress.add_task(description, total=len(loader)) if progress is not None else None
    for batch in loader:
        x = batch["image"].to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            feats.append(encoder(x).cpu())
        labels.append(batch["label"])
        if task is not None:
            progress.advance(task)
    return torch.cat(feats), torch.cat(labels)
