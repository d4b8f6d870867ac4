"""Band-set transfer: first-layer filters of a model trained on one band set, for another band set.

The rule (README, "Band-set transfer"), applied per band of the new set:
1. a band of the same name (and a centre wavelength within `SAME_BAND_NM`, so that Landsat's B5
   never passes for a Sentinel-2 B05) copies that band's filter;
2. any other band copies the filter of the source band nearest in centre wavelength (the first
   one in source order on a tie);
3. source bands nobody copied are dropped.
When the band set changes, the whole kernel is then multiplied by C_source / C_target, as timm's
`adapt_input_conv` does (3 / C for RGB weights), so that the first layer's summed response keeps
its magnitude. Every other layer is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from rs_ssl.bands import BandSelection
from rs_ssl.errors import RsSslError

SAME_BAND_NM = 50.0


@dataclass(frozen=True)
class BandMap:
    """Where the filter of one target band comes from."""

    target: str
    source: str
    rule: str  # "name" or "wavelength"
    delta_nm: float  # target minus source centre wavelength


def map_bands(source: BandSelection, target: BandSelection) -> tuple[BandMap, ...]:
    """The source band that gives each target band its filter (rules 1 and 2 of the module docstring)."""
    src = source.bands
    out = []
    for band in target.bands:
        same = [
            b
            for b in src
            if b.name == band.name and abs(b.wavelength_nm - band.wavelength_nm) <= SAME_BAND_NM
        ]
        if same:
            out.append(
                BandMap(band.name, same[0].name, "name", band.wavelength_nm - same[0].wavelength_nm)
            )
            continue
        near = min(src, key=lambda b: abs(b.wavelength_nm - band.wavelength_nm))
        out.append(
            BandMap(band.name, near.name, "wavelength", band.wavelength_nm - near.wavelength_nm)
        )
    return tuple(out)


def dropped_bands(source: BandSelection, maps: tuple[BandMap, ...]) -> list[str]:
    used = {m.source for m in maps}
    return [n for n in source.names if n not in used]


def transfer_weight(
    weight: torch.Tensor, source: BandSelection, target: BandSelection, maps: tuple[BandMap, ...]
) -> torch.Tensor:
    """(out, C_source, ...) first-layer kernel -> (out, C_target, ...) by `maps`, rescaled by C_s / C_t."""
    if weight.shape[1] != len(source):
        raise RsSslError(
            f"first-layer kernel has {weight.shape[1]} input channels, but the weights' band metadata "
            f"lists {len(source)} bands ({','.join(source.names)})"
        )
    idx = torch.tensor([source.names.index(m.source) for m in maps])
    new = weight.index_select(1, idx)
    if tuple(source.names) != tuple(target.names):
        new = new * (len(source) / len(target))
    return new.contiguous()


def first_conv_key(model: nn.Module) -> str:
    """State-dict key of timm's first-layer kernel (`conv1.weight`, `patch_embed.proj.weight`, ...)."""
    first = model.pretrained_cfg.get("first_conv", "conv1")
    return (first[0] if isinstance(first, list | tuple) else first) + ".weight"


def transfer_state(
    model: nn.Module, state: dict[str, torch.Tensor], source: BandSelection, target: BandSelection
) -> tuple[dict[str, torch.Tensor], tuple[BandMap, ...]]:
    """The state dict with its first layer moved from `source` to `target` bands, and the mapping used."""
    key = first_conv_key(model)
    if key not in state:
        raise RsSslError(f"weights have no first-layer tensor {key!r} for {type(model).__name__}")
    maps = map_bands(source, target)
    return {**state, key: transfer_weight(state[key], source, target, maps)}, maps


def describe(source: BandSelection, target: BandSelection, maps: tuple[BandMap, ...]) -> str:
    """Lines saying which band's filter each new band took, and which were dropped."""
    lines = [
        f"band transfer: weights trained on {len(source)} bands ({source.sensor.key}) -> "
        f"{len(target)} bands ({target.sensor.key}); first layer rescaled by {len(source)}/{len(target)}"
    ]
    for m in maps:
        how = "same name" if m.rule == "name" else f"nearest wavelength, {m.delta_nm:+.0f} nm"
        lines.append(f"  {m.target:>4} <- {m.source} ({how})")
    drop = dropped_bands(source, maps)
    if drop:
        lines.append(f"  dropped: {', '.join(drop)}")
    return "\n".join(lines)


def mapping_record(source: BandSelection, target: BandSelection, maps: tuple[BandMap, ...]) -> dict:
    """The mapping for metrics.json."""
    return {
        "source_bands": list(source.names),
        "source_sensor": source.sensor.key,
        "target_bands": list(target.names),
        "target_sensor": target.sensor.key,
        "scale": len(source) / len(target),
        "map": {
            m.target: {"from": m.source, "rule": m.rule, "delta_nm": round(m.delta_nm, 1)}
            for m in maps
        },
        "dropped": dropped_bands(source, maps),
    }
