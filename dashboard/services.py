"""The explanations the pages show, as thin wrappers around ``saliency_core`` calls (no widgets, no Streamlit):
run and cache a method's masks and their views, classify the unmasked image once, estimate a slow method's time.

Pages and the benchmark call these; ``resources`` keeps one instance of each heavy object per process. Results
go into the :class:`~dashboard.result_cache.ResultCache` shared by all sessions. The modules beside it hold the
rest of what the pages compute, one job each: ``result_cache``, ``inputs`` (uploads, sample photos), ``menus``
(methods, infillers, checkpoints as offered), ``uploads`` (uploaded checkpoints), ``curve_scores`` (per-label
curves) and ``export`` (downloads, result.json, the Compare page as a file).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable

import torch

import saliency_core
from saliency_core import Classifier, ExplainConfig, Explanation, LoadedImage, Method

from . import warmup  # noqa: F401 - lazy imports done once, before sessions race for them
from .result_cache import ResultCache, cache_key
from .inputs import GALLERY_POOL, ImageInput, anonymous, reference_pool

ProgressFn = Callable[..., None]



def explanation_key(classifier: Classifier, image: ImageInput, config: ExplainConfig, show: int | None = None) -> str:
    return cache_key("explain", classifier.identity, image.digest, config.to_dict(), show)


def masks_key(classifier: Classifier, image: ImageInput, config: ExplainConfig, labels: bool = True) -> str:
    """What the masks depend on (not the view's infiller): the key of the method's work, and of the curves.
    ``labels=False``: the key under which a label-agnostic mask serves every choice of labels."""
    return cache_key("masks", classifier.identity, image.digest, config.method,
                     saliency_core.mask_key_options(config), config.labels if labels else None)


def cached_masks(image: ImageInput, config: ExplainConfig, classifier: Classifier,
                 cache: ResultCache) -> saliency_core.MaskResult | None:
    """The method's masks for these inputs if they are at hand: for these labels, or a label-agnostic mask
    made for other labels (the same mask serves every label)."""
    hit = cache.get(masks_key(classifier, image, config))
    if hit is None:
        agnostic = cache.get(masks_key(classifier, image, config, labels=False))
        if agnostic is not None:
            hit = agnostic.for_labels(config.labels)
    return hit


def resolve_config(config: ExplainConfig, classifier: Classifier, loaded: LoadedImage) -> ExplainConfig:
    """Replace dashboard placeholders (``pool="reference-photos"``) by the objects the core expects."""
    if config.infiller_options.get("pool") == GALLERY_POOL:
        opts = {**config.infiller_options, "pool": reference_pool(classifier, loaded)}
        return replace(config, infiller_options=opts)
    return config


def run_explanation(
    image: ImageInput,
    loaded: LoadedImage,
    config: ExplainConfig,
    classifier: Classifier,
    method: Method,
    cache: ResultCache,
    progress: ProgressFn | None = None,
    show: int | None = None,
    predict_views: bool = True,
) -> Explanation:
    """The explanation, cached by image hash + options. The method's masks are cached on their own key, so a
    change that only affects the views (the view's infiller and its options, the label shown) re-renders
    without running the method again, and a label-agnostic mask is not recomputed for another label choice.
    ``predict_views=False``: the masked views' predictions are left for ``saliency_core.classify_views`` (the
    Explain page sends the pictures first and classifies them while the browser draws them)."""
    key = explanation_key(classifier, image, config, show)
    hit = cache.get(key)
    if hit is not None:
        return hit
    loaded = anonymous(loaded)  # masks and explanation go into the shared cache: no session's file name
    masks = masks_for(image, loaded, config, classifier, method, cache, progress)
    expl = saliency_core.render(masks, resolve_config(config, classifier, loaded), classifier, show=show,
                                predict_views=predict_views)
    cache.put(key, expl)
    return expl


def masks_for(image: ImageInput, loaded: LoadedImage, config: ExplainConfig, classifier: Classifier, method: Method,
              cache: ResultCache, progress: ProgressFn | None = None) -> saliency_core.MaskResult:
    """The method's masks for these inputs: from the cache, or computed (``compute_masks``, with the unmasked image's
    output kept per image) and cached, a label-agnostic mask also under the key that serves every label."""
    masks = cached_masks(image, config, classifier, cache)
    if masks is None:
        masks = saliency_core.compute_masks(anonymous(loaded), config, classifier=classifier, method=method,
                                            progress=progress, clean=clean_output(image, loaded, classifier, cache))
        if not masks.per_label:
            cache.put(masks_key(classifier, image, config, labels=False), masks)
    cache.put(masks_key(classifier, image, config), masks)
    return masks


def clean_output(image: ImageInput, loaded: LoadedImage, classifier: Classifier, cache: ResultCache):
    """The classifier's output on the unmasked image, kept per image: a toggle does not classify it again."""
    key = cache_key("clean", classifier.identity, image.digest)
    hit = cache.get(key)
    if hit is None:
        hit = saliency_core.classify_clean(classifier, saliency_core.working_input(loaded, classifier))
        cache.put(key, hit)
    return hit


