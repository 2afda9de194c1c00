"""``LabelMaskerTrainConfig``: a run of the label-conditioned masker (``saliency train label``).

The run's fields (data, outputs, classifier, CA pool, optimisation, runtime) are :class:`RunConfig`'s, shared with
the other trainers; this class adds the label masker's architecture, objective and label draws, and its own
defaults: batch 8, 4 epochs, a linear learning-rate decay over the steps, a CA classifier rate of 1e-4.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from saliency_core.train.config import ConfigError, RunConfig


@dataclass
class LabelMaskerTrainConfig(RunConfig):
    """One training run of the label-conditioned masker (FIX or CA)."""

    out: str = field(default="runs/label", metadata={"help": "run folder (config, logs, state, masker)"})
    epochs: int = field(default=4, metadata={"help": "number of epochs"})
    batch_size: int = field(default=8, metadata={"help": "images per step and process"})
    lr_schedule: str = field(default="linear", metadata={
        "help": "linear (the masker's rate falls linearly to 5 % over the run's steps), step or cosine"})
    classifier_lr: float = field(default=1e-4, metadata={
        "help": "CA classifier SGD learning rate (at 1e-3 the classifier collapsed within 10 steps)"})
    classifier_grad_clip: float = field(default=1.0, metadata={
        "help": "CA classifier gradient-norm clip (the frozen-BN EfficientNet's gradients spike without it)"})
    deleted_fraction: tuple[float, float] = field(default=(0.2, 0.5), metadata={
        "help": "CA: share of the top label's pixels deleted for the classifier's loss (low,high; uniform)"})
    film_at: str = field(default="hidden", metadata={
        "help": "the decoder's FiLM: hidden (after the shared 3x3 conv; cheap) or input"})
    label_map: bool = field(default=False, metadata={
        "help": "also read the label's class activation map (film_at hidden only)"})
    objective: str = field(default="insertion", metadata={
        "help": "insertion (soft insertion AUC: completeness and soundness), calibrated (track f(x,a) on random-image "
                "composites) or gupta (maximise the label's probability on them)"})
    overshoot_weight: float = field(default=1.0, metadata={"help": "calibrated: weight of the overshoot term"})
    soundness_weight: float = field(default=1.0, metadata={
        "help": "insertion: weight of (1 - soundness) against (1 - completeness)"})
    fractions: int = field(default=4, metadata={"help": "insertion: soft insertion steps per label (stratified)"})
    keep_temperature: float = field(default=0.5, metadata={
        "help": "insertion: softness (in logit units) of the 'top t of the pixels' maps"})
    scale_weight: float = field(default=0.0, metadata={
        "help": "insertion: weight of a calibrated random-image composite term on the mask itself (plus L1 and TV), "
                "which gives the mask a readable scale (the insertion loss sees only the ranking)"})
    eps1: float = field(default=0.01, metadata={"help": "completeness floor of the insertion objective"})
    eps2: float = field(default=0.001, metadata={"help": "soundness floor of the insertion objective"})
    l1_weight: float | None = field(default=None, metadata={
        "help": "weight of the mean mask (default: 1 for gupta/calibrated, scale_weight for insertion)"})
    tv_weight: float | None = field(default=None, metadata={
        "help": "weight of the mask's TV (default: 0.01 for gupta/calibrated, 0.01 x scale_weight for insertion)"})
    top_k: int = field(default=5, metadata={"help": "labels of ranks 2..top_k are the 'rest' labels drawn"})
    low_probability_labels: int = field(default=1, metadata={
        "help": "labels per image drawn uniformly from outside the top_k"})
    rest_labels: int = field(default=1, metadata={
        "help": "labels per image drawn from ranks 2..top_k (uniformly for insertion)"})

    def __post_init__(self) -> None:
        raw = self.deleted_fraction
        try:
            self.deleted_fraction = tuple(float(v) for v in (raw.split(",") if isinstance(raw, str) else raw))
        except (TypeError, ValueError):
            raise ConfigError(f"deleted_fraction must look like 0.2,0.5, got '{raw}'") from None
        ranking_only = self.objective == "insertion"
        if self.l1_weight is None and isinstance(self.scale_weight, (int, float)):
            self.l1_weight = self.scale_weight * 1.0 if ranking_only else 1.0
        if self.tv_weight is None and isinstance(self.scale_weight, (int, float)):
            self.tv_weight = self.scale_weight * 0.01 if ranking_only else 0.01
        super().__post_init__()

    def validate(self) -> None:
        """Raise :class:`ConfigError` (a ValueError) naming the first bad field."""
        from saliency_core.objectives import LABEL_OBJECTIVES

        if self.film_at not in ("input", "hidden"):  # checked before any data or model is loaded
            raise ConfigError(f"film_at must be 'input' or 'hidden', got '{self.film_at}'")
        if self.label_map and self.film_at != "hidden":
            raise ConfigError("label_map needs film_at='hidden'")
        super().validate()
        if len(self.deleted_fraction) != 2:
            raise ConfigError(f"deleted_fraction must be two numbers (low,high), got {self.deleted_fraction}")
        lo, hi = self.deleted_fraction
        if not 0 < lo <= hi < 1:
            raise ConfigError(f"deleted_fraction must be 0 < low <= high < 1, got {self.deleted_fraction}")
        if self.classifier_grad_clip < 0:
            raise ConfigError("classifier_grad_clip must be >= 0")
        if self.classifier_lr <= 0:
            raise ConfigError("classifier_lr must be > 0")
        if self.objective not in LABEL_OBJECTIVES:
            raise ConfigError(f"objective must be one of {LABEL_OBJECTIVES}, got '{self.objective}'")
        if self.scale_weight < 0:
            raise ConfigError("scale_weight must be >= 0")
        if self.scale_weight > 0 and self.objective != "insertion":
            raise ConfigError("scale_weight applies to the insertion objective only")
        for name in ("overshoot_weight", "soundness_weight", "l1_weight", "tv_weight", "eps1", "eps2"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0")
        if self.top_k < 2:
            raise ConfigError("top_k must be >= 2")
        if self.fractions < 1 or self.rest_labels < 1 or not self.keep_temperature > 0:
            raise ConfigError("fractions and rest_labels must be >= 1 and keep_temperature > 0")
        if self.rest_labels > self.top_k - 1:
            raise ConfigError(f"rest_labels must be <= top_k - 1 = {self.top_k - 1}")
        if self.low_probability_labels < 0:
            raise ConfigError("low_probability_labels must be >= 0")

    @property
    def labels_per_image(self) -> int:
        """Labels drawn per image and step: the top-1, ``rest_labels``, ``low_probability_labels``."""
        return 1 + self.rest_labels + self.low_probability_labels
