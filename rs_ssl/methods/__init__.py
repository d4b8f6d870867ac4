"""One small LightningModule per SSL method; `METHODS` maps `--method` names to them."""

from __future__ import annotations

from rs_ssl.methods.base import MethodDefaults, SSLMethod
from rs_ssl.methods.mocov2 import MoCoV2
from rs_ssl.methods.mocov3 import MoCoV3
from rs_ssl.methods.rpl import RelativePatchLocation
from rs_ssl.methods.simclr import SimCLR

METHODS: dict[str, type[SSLMethod]] = {
    m.name: m for m in (MoCoV2, MoCoV3, SimCLR, RelativePatchLocation)
}

__all__ = [
    "METHODS",
    "MethodDefaults",
    "MoCoV2",
    "MoCoV3",
    "RelativePatchLocation",
    "SSLMethod",
    "SimCLR",
]
