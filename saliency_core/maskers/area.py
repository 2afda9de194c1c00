"""Area-conditioned masks: a region of exactly the asked area, from a score map (amortised extremal perturbations).

Fong, Patrick & Vedaldi ("Understanding Deep Networks via Extremal Perturbations and Smooth Masks", ICCV 2019) fix
the area a of the mask and let the objective choose *where* it lies. A trained masker that takes a as an input can
miss a by any amount if the area is only a loss term; here it cannot: the network predicts a score map and the mask
is a soft threshold of the per-image standardised scores at their (1 - a)-quantile,

    m = sigmoid((z - q_a) / T),   z = (s - mean s) / std s   (over the full-resolution pixels of each image),

with q_a halfway between the two sorted scores around rank (1 - a) N, so exactly round(a N) pixels lie above 0.5
(ties aside) by construction, and a small temperature T keeps the mask nearly binary. The area a also enters the
decoder (FiLM), so the region can change with it, not only grow. Gradients reach the scores through the sort.

The decoder (:class:`AreaDecoder`) has more capacity than the Phang head of the older conditional checkpoints:
FiLM on the concatenated features, a 3x3 hidden convolution, FiLM again, and a 3x3 head per objective branch.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

#: The target areas (fractions of the image) an area-conditioned masker is trained over by default.
DEFAULT_TARGET_AREA_RANGE = (0.05, 0.6)
#: At most this share of an image's pixels lies in the soft band 0.1 < m < 0.9: the temperature of an image whose
#: scores crowd around the threshold is lowered until the band holds no more pixels than the ranks within
#: +-HALF_BAND / 2 of the threshold's (the issue's limit is 0.10).
HALF_BAND = 0.08
#: Target areas are encoded as log10 over this span (mapped to -1 .. 1), and linearly as 2a - 1.
TARGET_AREA_SPAN = (0.01, 1.0)


def encode_target_area(area: float) -> list[float]:
    """The two code entries of a target area: log10 a over :data:`TARGET_AREA_SPAN` to -1..1, and 2a - 1."""
    lo, hi = (math.log10(v) for v in TARGET_AREA_SPAN)
    a = min(max(float(area), TARGET_AREA_SPAN[0]), TARGET_AREA_SPAN[1])
    return [2 * (math.log10(a) - lo) / (hi - lo) - 1, 2 * a - 1]


def standardise(scores: torch.Tensor) -> torch.Tensor:
    """Each image's scores (B x ...) shifted and scaled to mean 0 and standard deviation 1 over its pixels."""
    flat = scores.flatten(1)
    z = (flat - flat.mean(1, keepdim=True)) / (flat.std(1, keepdim=True) + 1e-6)
    return z.view_as(scores)


def area_threshold(z: torch.Tensor, areas: torch.Tensor, band: float = HALF_BAND) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image, the value q with exactly round(a N) of the N values of ``z`` (B x ...) above it (halfway between
    the sorted values on either side of rank N - round(a N); differentiable through the sort), and the smaller
    distance from q to the values ``band`` / 2 of the ranks below and above it (no gradient)."""
    flat = z.flatten(1)
    n = flat.shape[1]
    ones = torch.round(areas.to(torch.float64) * n).clamp(0, n).long().to(flat.device)
    ranked = flat.sort(dim=1).values
    above = (n - ones).clamp(0, n - 1)       # the smallest value inside the region
    below = (n - ones - 1).clamp(0, n - 1)   # the largest value outside it
    q = 0.5 * (ranked.gather(1, above[:, None]) + ranked.gather(1, below[:, None]))[:, 0]
    # an empty region (a = 0) or the whole image (a = 1): put the threshold past the extreme value
    q = torch.where(ones == 0, ranked[:, -1] + 1.0, q)
    q = torch.where(ones == n, ranked[:, 0] - 1.0, q)
    k = int(band * n / 2)
    lo = ranked.gather(1, (below - k).clamp(0, n - 1)[:, None])[:, 0]
    hi = ranked.gather(1, (above + k).clamp(0, n - 1)[:, None])[:, 0]
    room = torch.minimum(q - lo, hi - q).detach()
    return q, torch.where((ones == 0) | (ones == n), torch.full_like(room, math.inf), room)


def threshold_at_area(scores: torch.Tensor, areas: torch.Tensor, temperature: float,
                      grad_temperature: float = 0.0) -> torch.Tensor:
    """sigmoid((z - q_a) / T): masks (shape of ``scores``) whose region above 0.5 is the top ``areas`` (B,) of each
    image's standardised scores z (see the module docstring). An image whose scores crowd around q_a gets a lower
    T, so that at most :data:`HALF_BAND` of its pixels lie between 0.1 and 0.9 (sigmoid(+-ln 9)).

    ``grad_temperature`` > 0 (training): the same mask forward, but gradients as if T were that (straight-through):
    with T small only the few pixels at the threshold get a gradient; a larger one reaches the region as a whole."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    z = standardise(scores.float())
    # ties (the flat border cells of a bilinear upsampling) would leave the pixels at the threshold at 0.5 and the
    # area short: a fixed, distinct offset per pixel far below any real score difference orders them
    n = z[0].numel()
    z = z + 1e-5 * ((torch.arange(n, device=z.device, dtype=z.dtype) * 0.6180339887) % 1).view(z.shape[1:])
    q, room = area_threshold(z, areas)
    t = (room / math.log(9)).clamp(min=1e-4, max=temperature)
    shape = (-1, *([1] * (z.dim() - 1)))
    mask = torch.sigmoid((z - q.view(shape)) / t.view(shape))
    if grad_temperature > 0 and torch.is_grad_enabled():
        soft = torch.sigmoid((z - q.view(shape)) / grad_temperature)
        mask = soft + (mask - soft).detach()
    return mask


