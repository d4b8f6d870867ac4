"""Losses as pure functions of tensors: no module state, no DDP assumptions."""

from rs_ssl.losses.infonce import info_nce, info_nce_queue, nt_xent

__all__ = ["info_nce", "info_nce_queue", "nt_xent"]
