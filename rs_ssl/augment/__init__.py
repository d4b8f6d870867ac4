"""N-band GPU augmentations on Kornia and the two-view pipelines of contrastive methods.

Public entry point: `make_views(preset, bands, size, augs=None, **overrides)`; see `presets`.
Every op is a Kornia `AugmentationBase2D` usable on its own (`geometric`, `pixel`); a view
pipeline runs them fused (`fused.AugmentedView`).
"""

from rs_ssl.augment.fused import AugmentedView, TwoViews
from rs_ssl.augment.presets import AUG_NAMES, PRESETS, VIEW_PRESETS, is_preset, make_views

__all__ = [
    "AUG_NAMES",
    "PRESETS",
    "VIEW_PRESETS",
    "AugmentedView",
    "TwoViews",
    "is_preset",
    "make_views",
]
