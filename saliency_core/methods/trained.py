"""The trained-masker method: one forward of the classifier, then the small masker head."""
from __future__ import annotations

from pathlib import Path

import torch

from saliency_core.classifiers.builders import Classifier, ClassifierOutput
from saliency_core.maskers.checkpoint import MaskerCheckpoint, load_masker
from saliency_core.methods.base import MethodResult, ProgressFn, checkpoints_dir, register_method

#: The shipped masker for the default classifier, used when no checkpoint is given.
DEFAULT_CHECKPOINT = "fix_lite0.safetensors"
#: The shipped label-conditioned (per-label) masker for the default classifier.
DEFAULT_LABEL_CHECKPOINT = "label_lite0.safetensors"


def default_checkpoint(kind: str = "phang") -> Path:
    return checkpoints_dir() / (DEFAULT_LABEL_CHECKPOINT if kind == "label" else DEFAULT_CHECKPOINT)


@register_method("masker", "trained masker network (Phang et al.; FIX or CA checkpoint)")
class MaskerMethod:
    """Explains with a trained masker checkpoint; label-agnostic (one mask whatever the label).

    For a FIX checkpoint the masker reads the explained classifier's own activations (no extra
    forward). A CA checkpoint's masker reads its co-trained classifier, run once more.
    """

    name = "masker"
    #: checkpoint kinds this method accepts (None: any; a label checkpoint then gives one mask per label)
    checkpoint_kinds: tuple[str, ...] | None = None

    def __init__(self, checkpoint: str | Path | None = None) -> None:
        self.checkpoint = Path(checkpoint) if checkpoint else default_checkpoint()
        self._loaded: dict[str, MaskerCheckpoint] = {}

    def load(self, classifier: Classifier) -> MaskerCheckpoint:
        key = classifier.identity
        if key not in self._loaded:
            ckpt = load_masker(self.checkpoint, classifier=classifier, device=classifier.device)
            if self.checkpoint_kinds is not None and ckpt.kind not in self.checkpoint_kinds:
                from saliency_core.maskers.checkpoint import CheckpointError

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
        if ckpt.kind == "label":
            from saliency_core.maskers.label import output_layer_weights

            codes = output_layer_weights(ckpt.classifier)[torch.as_tensor(labels, device=x.device)]
            mask = ckpt.masker(stages, tuple(x.shape[-2:]), codes, head=head)
            return MethodResult(masks=mask[:, 0], per_label=True, info=info)
        mask = ckpt.masker(stages, tuple(x.shape[-2:]))
        return MethodResult(masks=mask[:, 0], per_label=False, info=info)


@register_method("label-masker", "label-conditioned masker: a sound mask per label in one pass", per_label=True)
class LabelMaskerMethod(MaskerMethod):
    """The per-label masker (checkpoint kind "label"); default: the shipped one."""

    name = "label-masker"
    checkpoint_kinds = ("label",)

    def __init__(self, checkpoint: str | Path | None = None) -> None:
        super().__init__(checkpoint or default_checkpoint("label"))

    @staticmethod
    def is_available() -> bool:
        """Without a shipped label checkpoint the method needs ``checkpoint=``; the dashboard hides it."""
        return default_checkpoint("label").exists()
