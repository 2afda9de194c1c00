"""``LabelMaskerTrainConfig``: a run of the label-conditioned masker (``saliency train label``).

The run's fields (data, outputs, classifier, CA pool, optimisation, runtime) are :class:`RunConfig`'s, shared with
the other trainers; this class adds the label masker's architecture, objective and label draws, and its own
defaults: batch 8, 4 epochs, a linear learning-rate decay over the steps, a CA classifier rate of 1e-4.
"""
from __future__ import annotations

from dataclasses import dataclass

from saliency_core.options import option
from saliency_core.train.config import LR_SCHEDULES, ConfigError, RunConfig
from saliency_core.vocabulary import EPS1, EPS2, FILM_POSITIONS, LABEL_OBJECTIVES


@dataclass(frozen=True)
class LabelMaskerTrainConfig(RunConfig):
    """One training run of the label-conditioned masker (FIX or CA)."""

    out: str = option("runs/label", help="run folder (config, logs, state, masker)")
    epochs: int = option(4, low=1, help="number of epochs")
    batch_size: int = option(8, low=1, help="images per step and process")
    lr_schedule: str = option("linear", choices=LR_SCHEDULES, help=(
        "linear (the masker's rate falls linearly to 5 % over the run's steps), step or cosine"))
    classifier_lr: float = option(1e-4, low=0.0, low_open=True, help=(
        "CA classifier SGD learning rate (at 1e-3 the classifier collapsed within 10 steps)"))
    classifier_grad_clip: float = option(1.0, low=0.0, help=(
        "CA classifier gradient-norm clip (the frozen-BN EfficientNet's gradients spike without it)"))
    deleted_fraction: tuple[float, float] = option((0.2, 0.5), kind="list", length=2, low=0.0, low_open=True,
                                                   high=1.0, high_open=True, help=(
        "CA: share of the top label's pixels deleted for the classifier's loss (low,high; uniform; low <= high)"))
    film_at: str = option("hidden", choices=FILM_POSITIONS, help=(
        "the decoder's FiLM: hidden (after the shared 3x3 conv; cheap) or input"))
    label_map: bool = option(False, help="also read the label's class activation map (film_at hidden only)")
    objective: str = option("insertion", choices=LABEL_OBJECTIVES, help=(
        "insertion (soft insertion AUC: completeness and soundness), calibrated (track f(x,a) on random-image "
        "composites) or gupta (maximise the label's probability on them)"))
    overshoot_weight: float = option(1.0, low=0.0, help="calibrated: weight of the overshoot term")
    soundness_weight: float = option(1.0, low=0.0, help="insertion: weight of (1 - soundness) against "
                                                        "(1 - completeness)")
    fractions: int = option(4, low=1, help="insertion: soft insertion steps per label (stratified)")
    keep_temperature: float = option(0.5, low=0.0, low_open=True, help=(
        "insertion: softness (in logit units) of the 'top t of the pixels' maps"))
    scale_weight: float = option(0.0, low=0.0, help=(
        "insertion: weight of a calibrated random-image composite term on the mask itself (plus L1 and TV), "
        "which gives the mask a readable scale (the insertion loss sees only the ranking)"))
    eps1: float = option(EPS1, low=0.0, help="completeness floor of the insertion objective")
    eps2: float = option(EPS2, low=0.0, help="soundness floor of the insertion objective")
    l1_weight: float | None = option(None, low=0.0, help=(
        "weight of the mean mask (default: 1 for gupta/calibrated, scale_weight for insertion)"))
    tv_weight: float | None = option(None, low=0.0, help=(
        "weight of the mask's TV (default: 0.01 for gupta/calibrated, 0.01 x scale_weight for insertion)"))
    top_k: int = option(5, low=2, help="labels of ranks 2..top_k are the 'rest' labels drawn")
    low_probability_labels: int = option(1, low=0, help="labels per image drawn uniformly from outside the top_k")
    rest_labels: int = option(1, low=1, help="labels per image drawn from ranks 2..top_k (uniformly for insertion); "
                                             "at most top_k - 1")

    def _derive(self) -> None:
        super()._derive()
        ranking_only = self.objective == "insertion"
        if self.l1_weight is None:
            self._set("l1_weight", self.scale_weight * 1.0 if ranking_only else 1.0)
        if self.tv_weight is None:
            self._set("tv_weight", self.scale_weight * 0.01 if ranking_only else 0.01)

    def validate(self) -> None:
        """Raise :class:`ConfigError` (a ValueError) naming the first bad field that spans fields."""
        if self.label_map and self.film_at != "hidden":
            raise ConfigError("label_map needs film_at='hidden'")
        super().validate()
        lo, hi = self.deleted_fraction
        if not 0 < lo <= hi < 1:
            raise ConfigError(f"deleted_fraction must be 0 < low <= high < 1, got {self.deleted_fraction}")
        if self.scale_weight > 0 and self.objective != "insertion":
            raise ConfigError("scale_weight applies to the insertion objective only")
        if self.rest_labels > self.top_k - 1:
            raise ConfigError(f"rest_labels must be <= top_k - 1 = {self.top_k - 1}")

    @property
    def labels_per_image(self) -> int:
        """Labels drawn per image and step: the top-1, ``rest_labels``, ``low_probability_labels``."""
        return 1 + self.rest_labels + self.low_probability_labels
