"""Trained maskers as methods: one forward of the classifier, then the small masker head."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from saliency_core.classifiers.base import Classifier, ClassifierOutput
from saliency_core.maskers.catalog import default_checkpoint
from saliency_core.maskers.checkpoint import CheckpointError, MaskerCheckpoint, load_masker
from saliency_core.methods.base import MethodResult, ProgressFn, register_method
from saliency_core.options import check_options, option


@dataclass(frozen=True)
class MaskerOptions:
    checkpoint: str | None = option(None, kind="checkpoint", main=True,
                                    help=("The trained masker network that predicts the mask from the classifier's own "
                                          "activations (FIX) or from a co-trained classifier (CA). A checkpoint is tied"
                                          " to the classifier it was trained for, and one for another classifier is "
                                          "refused. (Phang, Park & Geras)"))

    def __post_init__(self) -> None:
        check_options(self, "method 'masker'")


@dataclass(frozen=True)
class LabelMaskerOptions:
    checkpoint: str | None = option(None, kind="checkpoint", main=True, checkpoint_kinds=("label",),
                                    help=("The trained masker network that predicts the mask from the classifier's own "
                                          "activations (FIX) or from a co-trained classifier (CA). A checkpoint is tied"
                                          " to the classifier it was trained for, and one for another classifier is "
                                          "refused. (Phang, Park & Geras)"))

    def __post_init__(self) -> None:
        check_options(self, "method 'label-masker'")


@register_method("masker", summary="trained masker network (Phang et al.; FIX or CA checkpoint)",
                 config=MaskerOptions, group="Trained masker", per_label=False, on_request=False,
                 in_comparison=True,
                 paper="Phang, Park & Geras (2020), Investigating and Simplifying Masking-based Saliency Methods for "
                       "Model Interpretability; Zolna, Geras & Cho (2020), Classifier-agnostic saliency map extraction",
                 cost=lambda cfg, k: 1.1)
class MaskerMethod:
    """Explains with a trained masker checkpoint; label-agnostic (one mask whatever the label).

    For a FIX checkpoint the masker reads the explained classifier's own activations (no extra
    forward). A CA checkpoint's masker reads its co-trained classifier, run once more. A per-label
    checkpoint gives one mask per label.
    """

    name = "masker"
    #: checkpoint kinds this method accepts (None: any)
    checkpoint_kinds: tuple[str, ...] | None = None
    default_kind = "phang"

    def __init__(self, options: MaskerOptions | LabelMaskerOptions | None = None) -> None:
        checkpoint = options.checkpoint if options is not None else None
        self.checkpoint = Path(checkpoint) if checkpoint else default_checkpoint(self.default_kind)
        self._loaded: dict[str, MaskerCheckpoint] = {}

    def load(self, classifier: Classifier) -> MaskerCheckpoint:
        key = classifier.identity
        if key not in self._loaded:
            ckpt = load_masker(self.checkpoint, classifier=classifier, device=classifier.device)
            if self.checkpoint_kinds is not None and ckpt.kind not in self.checkpoint_kinds:
                raise CheckpointError(f"{self.checkpoint.name} is a '{ckpt.kind}' masker checkpoint; the "
                                      f"{self.name} method needs one of kind {', '.join(self.checkpoint_kinds)} "
                                      "(use the 'masker' method for it)")
            self._loaded[key] = ckpt
        return self._loaded[key]

    @torch.no_grad()
    def __call__(self, classifier: Classifier, x: torch.Tensor, labels: list[int], clean: ClassifierOutput,
                 progress: ProgressFn | None = None) -> MethodResult:
        ckpt = self.load(classifier)
        stages, head = clean.stages, clean.head
        if ckpt.classifier is not classifier:
            own = ckpt.classifier.forward_features(x)
            stages, head = own.stages, own.head
        info = {"checkpoint": str(self.checkpoint), "masker_kind": ckpt.kind}
        masks, per_label = ckpt.explain(stages, head, tuple(x.shape[-2:]), labels)
        return MethodResult(masks=masks, per_label=per_label, info=info)


@register_method("label-masker", summary="label-conditioned masker: a sound mask per label in one pass",
                 config=LabelMaskerOptions, group="Trained masker", per_label=True, on_request=False,
                 in_comparison=True, available=lambda: default_checkpoint("label").exists(),
                 paper='Gupta, Saunshi, Yu, Lyu & Arora (2022), New Definitions and Evaluations for Saliency Methods',
                 cost=lambda cfg, k: 1.4)
class LabelMaskerMethod(MaskerMethod):
    """The per-label masker (checkpoint kind "label"); default: the shipped one."""

    name = "label-masker"
    checkpoint_kinds = ("label",)
    default_kind = "label"
