"""``noise``: FIDO's RandomColor fill, a random colour per image plus Gaussian noise, seeded."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from saliency_core.infill.base import register_infiller
from saliency_core.options import check_options, option, seed_option


@dataclass(frozen=True)
class NoiseOptions:
    std: float = option(0.2,
                        help=("Standard deviation of the Gaussian noise added to a random colour in the noise infiller."
                              " FIDO uses it as a cheap out-of-distribution fill to compare against. (Chang, Creager, "
                              "Goldenberg & Duvenaud)"), low=0.0,
                        high=10.0, main=True)
    seed: int = seed_option("the colour and noise draws")

    def __post_init__(self) -> None:
        check_options(self, "infiller 'noise'")


@register_infiller("noise", config=NoiseOptions, static=False, deterministic=False)
class NoiseInfiller:
    """A uniform random colour per image plus N(0, std) noise, in pixel space, mapped to normalised space
    with mean and scale 0.5 (the classifier's own normalisation is close to that for every model here)."""

    def __init__(self, options: NoiseOptions | None = None) -> None:
        options = options or NoiseOptions()
        self.std = options.std
        self.generator = torch.Generator().manual_seed(int(options.seed))

    def __call__(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        colour = torch.rand(b, c, 1, 1, generator=self.generator)
        noise = torch.randn(b, c, h, w, generator=self.generator) * self.std
        pix = (colour + noise).clamp(0, 1).to(x.device, x.dtype)
        return (pix - 0.5) / 0.5
