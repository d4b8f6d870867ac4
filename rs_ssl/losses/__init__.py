"""Losses as pure functions of tensors: no module state, no DDP assumptions."""

from rs_ssl.losses.infonce import (
    info_nce,
    info_nce_all_ranks,
    info_nce_queue,
    nt_xent,
    nt_xent_all_ranks,
)

__all__ = ["info_nce", "info_nce_all_ranks", "info_nce_queue", "nt_xent", "nt_xent_all_ranks"]
