"""RISE (Petsiuk et al.): saliency from the classifier's scores on many randomly masked copies.
No maintained library implements it for this contract, so it is written here: batched, seeded.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from saliency_core.classifiers.base import Classifier, ClassifierOutput
from saliency_core.methods.base import MethodResult, ProgressFn, register_method
from saliency_core.methods.scaling import normalise_minmax
from saliency_core.options import check_options, option, seed_option


def rise_params(n: int, size: tuple[int, int], grid: int, p: float, generator: torch.Generator
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random draws of n RISE masks: binary grid x grid cells (1 with probability p) and shifts."""
    h, w = size
    ch, cw = math.ceil(h / grid), math.ceil(w / grid)
    cells = (torch.rand(n, 1, grid, grid, generator=generator) < p).float()
    dy = torch.randint(0, ch, (n,), generator=generator)
    dx = torch.randint(0, cw, (n,), generator=generator)
    return cells, dy, dx


def build_rise_masks(cells: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Cells bilinearly upsampled to (grid + 1) cells, shifted by (dy, dx), cropped -> n x 1 x h x w."""
    h, w = size
    n, grid = cells.shape[0], cells.shape[-1]
    ch, cw = math.ceil(h / grid), math.ceil(w / grid)
    up = F.interpolate(cells, size=((grid + 1) * ch, (grid + 1) * cw), mode="bilinear", align_corners=False)
    rows = (dy.view(n, 1) + torch.arange(h).view(1, h)).view(n, 1, h, 1).expand(n, 1, h, w)
    cols = (dx.view(n, 1) + torch.arange(w).view(1, w)).view(n, 1, 1, w).expand(n, 1, h, w)
    idx = (rows * up.shape[-1] + cols).reshape(n, 1, -1)
    return up.flatten(2).gather(2, idx).view(n, 1, h, w)


def rise_masks(n: int, size: tuple[int, int], grid: int, p: float, generator: torch.Generator) -> torch.Tensor:
    """RISE masks (Petsiuk et al.): n binary grid x grid masks (1 with probability p), bilinearly
    upsampled to (grid + 1) cells and randomly shifted by up to one cell, cropped to ``size``.
    Returns n x 1 x h x w in [0, 1]."""
    return build_rise_masks(*rise_params(n, size, grid, p, generator), size)


@dataclass(frozen=True)
class RiseOptions:
    num_masks: int = option(1000,
                            help=("Number of random masks whose classifier scores are averaged. The paper uses "
                                  "4000-8000; fewer is faster and noisier. (Petsiuk, Das & Saenko)"),
                            low=1, high=20000, main=True)
    grid: int = option(7,
                       help=("Side of the coarse random grid that is upsampled into each mask. Small grids give blobby "
                             "maps; large ones finer but noisier ones. (Petsiuk, Das & Saenko)"), low=1, high=64)
    p: float = option(0.5,
                      help=("Probability that a grid cell is kept in a random mask. The paper uses 0.5. (Petsiuk, Das &"
                            " Saenko)"), low=0.0, low_open=True, high=0.99)
    seed: int = seed_option("the random masks")
    batch_size: int = option(50,
                             help=("How many images go through the classifier at once. It changes speed and memory, not"
                                   " the result. (Petsiuk, Das & Saenko)"), low=1, high=1024)

    def __post_init__(self) -> None:
        check_options(self, "method 'rise'")


@register_method("rise", summary="RISE: randomised input sampling (Petsiuk et al.), batched and seeded",
                 config=RiseOptions, group="Perturbation baseline", per_label=True, on_request=True,
                 paper="Petsiuk, Das & Saenko (2018), RISE: Randomized Input Sampling for Explanation of Black-box "
                       "Models",
                 cost=lambda cfg, k: float(cfg.num_masks))
class RiseMethod:
    """saliency_c = sum_i p_c(x * M_i) M_i / (N p): masked pixels are gray (0 in normalised space).

    Defaults: 1000 masks (the paper used 4000-8000), 7 x 7 grid, p = 0.5, seed 0.
    """

    name = "rise"

    def __init__(self, options: RiseOptions | None = None) -> None:
        o = options or RiseOptions()
        self.num_masks, self.grid, self.p, self.seed, self.batch_size = o.num_masks, o.grid, o.p, o.seed, o.batch_size

    @torch.no_grad()
    def __call__(self, classifier: Classifier, x: torch.Tensor, labels: list[int], clean: ClassifierOutput,
                 progress: ProgressFn | None = None) -> MethodResult:
        gen = torch.Generator().manual_seed(self.seed)
        h, w = x.shape[-2:]
        cells, dy, dx = rise_params(self.num_masks, (h, w), self.grid, self.p, gen)  # drawn up front: the
        # result does not depend on the batch size
        lab = torch.tensor([int(v) for v in labels], device=x.device)
        sal = torch.zeros(len(labels), h, w, device=x.device)
        done = 0
        while done < self.num_masks:
            n = min(self.batch_size, self.num_masks - done)
            sl = slice(done, done + n)
            m = build_rise_masks(cells[sl], dy[sl], dx[sl], (h, w)).to(x.device, x.dtype)
            probs = classifier(x * m).float().softmax(-1)[:, lab]  # n x K
            sal += torch.einsum("nk,nhw->khw", probs, m[:, 0].float())
            done += n
            if progress is not None:
                progress(done / self.num_masks, f"rise: {done}/{self.num_masks} masks")
        sal /= self.num_masks * self.p
        return MethodResult(masks=normalise_minmax(sal), per_label=True,
                            info={"num_masks": self.num_masks, "grid": self.grid, "p": self.p, "seed": self.seed})


register_method("rise-preview", summary="RISE with 50 masks: a quick, noisier preview of the full run",
                config=RiseOptions, defaults={"num_masks": 50}, group="Perturbation baseline", per_label=True,
                on_request=False, cost=lambda cfg, k: float(cfg.num_masks),
                paper="Petsiuk, Das & Saenko (2018), RISE: Randomized Input Sampling for Explanation of Black-box "
                "Models")(RiseMethod)
