"""LARS (You, Gitman, Ginsburg 2017), as in facebookresearch/moco-v3 `moco/optimizer.py`."""

from __future__ import annotations

import torch


class LARS(torch.optim.Optimizer):
    """SGD with momentum and a layer-wise trust ratio; parameters with ndim <= 1 (biases, norm
    weights) get neither weight decay nor the trust ratio (moco-v3 `optimizer.LARS`, SimCLR's
    `exclude_from_weight_decay` / `exclude_from_layer_adaptation`).

    Like torch's fused optimisers it honours a `found_inf` tensor attribute (set by the NaN guard or
    a GradScaler): when it is non-zero the step leaves parameters and momentum untouched, decided on
    the device without a host sync. `grad_scale`, when set, divides the gradients first.
    `amp_scaling=False` hides this from Lightning and GradScaler (needed under fp16 with gradient
    clipping, where Lightning unscales the gradients itself and refuses optimisers that do).
    """

    def __init__(
        self,
        params,
        lr: float = 0.0,
        weight_decay: float = 0.0,
        momentum: float = 0.9,
        trust_coefficient: float = 0.001,
        amp_scaling: bool = True,
    ):
        defaults = dict(
            lr=lr, weight_decay=weight_decay, momentum=momentum, trust_coefficient=trust_coefficient
        )
        super().__init__(params, defaults)
        self._step_supports_amp_scaling = amp_scaling

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        found_inf = getattr(self, "found_inf", None)
        grad_scale = getattr(self, "grad_scale", None)
        for g in self.param_groups:
            for p in g["params"]:
                dp = p.grad
                if dp is None:
                    continue
                if grad_scale is not None:
                    dp = dp / grad_scale.to(dp.device)
                if p.ndim > 1:  # not a bias or a normalisation parameter
                    dp = dp.add(p, alpha=g["weight_decay"])
                    param_norm = torch.norm(p)
                    update_norm = torch.norm(dp)
                    one = torch.ones_like(param_norm)
                    q = torch.where(
                        param_norm > 0.0,
                        torch.where(
                            update_norm > 0, g["trust_coefficient"] * param_norm / update_norm, one
                        ),
                        one,
                    )
                    dp = dp.mul(q)
                state = self.state[p]
                if "mu" not in state:
                    state["mu"] = torch.zeros_like(p)
                mu = state["mu"]
                if found_inf is None:
                    mu.mul_(g["momentum"]).add_(dp)
                    p.add_(mu, alpha=-g["lr"])
                else:
                    skip = found_inf.to(p.device) != 0
                    mu.copy_(torch.where(skip, mu, mu * g["momentum"] + dp))
                    p.sub_(torch.where(skip, torch.zeros_like(mu), mu * g["lr"]))
        return loss