def upsample_scores(scores: torch.Tensor, factors: list[int], input_size: tuple[int, int]) -> torch.Tensor:
    """Scores average-pooled by each row's factor s, then bilinearly to ``input_size`` (a coarser but smooth map,
    so that the threshold still cuts an exact area, which nearest blocks of 1/49 of the image could not)."""
    out = scores.new_empty(scores.shape[0], 1, *input_size)
    for s in sorted(set(factors)):
        index = torch.tensor([i for i, f in enumerate(factors) if f == s], device=scores.device)
        z = scores.index_select(0, index)
        if s > 1:
            z = F.avg_pool2d(z, kernel_size=s, ceil_mode=True)
        out = out.index_copy(0, index, F.interpolate(z, size=input_size, mode="bilinear", align_corners=False))
    return out


class AreaDecoder(nn.Module):
    """features (B x C x h x w), condition code, branch per row -> scores B x 1 x h x w.

    FiLM(code) -> 3x3 conv (hidden) -> ReLU -> [context layers] -> FiLM(code) -> the row's branch's 3x3 head. Both
    FiLMs start as the identity (the MLP's last layer is zero), the heads 10x smaller than He's (as the conditional
    masker's). ``context`` residual 3x3 layers h + ReLU(conv_d(h)), dilation d = 2, 4, 8, .., widen the receptive
    field over the grid (0: none, the older checkpoints): the region's boundary can depend on what lies around it."""

    def __init__(self, channels: int, hidden: int, branches: int, condition_size: int, film_hidden: int,
                 context: int = 0) -> None:
        super().__init__()
        self.channels, self.hidden_channels = channels, hidden
        self.condition = nn.Sequential(nn.Linear(condition_size, film_hidden), nn.ReLU(inplace=True),
                                       nn.Linear(film_hidden, 2 * channels + 2 * hidden))
        self.hidden = nn.Conv2d(channels, hidden, kernel_size=3, padding=1)
        self.heads = nn.ModuleList(nn.Conv2d(hidden, 1, kernel_size=3, padding=1) for _ in range(branches))
        self.context = nn.ModuleList(nn.Conv2d(hidden, hidden, kernel_size=3, padding=2 ** (k + 1),
                                               dilation=2 ** (k + 1)) for k in range(context))
        for m in (self.hidden, *self.heads, *self.context):
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / (9 * m.out_channels)))
            nn.init.zeros_(m.bias)
        for head in self.heads:
            head.weight.data.mul_(0.1)
        nn.init.zeros_(self.condition[-1].weight)
        nn.init.zeros_(self.condition[-1].bias)

    def forward(self, feats: torch.Tensor, code: torch.Tensor, branch: torch.Tensor) -> torch.Tensor:
        g1, b1, g2, b2 = self.condition(code).split([self.channels, self.channels, self.hidden_channels,
                                                     self.hidden_channels], dim=1)
        h = feats * (1 + g1[:, :, None, None]) + b1[:, :, None, None]
        h = F.relu(self.hidden(h))
        for layer in self.context:
            h = h + F.relu(layer(h))
        h = h * (1 + g2[:, :, None, None]) + b2[:, :, None, None]
        if len(self.heads) == 1:
            return self.heads[0](h)
        scores = torch.cat([head(h) for head in self.heads], dim=1)  # cheap: B x branches x h x w
        return scores.gather(1, branch.view(-1, 1, 1, 1).expand(-1, 1, *scores.shape[-2:]))
