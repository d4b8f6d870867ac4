"""Backbones for evaluation (a pretraining run folder, a .safetensors file, or random init) and
frozen-feature extraction."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from rs_ssl.bands import BandSelection, load_stats, resolve_bands
from rs_ssl.errors import RsSslError, UsageError
from rs_ssl.methods.base import Normalize
from rs_ssl.models.backbone import create_backbone, load_weights


@dataclass
class LoadedBackbone:
    model: nn.Module
    selection: BandSelection
    name: str
    source: str  # "random-init" or the weights file
    method: str | None


def weights_file(checkpoint: str | Path) -> Path:
    """`--checkpoint`: a run folder (its backbone.safetensors) or a weights file."""
    p = Path(checkpoint)
    if p.is_dir():
        f = p / "backbone.safetensors"
        if not f.is_file():
            raise UsageError(f"--checkpoint {p}: no backbone.safetensors in this folder; give a pretraining run folder or a weights file")
        return f
    if not p.is_file():
        raise UsageError(f"--checkpoint {p}: no such file or folder")
    return p


def _metadata(path: Path) -> dict[str, str]:
    if path.suffix != ".safetensors":
        return {}
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


def load_backbone(checkpoint: str | None, random_init: bool, backbone: str, bands: str, sensor: str | None,
                  seed: int = 0) -> LoadedBackbone:
    """The backbone to evaluate. A checkpoint's safetensors metadata (`timm_model`, `bands`, `sensor`)
    overrides `backbone`/`bands`, so the probe uses exactly the bands the model was trained on."""
    if random_init == (checkpoint is not None):
        raise UsageError("give exactly one of --checkpoint RUN_OR_WEIGHTS and --random-init")
    if random_init:
        selection = resolve_bands(bands, sensor)
        torch.manual_seed(seed)
        return LoadedBackbone(create_backbone(backbone, selection), selection, backbone, "random-init", None)
    path = weights_file(checkpoint)
    meta = _metadata(path)
    name = meta.get("timm_model", backbone)
    if not meta.get("bands") and bands == "auto":
        raise UsageError(f"{path}: the weights carry no band metadata; give --bands (a count or band names)")
    selection = resolve_bands(meta["bands"], meta.get("sensor")) if meta.get("bands") else resolve_bands(bands, sensor)
    if meta.get("bands") and bands not in ("auto", "13", str(len(selection))) and resolve_bands(bands, sensor).names != selection.names:
        raise UsageError(f"--bands {bands}: {path} was trained on {','.join(selection.names)}; leave --bands out or give those")
    model = create_backbone(name, selection)
    state = load_weights(path)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise RsSslError(f"{path}: weights do not fit {name} with {len(selection)} bands: missing {missing[:3]}, unexpected {unexpected[:3]}")
    return LoadedBackbone(model, selection, name, str(path), meta.get("method"))


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


def extract(encoder: FrozenEncoder, dataset: Dataset, batch_size: int, device: torch.device,
            progress=None, description: str = "features") -> tuple[torch.Tensor, torch.Tensor]:
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
