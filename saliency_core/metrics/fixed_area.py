"""Fixed-area scoring (issue 25; Fong, Patrick & Vedaldi 2019): keep or remove exactly a fraction ``a`` of the image.

A map is turned into a binary *region* of exactly ``round(a * N)`` pixels (``N = h * w``, rounded half to even as
:func:`saliency_core.objectives.area_step` does, so the region is the step the sorted area loss aims at): its top
pixels, ties broken by the pixel's row-major index (the earlier pixel first, a stable sort, as the insertion curves
rank pixels). Comparing methods at the same area removes the question of how much each one shows: only *where* is
left.

The region is then scored twice by the classifier, in one batched forward for every region of the image:
*kept* (only the region shown, the rest filled) and *removed* (the region filled). The fill is gray (0 in the
normalised space) by default, or any ``1 x 3 x h x w`` tensor, or an infiller ``(x, keep) -> fill``.

- :func:`top_area_regions`: maps -> binary regions at one or several areas;
- :func:`region_iou`: how much two regions overlap (intersection over union);
- :func:`kept_and_removed`: class probability (and whether the class stays top-1) with each region kept / removed;
- :func:`area_curve`: both along :data:`CURVE_AREAS` (8 areas, 0.05 .. 0.6) and the smallest area keeping 80 % of
  the clean probability;
- :func:`bootstrap_ci`: a mean with its percentile bootstrap 95 % interval over images (seeded ``torch.Generator``),
  paired differences included (pass ``a - b``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple, Sequence

import torch

#: The areas of the evaluation protocol (issue 25 item 4).
FIXED_AREAS: tuple[float, ...] = (0.05, 0.1, 0.2, 0.4)
#: The 8 equally spaced areas of the area curve, 0.05 .. 0.6.
CURVE_AREAS: tuple[float, ...] = tuple(round(0.05 + i * (0.6 - 0.05) / 7, 6) for i in range(8))

Fill = torch.Tensor | Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None


class FixedAreaError(ValueError):
    """Inputs to fixed-area scoring that do not fit together."""


def area_pixels(area: float, pixels: int) -> int:
    """round(a * pixels), half to even (the count of ones of ``objectives.area_step``)."""
    return int(torch.round(torch.tensor(float(area), dtype=torch.float64) * pixels).clamp(0, pixels))


def _check_area(area: float) -> float:
    a = float(area)
    if not 0.0 <= a <= 1.0:
        raise FixedAreaError(f"area must be in [0, 1], got {area}")
    return a


def top_area_regions(maps: torch.Tensor, area: float | Sequence[float]) -> torch.Tensor:
    """Binary regions holding the top ``round(a * h * w)`` pixels of each map (1 = in the region).

    ``maps``: ``... x h x w`` (any leading shape). ``area``: one fraction (result: the shape of ``maps``) or a sequence
    of A fractions (result: ``A x ...``). Ties are broken by the pixel's row-major index (earlier pixel first), so a
    constant map gives the first ``round(a * N)`` pixels in reading order.
    """
    if maps.dim() < 2:
        raise FixedAreaError(f"maps must be ... x h x w, got {tuple(maps.shape)}")
    if not torch.isfinite(maps).all():
        raise FixedAreaError("maps hold NaN or infinite values")
    several = not isinstance(area, (int, float))
    areas = [_check_area(a) for a in (area if several else [area])]
    lead, (h, w) = maps.shape[:-2], maps.shape[-2:]
    flat = maps.reshape(-1, h * w).float()
    order = torch.argsort(-flat, dim=1, stable=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(h * w, device=flat.device).expand_as(order))
    out = torch.stack([(ranks < area_pixels(a, h * w)).to(maps.dtype if maps.is_floating_point() else torch.float32)
                       for a in areas])
    out = out.reshape(len(areas), *lead, h, w)
    return out if several else out[0]


@dataclass
class KeptRemoved:
    """Per region: the class probability with only the region kept / with it removed, and whether the class is
    the classifier's top-1 there. ``kept_logits`` / ``removed_logits``: R x C raw outputs (for other targets)."""

    kept: torch.Tensor
    removed: torch.Tensor
    kept_top1: torch.Tensor
    removed_top1: torch.Tensor
    kept_logits: torch.Tensor
    removed_logits: torch.Tensor


