"""What MoCo v2 and v3 share: a contrastive temperature, the projector's output width, and a key
encoder (a frozen copy of the backbone and projector that follows them by an exponential moving
average with momentum `base_momentum`, as both references' `builder.py` do)."""

from __future__ import annotations

import copy
from typing import Any

from rs_ssl.methods.base import SSLMethod


class MomentumContrast(SSLMethod):
    """A method with a key encoder. Subclasses build `self.projector`, then call
    `make_key_encoder()`; the base's `momentum_update` then updates both pairs."""

    def __init__(
        self,
        *,
        temperature: float | None = None,
        proj_dim: int | None = None,
        momentum: float | None = None,
        **common: Any,
    ):
        """Own hyper-parameters (None: the method table's paper default)."""
        super().__init__(**common)
        dflt = self.defaults
        self.temperature = dflt.temperature if temperature is None else temperature
        self.proj_dim = dflt.proj_dim if proj_dim is None else proj_dim
        self.base_momentum = dflt.momentum if momentum is None else float(momentum)

    def make_key_encoder(self) -> None:
        """The key encoder starts as a copy (builder.py: `param_k.data.copy_(param_q.data)`) and
        takes no gradient."""
        self.key_backbone = copy.deepcopy(self.backbone)
        self.key_projector = copy.deepcopy(self.projector)
        for p in list(self.key_backbone.parameters()) + list(self.key_projector.parameters()):
            p.requires_grad = False

    def momentum_pairs(self):
        return [(self.backbone, self.key_backbone), (self.projector, self.key_projector)]

    def resolved_hyper_parameters(self) -> dict[str, Any]:
        return super().resolved_hyper_parameters() | {
            "temperature": self.temperature,
            "proj_dim": self.proj_dim,
            "momentum": self.base_momentum,
        }
