"""``local-mean``: FIDO's LocalMean fill, the mean of the kept pixels in a window around each pixel."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from saliency_core.infill.base import InfillerError, register_infiller
from saliency_core.options import check_options, option


@dataclass(frozen=True)
class LocalMeanOptions:
    window: int = option(15,
                         help=("Side of the square window whose kept pixels are averaged to fill a removed pixel. "
                               "FIDO's LocalMean uses 15 x 15. (Chang, Creager, Goldenberg & Duvenaud)"),
                         low=1, high=101, step=2, main=True)

    def __post_init__(self) -> None:
        check_options(self, "infiller 'local-mean'")
        if self.window % 2 == 0:
            raise InfillerError(f"infiller 'local-mean': option 'window' must be odd, got {self.window}")


@register_infiller("local-mean", config=LocalMeanOptions, static=False, deterministic=True)
class LocalMeanInfiller:
    """Mean of the kept pixels in a window (15 x 15); gray where none is kept."""

    def __init__(self, options: LocalMeanOptions | None = None) -> None:
        self.window = (options or LocalMeanOptions()).window

    def __call__(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        keep = keep.detach().round()
        x = x.detach()
        pad = self.window // 2
        num = F.avg_pool2d(x * keep, self.window, stride=1, padding=pad, count_include_pad=False)
        den = F.avg_pool2d(keep.expand_as(x), self.window, stride=1, padding=pad, count_include_pad=False)
        return torch.where(den > 1e-6, num / den.clamp_min(1e-6), torch.zeros_like(x))
