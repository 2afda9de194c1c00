"""``blur``: a Gaussian blur of the image (Fong & Vedaldi's deletion fill), and the blur itself."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from saliency_core.infill.base import register_infiller
from saliency_core.options import check_options, option


def gaussian_kernel1d(sigma: float, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Normalised 1-D Gaussian kernel with half-width ceil(3 sigma)."""
    half = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-half, half + 1, device=device, dtype=dtype)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with replicate padding (works for any kernel/image size)."""
    k = gaussian_kernel1d(sigma, x.device, x.dtype)
    c = x.shape[1]
    half = (k.numel() - 1) // 2
    y = F.pad(x, (half, half, 0, 0), mode="replicate")
    y = F.conv2d(y, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    y = F.pad(y, (0, 0, half, half), mode="replicate")
    return F.conv2d(y, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


@dataclass(frozen=True)
class BlurOptions:
    sigma: float = option(10.0,
                          help=("For the blur infiller, the Gaussian blur's standard deviation in working pixels; for "
                                "the centre-Gaussian baseline, the width as a fraction of the image. A larger blur "
                                "removes more detail from the filled region. (Fong & Vedaldi)"),
                          low=0.0, low_open=True, high=100.0, main=True)

    def __post_init__(self) -> None:
        check_options(self, "infiller 'blur'")


@register_infiller("blur", config=BlurOptions, static=True, deterministic=True)
class BlurInfiller:
    """Gaussian blur of the original image (sigma in pixels of the working resolution)."""

    def __init__(self, options: BlurOptions | None = None) -> None:
        self.sigma = float((options or BlurOptions()).sigma)

    def __call__(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        return gaussian_blur(x.detach(), self.sigma)
