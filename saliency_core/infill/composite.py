"""Applying masks in the classifier's normalised space, where 0 is the 'gray' of the normalisation.

``keep`` is the fraction of each pixel that is kept from the image; the rest comes from ``fill``
(0 = gray when no infiller is given). Masked-in keeps the mask, masked-out keeps its complement.
"""
from __future__ import annotations

import torch


def composite(x: torch.Tensor, keep: torch.Tensor, fill: torch.Tensor | None = None) -> torch.Tensor:
    """x * keep + fill * (1 - keep); fill defaults to 0 (gray)."""
    if fill is None:
        return x * keep
    return x * keep + fill * (1.0 - keep)


def masked_in(x: torch.Tensor, mask: torch.Tensor, fill: torch.Tensor | None = None) -> torch.Tensor:
    """Keep the salient pixels: x * m (+ fill * (1 - m))."""
    return composite(x, mask, fill)


def masked_out(x: torch.Tensor, mask: torch.Tensor, fill: torch.Tensor | None = None) -> torch.Tensor:
    """Remove the salient pixels: x * (1 - m) (+ fill * m)."""
    return composite(x, 1.0 - mask, fill)
