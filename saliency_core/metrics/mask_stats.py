"""Mask statistics: size, spread, smoothness and how binary a mask is (Phang et al. Fig. 2).

- ``mean``: fraction of the image kept; ``std``: spread of the values.
- ``tv``: mean squared difference between neighbouring pixels,
  (sum (dm_h)^2 + sum (dm_w)^2) / (h w), so it does not grow with the resolution as a sum would.
- ``bimodal``: share of pixels below 0.1 or above 0.9 (1 = a binary mask).
- ``histogram``: share of all pixels in each of ``bins`` equal bins over [0, 1].
"""
from __future__ import annotations

import torch


def mask_stats(masks: torch.Tensor, low: float = 0.1, high: float = 0.9) -> dict[str, torch.Tensor]:
    """Per-mask statistics of N x h x w masks -> dict of [N] tensors."""
    m = masks.detach().float()
    h, w = m.shape[-2:]
    dh = (m[:, 1:, :] - m[:, :-1, :]).pow(2).flatten(1).sum(1)
    dw = (m[:, :, 1:] - m[:, :, :-1]).pow(2).flatten(1).sum(1)
    flat = m.flatten(1)
    return {
        "mean": flat.mean(1),
        "std": flat.std(1, unbiased=False),
        "tv": (dh + dw) / (h * w),
        "bimodal": ((flat < low) | (flat > high)).float().mean(1),
    }


def mask_histogram(masks: torch.Tensor, bins: int = 20) -> torch.Tensor:
    """Share of all pixels of all masks in each of ``bins`` equal bins over [0, 1] (1.0 in the last)."""
    flat = masks.detach().float().flatten().clamp(0, 1)
    idx = (flat * bins).long().clamp(max=bins - 1)
    counts = torch.bincount(idx, minlength=bins).float()
    return counts / counts.sum().clamp_min(1)
