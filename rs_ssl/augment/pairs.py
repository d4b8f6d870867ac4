"""A view that applies exactly two ops per sample, drawn from a table of allowed pairs.

The SimCLR-S2 protocol (`presets.SIMCLR_S2`): every view picks two of nine augmentations at
random, redrawing pairs the study excludes. Drawing an unordered pair uniformly and redrawing the
excluded ones is the same as drawing uniformly among the allowed pairs, which is done here in one
draw per sample (no rejection loop, no host sync).

All ops of all slots sit in one fused `AugmentedView` (geometric ops first, one resampling); a
slot's ops are gated by whether the sample's pair contains the slot. An op's own `p` coin (the
flips' 0.5) still applies inside a chosen slot; ops that should always act when chosen are built
with `p < 1` only so that their gate is read (see `rs_ssl.augment._common.gate`).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from rs_ssl.augment.fused import AugmentedView, Params

ALWAYS = "always"  # the op acts whenever its slot is chosen
OWN_COIN = "own_coin"  # the op acts when its slot is chosen and its own p coin says so


def allowed_pairs(
    names: Sequence[str], excluded: Sequence[frozenset[str]]
) -> list[tuple[str, str]]:
    """Every unordered pair of distinct names, in table order, less the excluded ones."""
    unknown = {n for pair in excluded for n in pair} - set(names)
    if unknown:
        raise ValueError(
            f"excluded pairs name unknown augmentations {sorted(unknown)}; known: {list(names)}"
        )
    return [
        (a, b)
        for a, b in itertools.combinations(names, 2)
        if frozenset((a, b)) not in set(excluded)
    ]


class PairedView(AugmentedView):
    """Applies to each sample the ops of exactly two slots, a pair drawn uniformly from `pairs`.

    `ops` are the ops in view order; `op_slots[i]` names the slot of `ops[i]` (None: always
    applied, e.g. the crop to size); `op_modes[i]` is ALWAYS or OWN_COIN.
    """

    def __init__(
        self,
        ops: Sequence[nn.Module],
        op_slots: Sequence[str | None],
        op_modes: Sequence[str],
        slots: Sequence[str],
        pairs: Sequence[tuple[str, str]],
    ) -> None:
        super().__init__(ops)
        if not len(ops) == len(op_slots) == len(op_modes):
            raise ValueError("ops, op_slots and op_modes must have one entry per op")
        if not pairs:
            raise ValueError("a paired view needs at least one allowed pair")
        self.slots = tuple(slots)
        self.pairs = tuple(tuple(p) for p in pairs)
        # Ops are reordered by AugmentedView (geometric first); keep each op's slot with it.
        info = {id(op): (s, m) for op, s, m in zip(ops, op_slots, op_modes, strict=True)}
        self.op_slots = [info[id(op)][0] for op in self.ops]
        self.op_modes = [info[id(op)][1] for op in self.ops]
        for op, slot in zip(self.ops, self.op_slots, strict=True):
            if slot is not None and op.p == 1.0 and op.p_batch == 1.0:
                raise ValueError(
                    f"{type(op).__name__} of slot {slot!r} needs p < 1 so that its gate is read"
                )
        table = torch.zeros(len(self.pairs), len(self.slots), dtype=torch.bool)
        for i, (a, b) in enumerate(self.pairs):
            table[i, self.slots.index(a)] = table[i, self.slots.index(b)] = True
        self.register_buffer("table", table, persistent=False)

    def draw_pairs(self, batch: int, device) -> Tensor:
        """(batch,) index into `pairs` per sample, uniform, from torch's generator of `device`."""
        u = torch.rand(batch, device=device)
        return torch.floor(u * len(self.pairs)).long().clamp(max=len(self.pairs) - 1)

    def sample(self, shape: Sequence[int], device: torch.device | str) -> Params:
        params = super().sample(shape, device)
        pick = self.draw_pairs(shape[0], device)
        chosen = self.table.to(device)[pick]  # (B, slots)
        for p, slot, mode in zip(params, self.op_slots, self.op_modes, strict=True):
            if slot is None:
                continue
            on = chosen[:, self.slots.index(slot)]
            if mode == OWN_COIN:
                on = on & (p["batch_prob"].to(device) > 0.5)
            p["batch_prob"] = on.to(p["batch_prob"].dtype)
        params.append({"pair": pick})  # read by `chosen_pairs`; not an op's parameters
        return params

    def forward(self, x: Tensor, mask: Tensor | None = None, params: Params | None = None):
        if params is None:
            params = self.sample(x.shape, x.device)
        return super().forward(x, mask, params[: len(self.ops)])

    def reference(self, x: Tensor, params: Params, mask: Tensor | None = None):
        return super().reference(x, params[: len(self.ops)], mask)

    def chosen_pairs(self, params: Params) -> list[tuple[str, str]]:
        """The pair of slot names each sample of a `sample()` draw applies."""
        return [self.pairs[i] for i in params[-1]["pair"].tolist()]
