"""timm backbones with any number of input bands; local RGB weights adapted by wavelength."""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

import timm
import torch
from torch import nn

from rs_ssl.bands import BandSelection, resolve_bands
from rs_ssl.errors import RsSslError, UsageError
from rs_ssl.models.transfer import describe, transfer_state

_RGB_COMMON = ("red", "green", "blue")


def takes_img_size(name: str) -> bool:
    """Whether timm's model `name` is built for a fixed input size (`img_size`: ViT, Swin, ...)."""
    mod = sys.modules[timm.models.model_entrypoint(name).__module__]
    return any(
        isinstance(c, type)
        and issubclass(c, nn.Module)
        and c.__module__ == mod.__name__
        and "img_size" in inspect.signature(c.__init__).parameters
        for c in vars(mod).values()
    )


def patch_projection(backbone: nn.Module) -> nn.Conv2d | None:
    """A ViT's patch projection (`patch_embed.proj`, a Conv2d in timm), None for other backbones."""
    proj = getattr(getattr(backbone, "patch_embed", None), "proj", None)
    return proj if isinstance(proj, nn.Conv2d) else None


def memory_format(backbone: nn.Module, choice: str = "auto") -> torch.memory_format:
    """The layout a run keeps `backbone`'s 4-D weights (and so its activations) in.

    `auto`: channels_last for convolutional backbones, contiguous for ViTs (`patch_projection`) and
    networks without a Conv2d. Why: oneDNN (CPU) and cuDNN's tensor-core kernels have native NHWC
    convolutions, and they were faster in the measurement: a training step (2 x 32
    images of 64 px, Adam) took, in channels_last, 0.93x the contiguous time for timm's resnet18,
    0.87x resnet50, 0.82x resnext50_32x4d, 0.61x mobilenetv3_large_100, 0.54x efficientnet_b0 and
    1.01x (no gain) convnext_tiny on the 2-core development CPU
    (`benchmarks/cpu_step_costs.py --sections memory_format`; GPUs not measured here).
    The layout changes the kernels' summation order, not the computation.
    """
    if choice == "contiguous":
        return torch.contiguous_format
    if choice == "channels_last":
        return torch.channels_last
    if choice != "auto":
        raise ValueError(f"memory format {choice!r}: one of auto, channels_last, contiguous")
    convolutional = any(isinstance(m, nn.Conv2d) for m in backbone.modules())
    if convolutional and patch_projection(backbone) is None:
        return torch.channels_last
    return torch.contiguous_format


def format_name(fmt: torch.memory_format) -> str:
    """`--memory-format`'s word for a resolved layout (config.yaml, the dry run)."""
    return "channels_last" if fmt == torch.channels_last else "contiguous"


def create_backbone(
    name: str,
    selection: BandSelection,
    init: str | Path | None = None,
    img_size: int | None = None,
    **kwargs,
) -> nn.Module:
    """`timm.create_model(name, in_chans=len(selection), num_classes=0)`, optionally from local weights.

    Never downloads: `pretrained=False` always; `init` is a local file. `img_size` is passed to
    models built for a fixed input size (ViTs: position embeddings) and ignored by CNNs.
    """
    if not timm.is_model(name):
        raise UsageError(f"--backbone {name}: not a timm model; see timm.list_models()")
    if img_size is not None and takes_img_size(name):
        kwargs = {"img_size": img_size, **kwargs}
    try:
        model = timm.create_model(
            name, pretrained=False, in_chans=len(selection), num_classes=0, **kwargs
        )
    except RuntimeError as e:
        if "Unknown model" in str(e):
            raise UsageError(
                f"--backbone {name}: not a timm model ({e}); see timm.list_models()"
            ) from None
        raise
    if init is not None:
        path = weights_file(init, "--init")
        state = load_weights(path)
        meta = weights_metadata(path)
        if meta.get("bands"):  # rs-ssl weights know their bands: transfer by name, then wavelength
            trained = resolve_bands(meta["bands"], meta.get("sensor"))
            if trained.names != selection.names:
                state, maps = transfer_state(model, state, trained, selection)
                print(describe(trained, selection, maps))
        else:
            state = adapt_first_conv(model, state, selection)
        state = _resize_pos_embed(model, state)
        missing, unexpected = model.load_state_dict(state, strict=False)
        unexpected = [k for k in unexpected if not _is_classifier_key(model, k)]
        if unexpected or missing:
            raise RsSslError(
                f"--init {init}: weights do not fit {name}: missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
                f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}"
            )
    return model