def region_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Intersection over union of binary regions ``... x h x w`` (nonzero = in), one value per leading index.
    Two empty regions overlap fully (1.0)."""
    if a.shape != b.shape or a.dim() < 2:
        raise FixedAreaError(f"regions must share one ... x h x w shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    a, b = a.flatten(-2) != 0, b.flatten(-2) != 0
    inter, union = (a & b).sum(-1), (a | b).sum(-1)
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(inter, dtype=torch.float32)).float()


def _labels(labels: int | Sequence[int] | torch.Tensor, count: int) -> torch.Tensor:
    t = torch.as_tensor(labels, dtype=torch.long).reshape(-1)
    if t.numel() == 1:
        return t.expand(count).clone()
    if t.numel() != count:
        raise FixedAreaError(f"{t.numel()} labels for {count} regions (give one, or one per region)")
    return t


@torch.no_grad()
def kept_and_removed(classifier: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                     labels: int | Sequence[int] | torch.Tensor, regions: torch.Tensor, fill: Fill = None,
                     probs_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
                     batch_size: int | None = None) -> KeptRemoved:
    """Score R regions of one image: ``x`` 1 x 3 x h x w (normalised), ``regions`` R x h x w in [0, 1] (binary from
    :func:`top_area_regions`; soft values blend), ``labels`` one class or one per region.

    The 2R composites go through the classifier in ONE forward (``batch_size`` None) or in chunks of ``batch_size``:
    first the R kept views ``x * r + fill * (1 - r)``, then the R removed ones ``x * (1 - r) + fill * r``. ``fill``:
    None (gray: zeros), a 1 x 3 x h x w tensor, or an infiller called once on the whole batch with each view's keep
    mask. ``probs_fn``: logits -> probabilities (default: softmax over all classes).
    """
    if x.dim() != 4 or x.shape[0] != 1 or x.shape[1] != 3:
        raise FixedAreaError(f"x must be 1 x 3 x h x w, got {tuple(x.shape)}")
    if regions.dim() == 2:
        regions = regions[None]
    if regions.dim() != 3 or tuple(regions.shape[-2:]) != tuple(x.shape[-2:]):
        raise FixedAreaError(f"regions must be R x h x w at x's size {tuple(x.shape[-2:])}, got {tuple(regions.shape)}")
    r = regions.shape[0]
    target = _labels(labels, r)
    keep = torch.cat([regions, 1.0 - regions]).to(x.device, x.dtype).unsqueeze(1)  # 2R x 1 x h x w
    xs = x.expand(2 * r, -1, -1, -1)
    if fill is None:
        batch = xs * keep
    elif isinstance(fill, torch.Tensor):
        if tuple(fill.shape) != tuple(x.shape):
            raise FixedAreaError(f"fill must have x's shape {tuple(x.shape)}, got {tuple(fill.shape)}")
        batch = xs * keep + fill.to(x.device, x.dtype) * (1.0 - keep)
    else:
        batch = xs * keep + fill(xs, keep).to(x.dtype) * (1.0 - keep)
    step = batch.shape[0] if not batch_size else batch_size
    logits = torch.cat([classifier(batch[i:i + step].contiguous(memory_format=torch.channels_last))
                        for i in range(0, batch.shape[0], step)]).float().cpu()
    probs = (probs_fn or (lambda z: z.softmax(-1)))(logits).float()
    idx = torch.arange(2 * r)
    tgt = torch.cat([target, target])
    p = probs[idx, tgt]
    top1 = logits.argmax(-1) == tgt
    return KeptRemoved(kept=p[:r], removed=p[r:], kept_top1=top1[:r], removed_top1=top1[r:],
                       kept_logits=logits[:r], removed_logits=logits[r:])


class AreaCurve(NamedTuple):
    """``frame``: one row per area (area, kept, removed, kept_top1, removed_top1); ``frame.attrs['clean']`` holds
    the clean probability. ``smallest_area``: the smallest area whose kept probability is at least
    ``keep_fraction`` of the clean one (None: no area does)."""

    frame: "pd.DataFrame"  # noqa: F821 - pandas imported lazily
    smallest_area: float | None


@torch.no_grad()
def area_curve(classifier: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, label: int, maps: torch.Tensor,
               areas: Sequence[float] = CURVE_AREAS, fill: Fill = None, keep_fraction: float = 0.8,
               clean_prob: float | None = None, probs_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
               batch_size: int | None = None) -> AreaCurve:
    """The kept / removed probability of ``label`` at each area, and the smallest area keeping ``keep_fraction``
    (80 %) of the clean probability.

    ``maps``: one map h x w (the region at area a is its top a) or A x h x w, one per area (an area-aware method's
    own mask at each area, binarised at that area). The clean image joins the same forward unless ``clean_prob``
    is given: 2A (+ 1) images, in one batch or in chunks of ``batch_size`` (:func:`kept_and_removed`).
    """
    import pandas as pd

    areas = [_check_area(a) for a in areas]
    if not areas:
        raise FixedAreaError("give at least one area")
    if maps.dim() == 2:
        regions = top_area_regions(maps, areas)
    elif maps.dim() == 3 and maps.shape[0] == len(areas):
        regions = torch.stack([top_area_regions(m, a) for m, a in zip(maps, areas)])
    else:
        raise FixedAreaError(f"maps must be h x w or {len(areas)} x h x w (one per area), got {tuple(maps.shape)}")
    if clean_prob is None:  # the whole image as one more "kept" region: the same forward
        regions = torch.cat([regions, torch.ones_like(regions[:1])])
    scores = kept_and_removed(classifier, x, label, regions, fill=fill, probs_fn=probs_fn, batch_size=batch_size)
    n = len(areas)
    clean = float(scores.kept[n]) if clean_prob is None else float(clean_prob)
    frame = pd.DataFrame({"area": areas, "kept": scores.kept[:n].tolist(), "removed": scores.removed[:n].tolist(),
                          "kept_top1": scores.kept_top1[:n].tolist(), "removed_top1": scores.removed_top1[:n].tolist()})
    frame.attrs["clean"] = clean
    enough = [a for a, k in zip(areas, frame["kept"]) if k >= keep_fraction * clean]
    return AreaCurve(frame, min(enough) if enough else None)


def bootstrap_ci(values: torch.Tensor | Sequence[float], level: float = 0.95, resamples: int = 2000,
                 generator: torch.Generator | None = None) -> tuple[float, float, float]:
    """(mean, low, high): the mean over images with its percentile bootstrap interval (images resampled with
    replacement, ``resamples`` times; seeded by ``generator``, seed 0 when None). NaN values are left out; a paired
    difference is ``bootstrap_ci(a - b)`` over the same images. Fewer than 2 values: the interval is (mean, mean)."""
    v = torch.as_tensor(values, dtype=torch.float64).reshape(-1)
    v = v[~torch.isnan(v)]
    if v.numel() == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(v.mean())
    if v.numel() < 2:
        return mean, mean, mean
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    idx = torch.randint(v.numel(), (resamples, v.numel()), generator=g)
    means = v[idx].mean(dim=1)
    tail = (1.0 - level) / 2
    lo, hi = torch.quantile(means, torch.tensor([tail, 1.0 - tail], dtype=torch.float64)).tolist()
    return mean, lo, hi
