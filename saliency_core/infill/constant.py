"""Constant fills: ``gray`` (alias ``none``: zeros in normalised space) and ``mean`` (the image's mean colour)."""
from __future__ import annotations

import torch

from saliency_core.infill.base import register_infiller


@register_infiller("gray", static=True, deterministic=True)
class GrayInfiller:
    """Zeros in normalised space: the normalisation's mean colour."""

    def __call__(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


register_infiller("none", summary="the same as gray", static=True, deterministic=True, alias_of="gray")(GrayInfiller)


@register_infiller("mean", static=True, deterministic=True)
class MeanColourInfiller:
    """Each image's own mean colour."""

    def __call__(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        return x.detach().mean(dim=(2, 3), keepdim=True).expand_as(x).clone()