def output_dim(backbone: nn.Module) -> int:
    """Width of `backbone(x)` for a timm model built with num_classes=0.

    timm's `num_features` is the width of `forward_features`; models whose head has a pre-logits
    layer (MobileNetV3: 960 -> 1280) return `head_hidden_size` features instead.
    """
    return int(getattr(backbone, "head_hidden_size", None) or backbone.num_features)


def _resize_pos_embed(model: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """ViT weights trained at another image size: interpolate the position embeddings (timm's rule)."""
    pe = state.get("pos_embed")
    own = getattr(model, "pos_embed", None)
    if pe is None or not isinstance(own, torch.Tensor) or pe.shape == own.shape:
        return state
    from timm.layers import resample_abs_pos_embed

    prefix = 0 if getattr(model, "no_embed_class", False) else model.num_prefix_tokens
    return {
        **state,
        "pos_embed": resample_abs_pos_embed(
            pe, new_size=list(model.patch_embed.grid_size), num_prefix_tokens=prefix
        ),
    }


def _is_classifier_key(model: nn.Module, key: str) -> bool:
    head = model.pretrained_cfg.get("classifier", "fc")
    heads = head if isinstance(head, list | tuple) else [head]
    return any(key.startswith(h + ".") for h in heads)


def weights_file(checkpoint: str | Path, option: str = "--checkpoint") -> Path:
    """A run folder (its backbone.safetensors), a model folder (its model.safetensors) or a weights file."""
    p = Path(checkpoint)
    if p.is_dir():
        for f in (p / "backbone.safetensors", p / "model.safetensors"):
            if f.is_file():
                return f
        raise UsageError(
            f"{option} {p}: no backbone.safetensors or model.safetensors in this folder; "
            "give a pretraining run folder, its model/ folder or a weights file"
        )
    if not p.is_file():
        raise UsageError(f"{option} {p}: no such file or folder")
    return p


def weights_metadata(path: Path) -> dict[str, str]:
    """The string metadata of a .safetensors file (rs-ssl writes timm_model, bands, sensor, method); {} otherwise."""
    if Path(path).suffix != ".safetensors":
        return {}
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a state dict safely: safetensors, or torch.load(weights_only=True) (no pickled code runs)."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"{p}: no such weights file")
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(p))
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises UnpicklingError and others for unsafe pickles
        raise RsSslError(
            f"{p}: refused to load: it is not a plain tensor checkpoint ({type(e).__name__}: "
            f"{str(e).splitlines()[0][:200]}). Only weights are loaded, never pickled code; convert it to "
            "safetensors on a machine where you trust it"
        ) from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise RsSslError(f"{p}: expected a state dict, found {type(obj).__name__}")
    return obj


def adapt_first_conv(
    model: nn.Module, state: dict[str, torch.Tensor], selection: BandSelection
) -> dict[str, torch.Tensor]:
    """Adapt 3-band (RGB) first-layer filters to the selected bands by wavelength.

    Bands whose `common` name is red/green/blue take the RGB filter of that colour (the file's order
    is R, G, B, as for ImageNet weights); every other band gets the mean of the three, and the whole
    kernel is rescaled by 3 / (number of bands) so activations keep their RGB magnitude (timm's
    `adapt_input_conv` rule).
    """
    key = model.pretrained_cfg.get("first_conv", "conv1") + ".weight"
    if key not in state:
        raise RsSslError(f"weights have no first-layer tensor {key!r} for {type(model).__name__}")
    w = state[key]
    if w.shape[1] == len(selection):
        return state
    if w.shape[1] != 3:
        raise RsSslError(
            f"first layer {key} has {w.shape[1]} input channels; only 3-band (RGB) weights can be adapted to {len(selection)} bands"
        )
    mean = w.mean(dim=1)
    chans = []
    for band in selection.bands:
        if band.common in _RGB_COMMON:
            chans.append(w[:, _RGB_COMMON.index(band.common)])
        else:
            chans.append(mean)
    new = torch.stack(chans, dim=1) * (3.0 / len(selection))
    return {**state, key: new}


def export_backbone(
    model: nn.Module, path: str | Path, metadata: dict[str, str] | None = None
) -> Path:
    """Save the backbone's state dict as safetensors, loadable with
    `timm.create_model(name, in_chans=C, num_classes=0, checkpoint_path=path)`."""
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    p = Path(path)
    tmp = p.with_suffix(".tmp")
    save_file(state, str(tmp), metadata=metadata)
    tmp.replace(p)
    return p
