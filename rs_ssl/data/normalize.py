"""Input normalisation on the device: DN to standardised reflectance, from a band selection's facts.

Shared by pretraining (`SSLMethod.normalize`) and evaluation (`rs_ssl.eval`), which must see the
same input scale.
"""

from __future__ import annotations

import torch
from torch import nn

from rs_ssl.bands import BandSelection, BandStats


class Normalize(nn.Module):
    """DN -> reflectance (`DN * scale + offset`) -> standardised with the sensor's per-band mean/std.

    Non-finite values (NaN nodata) become 0 after standardisation, i.e. the band mean.
    """

    def __init__(self, selection: BandSelection, stats: BandStats):
        super().__init__()
        s = selection.sensor
        mean = torch.as_tensor(stats.mean).view(1, -1, 1, 1)
        std = torch.as_tensor(stats.std).view(1, -1, 1, 1)
        # Fold both affine steps into one multiply-add: x * a + b.
        self.register_buffer("a", s.scale / std, persistent=False)
        self.register_buffer("b", (s.offset - mean) / std, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.addcmul(self.b, x.float(), self.a)
        return torch.nan_to_num(y, nan=0.0, posinf=0.0, neginf=0.0)
