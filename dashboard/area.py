"""The area curve (issue 25; Fong, Patrick & Vedaldi 2019): how much of the class a method's region keeps when it is
shown alone, and how much removing it takes away, at 8 areas from 5 % to 60 % of the picture (no widgets).

The region at area a is, for a method that takes an area (the ``takes_area`` trait), its own mask made at area a; for
any other method, the top a of its map, labelled as such. Scored by ``saliency_core``'s fixed-area functions
(``top_area_regions``, ``kept_and_removed``): the 16 kept and removed pictures go through the classifier in small
chunks (:data:`AREA_CURVE_BATCH_PIXELS`: faster than one batch on a CPU), the whole image's probability comes from
the explanation's own forward, and an area-aware method makes its 8 masks in one batched pass (its ``areas``
option). Cached on the masks' key without the chosen area, so moving the area slider recomputes the region, not the
curve.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
import torch
from PIL import Image

import saliency_core
from saliency_core import Classifier, ExplainConfig, Explanation

from .inputs import ImageInput
from .result_cache import ResultCache, cache_key


#: The curve's areas: 8 from 5 % to 60 % (the core's, as ``saliency evaluate`` uses them).
CURVE_AREAS: tuple[float, ...] = saliency_core.CURVE_AREAS
#: The curve marks the smallest area whose region alone keeps this share of the whole image's probability.
KEEP_SHARE = 0.8
#: The most pixels of one classifier forward of the curve's pictures: 2 at 224 x 224, 1 at the dashboard's usual
#: 224 x 352. On this 2-core CPU, one thread, the 16 pictures at 224 x 352 took 0.49 s one by one against 0.87 s as one
#: batch (a batch's activations outgrow the cache); the curve's 16 pictures were 0.90 of its 1.0 s.
AREA_CURVE_BATCH_PIXELS = 2 * 224 * 224
#: The options an area-aware method takes (interfaces: ``area`` the region's fraction, ``areas`` extra ones).
AREA, AREAS = "area", "areas"


@dataclass(frozen=True)
class AreaCurve:
    """The class probability with only the region kept and with it removed, at each area, for one label."""

    areas: tuple[float, ...]
    kept: tuple[float, ...]
    removed: tuple[float, ...]
    clean: float  # the probability on the whole image
    label: int
    name: str
    own_masks: bool  # True: the method's own mask at each area; False: the top a of its one map
    smallest: float | None  # the smallest area whose region alone keeps KEEP_SHARE of the whole image's probability
    seconds: float  # the time it took (masks at the 8 areas, when computed for it, and the forward)

    @property
    def how(self) -> str:
        """What the region is, in words (shown beside the curve)."""
        return "its own mask at each area" if self.own_masks else "the top a of its map"


def takes_area(entry, options: dict | None = None) -> bool:
    """Whether the method makes a region of a given area itself (the ``takes_area`` trait) with what is loaded: a
    checkpoint whose option space hides ``area`` (a conditional masker trained without the area input) does not."""
    if not getattr(entry, "takes_area", False):
        return False
    if options is None:
        return True
    from .menus import option_space

    spec = option_space(entry, {k: v for k, v in options.items() if k == "checkpoint"}).get(AREA)
    return spec is None or spec.shown


def curve_config(config: ExplainConfig, label: int) -> ExplainConfig:
    """An area-aware method's run for the curve: its masks of ``label`` at the 8 areas of :data:`CURVE_AREAS` in one
    batched run (the first as its ``area``, the other 7 as ``areas``), whatever area is chosen on the slider, so the
    run and its cache do not change when the slider moves."""
    return replace(config, labels=str(int(label)),
                   method_options={**config.method_options, AREA: CURVE_AREAS[0], AREAS: CURVE_AREAS[1:]})


def curve_key(classifier: Classifier, image: ImageInput, config: ExplainConfig, label: int) -> str:
    """What the curve depends on: the masks' inputs less the chosen area (the curve covers every area)."""
    options = {k: v for k, v in saliency_core.mask_key_options(config).items() if k not in (AREA, AREAS)}
    return cache_key("area-curve", classifier.identity, image.digest, config.method, options, int(label))