def cached_explanation(image: ImageInput, config: ExplainConfig, classifier: Classifier,
                       cache: ResultCache, show: int | None = None) -> Explanation | None:
    """The cached explanation for these inputs, without computing anything."""
    return cache.get(explanation_key(classifier, image, config, show))


def has_masks(image: ImageInput, config: ExplainConfig, classifier: Classifier, cache: ResultCache) -> bool:
    """Whether the method's masks for these inputs are at hand (then views need no Run, only a render)."""
    return cached_masks(image, config, classifier, cache) is not None


def top_predictions(loaded: LoadedImage, image: ImageInput, classifier: Classifier, cache: ResultCache,
                    k: int = 5) -> list:
    """The classifier's top-k labels on the unmasked image (``saliency_core.explanation.predict``)."""
    from saliency_core import predict

    key = cache_key("predict", classifier.identity, image.digest, k)
    hit = cache.get(key)
    if hit is None:
        hit = predict(loaded, classifier, k=k)
        cache.put(key, hit)
    return hit




def seconds_per_pass(classifier: Classifier, loaded: LoadedImage, cache: ResultCache) -> float:
    """Seconds of one classifier image pass at this image's working size, measured once (a batch of 8)."""
    x = classifier.preprocessing.pil_to_input(loaded.image).to(classifier.device)
    key = cache_key("pass-time", classifier.identity, tuple(x.shape))
    hit = cache.get(key)
    if hit is None:
        import time

        batch = x.repeat(8, 1, 1, 1)
        with torch.no_grad():
            classifier(batch[:1])  # warm-up
            t = time.perf_counter()
            classifier(batch)
        hit = (time.perf_counter() - t) / 8
        cache.put(key, hit)
    return hit


def estimate_seconds(name: str, options: dict[str, Any], n_labels: int, classifier: Classifier,
                     loaded: LoadedImage, cache: ResultCache) -> float | None:
    """About how long a method takes here: the image passes it declares times the measured time of one pass."""
    try:
        passes = saliency_core.estimated_passes(name, n_labels, **options)
    except ValueError:
        return None
    return None if passes is None else passes * seconds_per_pass(classifier, loaded, cache)


def method_options(config: ExplainConfig) -> dict[str, Any]:
    """The options the method runs with (the explanation's seed included where the method declares one)."""
    return saliency_core.mask_key_options(config)


def label_count(spec: str) -> int:
    """How many labels a labels choice explains (``top5`` -> 5, ``3,7`` -> 2)."""
    try:
        return saliency_core.parse_labels(spec).count
    except saliency_core.LabelSpecError:  # a choice being typed: the estimate counts one label
        return 1


def describe_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "an unknown time"
    if seconds < 1:
        return "under a second"
    if seconds < 90:
        return f"about {seconds:.0f} s"
    if seconds < 5400:
        return f"about {seconds / 60:.0f} min"
    return f"about {seconds / 3600:.1f} h"
