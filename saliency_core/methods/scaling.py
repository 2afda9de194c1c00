"""Scaling raw saliency maps into [0, 1] masks (ranks kept)."""
from __future__ import annotations

import torch


def normalise_max(a: torch.Tensor) -> torch.Tensor:
    """K x h x w non-negative maps -> divided by each map's maximum (all-zero maps stay 0)."""
    peak = a.flatten(1).amax(1).clamp_min(1e-12).view(-1, 1, 1)
    return (a / peak).clamp(0, 1)


def normalise_minmax(a: torch.Tensor) -> torch.Tensor:
    flat = a.flatten(1)
    lo = flat.amin(1).view(-1, 1, 1)
    hi = flat.amax(1).view(-1, 1, 1)
    return ((a - lo) / (hi - lo).clamp_min(1e-12)).clamp(0, 1)
