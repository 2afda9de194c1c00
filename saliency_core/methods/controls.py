"""Label-free controls: a centred Gaussian and seeded random noise (what a real method must beat)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from saliency_core.classifiers.base import Classifier, ClassifierOutput
from saliency_core.methods.base import MethodResult, ProgressFn, register_method
from saliency_core.options import check_options, option, seed_option


def center_gaussian(h: int, w: int, sigma: float = 0.25) -> torch.Tensor:
    """exp(-(dy^2 / (2 (sigma h)^2) + dx^2 / (2 (sigma w)^2))) around the image centre, h x w, max 1."""
    ys = torch.arange(h, dtype=torch.float32) - (h - 1) / 2
    xs = torch.arange(w, dtype=torch.float32) - (w - 1) / 2
    g = torch.exp(-(ys.view(-1, 1) ** 2) / (2 * (sigma * h) ** 2) - (xs.view(1, -1) ** 2) / (2 * (sigma * w) ** 2))
    return g / g.max()


@dataclass(frozen=True)
class CenterGaussianOptions:
    sigma: float = option(0.25,
                          help=("For the blur infiller, the Gaussian blur's standard deviation in working pixels; for "
                                "the centre-Gaussian baseline, the width as a fraction of the image. A larger blur "
                                "removes more detail from the filled region. (Fong & Vedaldi)"), low=0.0,
                          low_open=True, high=10.0, main=True)

    def __post_init__(self) -> None:
        check_options(self, "method 'center-gaussian'")


@register_method("center-gaussian", summary="label-free control: a Gaussian at the image centre",
                 config=CenterGaussianOptions, group="Control", per_label=False, on_request=False, in_comparison=True,
                 paper='Phang, Park & Geras (2020), the centre baseline',
                 cost=lambda cfg, k: 0.0)
class CenterGaussianMethod:
    name = "center-gaussian"

    def __init__(self, options: CenterGaussianOptions | None = None) -> None:
        self.sigma = (options or CenterGaussianOptions()).sigma

    def __call__(self, classifier: Classifier, x: torch.Tensor, labels: list[int], clean: ClassifierOutput,
                 progress: ProgressFn | None = None) -> MethodResult:
        mask = center_gaussian(*x.shape[-2:], sigma=self.sigma).to(x.device)
        return MethodResult(masks=mask[None], per_label=False, info={"sigma": self.sigma})


@dataclass(frozen=True)
class RandomOptions:
    seed: int = seed_option("the random map")
    cell: int = option(1,
                       help=("Size in pixels of the cells of the random control map. It is a sanity baseline: a real "
                             "method should beat it on every score. (Petsiuk, Das & Saenko)"),
                       low=1, high=512, main=True)

    def __post_init__(self) -> None:
        check_options(self, "method 'random'")


@register_method("random", summary="label-free control: seeded uniform noise (cells of `cell` pixels)",
                 config=RandomOptions, group="Control", per_label=False, on_request=False,
                 paper="a sanity baseline (as pytorch-grad-cam's RandomCAM)",
                 cost=lambda cfg, k: 0.0)
class RandomMethod:
    """Uniform random map; the same seed gives the same map for an image size (reproducible)."""

    name = "random"

    def __init__(self, options: RandomOptions | None = None) -> None:
        o = options or RandomOptions()
        self.seed, self.cell = o.seed, o.cell

    def __call__(self, classifier: Classifier, x: torch.Tensor, labels: list[int], clean: ClassifierOutput,
                 progress: ProgressFn | None = None) -> MethodResult:
        h, w = x.shape[-2:]
        gen = torch.Generator().manual_seed(self.seed)
        small = torch.rand(1, 1, math.ceil(h / self.cell), math.ceil(w / self.cell), generator=gen)
        mask = F.interpolate(small, scale_factor=self.cell, mode="nearest")[0, 0, :h, :w]
        return MethodResult(masks=mask[None].to(x.device), per_label=False, info={"seed": self.seed, "cell": self.cell})