def _label_index(labels: list[int], label: int, per_label: bool) -> int:
    return labels.index(label) if per_label and label in labels else 0


def masks_at_areas(masks: saliency_core.MaskResult, label: int, area: float | None) -> torch.Tensor | None:
    """An area-aware run's masks of ``label`` at each of :data:`CURVE_AREAS` (8 x h x w): its main mask (made at
    ``area``) and its masks at its extra ``areas``; None when the run did not make them all."""
    k = _label_index(masks.labels, label, masks.per_label)
    by_area = {} if area is None else {round(float(area), 6): masks.masks[min(k, masks.masks.shape[0] - 1)]}
    if masks.area_masks is not None:
        for i, a in enumerate(masks.areas):
            by_area[round(float(a), 6)] = masks.area_masks[i, min(k, masks.area_masks.shape[1] - 1)]
    if not all(a in by_area for a in CURVE_AREAS):
        return None
    return torch.stack([by_area[a] for a in CURVE_AREAS]).float().clamp(0, 1)


def run_area_curve(image: ImageInput, config: ExplainConfig, expl: Explanation, masks: saliency_core.MaskResult,
                   entry, classifier: Classifier, cache: ResultCache,
                   curve_masks: Callable[..., saliency_core.MaskResult] | None = None, label: int | None = None,
                   progress: Callable[..., None] | None = None) -> AreaCurve:
    """The area curve of one label (default: the label the views show), cached on :func:`curve_key`.

    A method that takes an area: its masks at the 8 areas from ``curve_masks(progress)``, one batched run at
    :func:`curve_config`; any other method: the top a of its map (the explanation's own masks). The 16 pictures go
    through the classifier in chunks of :data:`AREA_CURVE_BATCH_PIXELS` (``saliency_core.area_curve``); the whole
    image's probability is the run's own."""
    label = int(expl.shown if expl.shown is not None else expl.labels[0]) if label is None else int(label)
    key = curve_key(classifier, image, config, label)
    hit = cache.get(key)
    if hit is not None:
        return hit
    t0 = time.perf_counter()
    own = takes_area(entry, config.method_options)
    if own:
        if curve_masks is None:
            raise ValueError(f"{config.method} takes an area: its curve needs a run at the curve's areas")
        maps = masks_at_areas(curve_masks(progress), label, CURVE_AREAS[0])
        if maps is None:
            raise ValueError(f"{config.method} did not make its masks at the areas it was asked for")
    else:
        maps = masks.masks[_label_index(masks.labels, label, masks.per_label)]
    x = masks.working_input.to(classifier.device)
    clean = float(masks.probs[label]) if masks.probs is not None else None
    chunk = max(1, AREA_CURVE_BATCH_PIXELS // (x.shape[-2] * x.shape[-1]))
    result = saliency_core.area_curve(classifier, x, label, maps.to(x.device), areas=CURVE_AREAS,
                                      keep_fraction=KEEP_SHARE, clean_prob=clean, batch_size=chunk)
    frame = result.frame
    curve = AreaCurve(areas=CURVE_AREAS, kept=tuple(float(v) for v in frame["kept"]),
                      removed=tuple(float(v) for v in frame["removed"]), clean=float(frame.attrs["clean"]),
                      label=label, name=classifier.class_names[label], own_masks=own,
                      smallest=result.smallest_area, seconds=time.perf_counter() - t0)
    cache.put(key, curve)
    return curve


def region_picture(image: Image.Image, mask: np.ndarray, area: float, dim: float = 0.25) -> Image.Image:
    """The photo with the region of ``area`` (the top ``area`` of ``mask``, at the photo's size) as it is and the
    rest dimmed towards gray: where the region is, plainly."""
    m = torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32))
    if m.shape != (image.height, image.width):
        m = saliency_core.resize_mask(m, image.height, image.width)
    region = saliency_core.top_area_regions(m, float(area)).numpy()[..., None]
    photo = np.asarray(image.convert("RGB"), dtype=np.float32)
    out = photo * region + (dim * photo + (1 - dim) * 128.0) * (1 - region)
    return Image.fromarray(out.clip(0, 255).astype(np.uint8))
