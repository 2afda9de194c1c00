"""Completeness and soundness of a saliency map (Gupta et al., "Staying intrinsic, complete and sound").

For image x, label a with clean probability f = f(x, a) and insertion AUC g (gray fill) of a under
a's mask: completeness alpha = min(max(g, eps1) / f, 1) (the mask keeps enough evidence for a) and
soundness beta = min(max(f, eps2) / g, 1) (the mask does not *create* evidence for a). The paper
uses eps1 = 0.01, eps2 = 0.001; the authors' script passes 0.1 for both (configurable here).

Probabilities come from the full softmax by default; ``restrict_to`` gives a softmax over a chosen
label set only, as in the paper's ImageNet runs (which makes soundness much easier to reach).
A method returning one mask for all labels (``shared_mask``) is scored as such: the paper's
"cheating" case, where a single mask can be complete for every label but not sound.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from saliency_core.metrics.insertion import CurveError, CurveResult, insertion_curves, restricted_softmax
from saliency_core.progress import ProgressFn
from saliency_core.vocabulary import EPS1, EPS2

#: "best effort" is defined only for images whose second label has at least this probability.
BEST_EFFORT_MIN_PROB = 0.01


def _safe_ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """min(num / den, 1), with x / 0 = 1 (a zero denominator can never be exceeded)."""
    ratio = torch.where(den > 0, num / den.clamp_min(torch.finfo(den.dtype).tiny), torch.ones_like(num))
    return ratio.clamp(max=1.0)


def completeness(auc: torch.Tensor, f: torch.Tensor, eps1: float = EPS1) -> torch.Tensor:
    """alpha = min(max(g, eps1) / f, 1), element-wise (g = insertion AUC, f = clean probability)."""
    auc, f = torch.as_tensor(auc, dtype=torch.float32), torch.as_tensor(f, dtype=torch.float32)
    return _safe_ratio(auc.clamp_min(eps1), f)


def soundness(auc: torch.Tensor, f: torch.Tensor, eps2: float = EPS2) -> torch.Tensor:
    """beta = min(max(f, eps2) / g, 1), element-wise."""
    auc, f = torch.as_tensor(auc, dtype=torch.float32), torch.as_tensor(f, dtype=torch.float32)
    return _safe_ratio(f.clamp_min(eps2), auc)


@dataclass
class LabelScores:
    """Completeness and soundness of one image's masks, one entry per explained label."""

    labels: list[int]
    names: list[str]
    f: torch.Tensor  # [K] clean probabilities of the labels
    auc: torch.Tensor  # [K] insertion AUC (gray fill unless told otherwise)
    completeness: torch.Tensor  # [K]
    soundness: torch.Tensor  # [K]
    curves: CurveResult
    shared_mask: bool
    predicted: int = -1  # arg-max class of the clean image (in the probability space used)
    second_prob: float = 0.0  # probability of the runner-up class
    prob_space: str = "softmax over all classes"
    eps1: float = EPS1
    eps2: float = EPS2
    notes: list[str] = field(default_factory=list)

    @property
    def worst_completeness(self) -> float:
        return float(self.completeness.min())

    @property
    def worst_soundness(self) -> float:
        return float(self.soundness.min())

    @property
    def best_effort(self) -> float | None:
        """Worst completeness over the labels other than the prediction, or None when the image's
        second label has probability < 0.01 (or no other label was explained)."""
        if self.second_prob < BEST_EFFORT_MIN_PROB:
            return None
        others = [k for k, label in enumerate(self.labels) if label != self.predicted]
        if not others:
            return None
        return float(self.completeness[others].min())

    def worst(self, which: str = "completeness", top_k: int | None = None,
              min_prob: float | None = None) -> float | None:
        """Worst value over the labels, or over the ``top_k`` most probable / those with f >= min_prob."""
        values = {"completeness": self.completeness, "soundness": self.soundness}[which]
        keep = torch.ones(len(self.labels), dtype=torch.bool)
        if top_k is not None:
            order = torch.argsort(self.f, descending=True, stable=True)[:top_k]
            keep = torch.zeros_like(keep)
            keep[order] = True
        if min_prob is not None:
            keep &= self.f >= min_prob
        return float(values[keep].min()) if keep.any() else None

    def to_frame(self):
        """One row per label: label, name, f, auc, completeness, soundness, predicted, shared_mask."""
        import pandas as pd

        return pd.DataFrame({
            "label": self.labels,
            "name": self.names,
            "f": self.f.tolist(),
            "auc": self.auc.tolist(),
            "completeness": self.completeness.tolist(),
            "soundness": self.soundness.tolist(),
            "predicted": [label == self.predicted for label in self.labels],
            "shared_mask": [self.shared_mask] * len(self.labels),
        })


def label_scores(
    classifier: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    masks: torch.Tensor,
    labels: list[int],
    steps: int = 32,
    eps1: float = EPS1,
    eps2: float = EPS2,
    fill: torch.Tensor | None = None,
    restrict_to: list[int] | None = None,
    progress: ProgressFn | None = None,
    batch_size: int = 64,
    clean_logits: torch.Tensor | None = None,
    fill_logits: torch.Tensor | None = None,
) -> LabelScores:
    """Insertion curves of every label under its own mask, then completeness and soundness.

    f comes from the unmasked image, which is the curve's last point (no extra forward). ``clean_logits`` /
    ``fill_logits``: the classifier's output on the unmasked image / the fill, when known (from an earlier
    call's ``curves``): those two images are not classified again (``insertion_curves``).
    """
    labels = [int(v) for v in labels]
    probs_fn = None
    space = "softmax over all classes"
    if restrict_to is not None:
        restrict_to = list(dict.fromkeys(int(v) for v in restrict_to))
        missing = [v for v in labels if v not in restrict_to]
        if missing:
            raise CurveError(f"label {missing[0]} is not in the restricted label set {restrict_to}")
        probs_fn = restricted_softmax(restrict_to)
        space = f"softmax restricted to {len(restrict_to)} labels"
    curves = insertion_curves(classifier, x, masks, labels, steps=steps, fill=fill, mode="insertion",
                              batch_size=batch_size, probs_fn=probs_fn, progress=progress,
                              clean_logits=clean_logits, fill_logits=fill_logits)
    clean = curves.clean_probs
    f = clean[labels].float()
    top2 = clean.topk(min(2, clean.numel()))
    names_src = getattr(classifier, "class_names", None)
    names = [names_src[v] if names_src is not None else str(v) for v in labels]
    return LabelScores(
        labels=labels, names=names, f=f, auc=curves.auc,
        completeness=completeness(curves.auc, f, eps1), soundness=soundness(curves.auc, f, eps2),
        curves=curves, shared_mask=masks.shape[0] == 1,
        predicted=int(top2.indices[0]), second_prob=float(top2.values[1]) if top2.values.numel() > 1 else 0.0,
        prob_space=space, eps1=eps1, eps2=eps2,
    )
