"""``random-image``: pixels of a randomly drawn other photo (Gupta et al.), from a reference pool."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from saliency_core.infill.base import InfillerError, register_infiller
from saliency_core.options import check_options, option, seed_option


@dataclass(frozen=True)
class RandomImageOptions:
    pool: Any = option(None,
                       help=("The random-image infiller fills removed pixels with another photo, here the other gallery"
                             " photos. Gupta et al. train masks against random other images so they stay intrinsic to "
                             "the image. (Gupta, Saunshi, Yu, Lyu & Arora)"),
                       shown=False)
    seed: int = seed_option("the choice of reference photos")

    def __post_init__(self) -> None:
        check_options(self, "infiller 'random-image'")
        if self.pool is not None and (not torch.is_tensor(self.pool) or self.pool.dim() != 4 or self.pool.shape[0] < 1):
            raise InfillerError("random-image pool must be an N x 3 x H x W tensor with N >= 1")


@register_infiller("random-image", config=RandomImageOptions, static=False, deterministic=False, reference_pool=True)
class RandomImageInfiller:
    """Each image of the batch gets an independent draw from the pool, resized to its size. Without a pool,
    the batch itself is used (each image is filled from another image of the batch)."""

    def __init__(self, options: RandomImageOptions | None = None) -> None:
        options = options or RandomImageOptions()
        self.pool = options.pool
        self.generator = torch.Generator().manual_seed(int(options.seed))

    def __call__(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        if self.pool is None:
            if b < 2:
                raise InfillerError("random-image infill needs a reference pool (or a batch of 2+ images)")
            shift = 1 + torch.randint(0, b - 1, (1,), generator=self.generator).item()
            return x.detach().roll(shifts=int(shift), dims=0)
        idx = torch.randint(0, self.pool.shape[0], (b,), generator=self.generator)
        picked = self.pool[idx].to(x.device, x.dtype)
        if picked.shape[-2:] != x.shape[-2:]:
            picked = F.interpolate(picked, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return picked
