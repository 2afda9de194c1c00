"""The per-label insertion curves, completeness and soundness (``label_scores``), cached on the masks' key, and what
the Compare page says about them (no widgets, no Streamlit).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Callable

import torch

from saliency_core import Classifier, Explanation

from .result_cache import ResultCache, cache_key

ProgressFn = Callable[..., None]



def curves_available() -> bool:
    """Whether the core has per-label scores (``saliency_core.metrics.completeness.label_scores``)."""
    try:
        from saliency_core import label_scores  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass(frozen=True)
class CurveRequest:
    """The named options of ``label_scores`` that the dashboard exposes."""

    steps: int = 16
    eps1: float = 0.01
    eps2: float = 0.001
    restrict: bool = False  # softmax over the curve labels only (restrict_to), as Gupta et al.


def curve_labels(expl: Explanation) -> list[int]:
    """The labels whose curves are drawn: the explained labels (one "labels" choice drives masks and curves;
    a label-agnostic method's one mask is scored for each of them)."""
    return list(expl.labels)


#: The most pixels the curves send through the classifier in one forward (about 128 images at 224 x 352): the
#: curves of the top-5 labels' own masks (75 images at 16 steps) go in one forward pass.
CURVE_BATCH_PIXELS = 10_000_000


def label_scores_key(labels: list[int], request: CurveRequest, expl_key: str) -> str:
    return cache_key("scores", expl_key, [int(v) for v in labels], request.__dict__)


def cached_label_scores(labels: list[int], request: CurveRequest, cache: ResultCache, expl_key: str):
    """The per-label scores for these masks if they are at hand (a toggle back to a seen setting), else None."""
    return cache.get(label_scores_key(labels, request, expl_key))


def curve_batch_size(expl: Explanation, labels: list[int], steps: int) -> int:
    """Images in one classifier forward of the curves: all of them (every step of every distinct mask) when they
    fit in :data:`CURVE_BATCH_PIXELS`."""
    h, w = expl.working_input.shape[-2:]
    images = (len(labels) if expl.per_label else 1) * max(steps - 1, 0) + 2
    return max(1, min(images, max(8, CURVE_BATCH_PIXELS // (h * w))))


def run_label_scores(expl: Explanation, labels: list[int], request: CurveRequest, classifier: Classifier,
                     cache: ResultCache, expl_key: str, progress: ProgressFn | None = None):
    """Insertion curves, completeness and soundness per label (``label_scores``), cached on the masks' key.

    All the steps of all the labels go through the classifier in one batched pass (as many forwards as
    :func:`curve_batch_size` needs: one at the dashboard's sizes). The two end points of every curve (the
    unmasked image and the gray fill) do not depend on the mask: they are classified once per image and reused,
    so a toggle costs ``steps - 1`` images per distinct mask."""
    from saliency_core import label_scores

    key = label_scores_key(labels, request, expl_key)
    hit = cache.get(key)
    if hit is not None:
        return hit
    masks = expl.working_masks if expl.per_label else expl.working_masks[:1]
    if expl.per_label:
        masks = masks[[expl.labels.index(v) for v in labels]]
    x = expl.working_input
    ends_key = cache_key("curve-ends", classifier.identity, hashlib.sha256(x.numpy().tobytes()).hexdigest()[:20],
                         tuple(x.shape))
    ends = cache.get(ends_key)
    scores = label_scores(classifier, x.to(classifier.device), masks.to(classifier.device),
                          labels, steps=request.steps, eps1=request.eps1, eps2=request.eps2,
                          restrict_to=labels if request.restrict else None, progress=progress,
                          batch_size=curve_batch_size(expl, labels, request.steps),
                          clean_logits=ends[0] if ends else None, fill_logits=ends[1] if ends else None)
    if ends is None and scores.curves.clean_logits is not None:
        cache.put(ends_key, (scores.curves.clean_logits, scores.curves.fill_logits))
    cache.put(key, scores)
    return scores


#: Worst-case scores this close are taken as equal (the score table shows three decimals).
SCORE_TIE = 0.005


def why_scores_cannot_separate(top_probability: float, scores: list) -> list[str]:
    """Why the worst-case scores of the compared methods (each one's ``label_scores`` on the same photo) cannot
    tell them apart here, in plain words; empty when they can. From the numbers only: the classifier is unsure of
    its top label (under 40 %, the Demo's "not sure"); every method gets the same worst completeness and the same
    worst soundness; or most methods' worst completeness is the floor eps1 / f(x) of a weak label (its insertion
    AUC is under eps1 whatever the mask, so the score is the label's probability, not the mask's)."""
    from .plain_words import UNSURE

    reasons = []
    if top_probability < UNSURE:
        reasons.append(f"the classifier is unsure of this photo (its top label has {top_probability:.0%}, "
                       f"under {UNSURE:.0%})")
    if len(scores) < 2:
        return reasons
    worst_c = [s.worst_completeness for s in scores]
    worst_s = [s.worst_soundness for s in scores]
    if max(worst_c) - min(worst_c) <= SCORE_TIE and max(worst_s) - min(worst_s) <= SCORE_TIE:
        reasons.append(f"every method gets the same worst completeness ({worst_c[0]:.2f}) and worst soundness "
                       f"({worst_s[0]:.2f})")
    floors = []
    for s in scores:
        k = int(torch.as_tensor(s.completeness).argmin())
        if float(s.auc[k]) <= s.eps1 + 1e-9:  # max(AUC, eps1) / f(x) = eps1 / f(x): the label, not the mask
            floors.append(float(s.f[k]))
    if len(floors) >= 2 and 2 * len(floors) >= len(scores):
        reasons.append(f"the worst completeness of {len(floors)} of {len(scores)} methods is the floor set by a "
                       f"weak label (f(x) {min(floors):.2f}: eps1 / f(x), whatever the mask)")
    return reasons


def top1_scores_row(name: str, scores) -> dict[str, Any]:
    """One method's scores on the top-1 label alone (the first of the explained labels, scored with its own mask)."""
    return {"method": name, "top-1 label": scores.names[0], "f(x)": float(scores.f[0]),
            "insertion AUC": float(scores.auc[0]), "completeness": float(scores.completeness[0]),
            "soundness": float(scores.soundness[0])}
