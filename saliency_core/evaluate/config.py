"""The settings of ``saliency evaluate``: :class:`EvalConfig`, what makes two runs comparable (the fingerprint), and
method specs ``NAME[:key=value...]``."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

#: Fields whose change makes earlier results in the same folder incomparable.
_FINGERPRINT = ("images", "labels", "boxes", "pixel_masks", "classifier", "classifier_weights", "extra_classifiers",
                "steps", "eps1", "eps2", "restrict_labels", "deletion", "saliency_metric", "masked_accuracy",
                "infiller", "split", "val_fraction", "split_seed", "seed", "fixed_area", "fixed_area_fill")
SPLITS = ("all", "val", "train")


class EvalError(ValueError):
    """Bad evaluation settings or an output folder that cannot be resumed."""


@dataclass
class EvalConfig:
    """One evaluation run (shared by ``saliency evaluate`` and the dashboard)."""

    images: str = "../shared/data/imagenet-samples/labels.csv"
    methods: list[str] = field(default_factory=lambda: ["masker"])
    labels: str = "top1"
    out: str = "evaluation"
    boxes: str | None = None
    pixel_masks: str | None = None
    classifier: str = "efficientnet_lite0"
    classifier_weights: str | None = None
    extra_classifiers: list[str] = field(default_factory=list)  # NAME or NAME=WEIGHTS
    steps: int = 32
    eps1: float = 0.01
    eps2: float = 0.001
    restrict_labels: list[int] | None = None  # softmax over these labels only (Gupta's ImageNet runs)
    deletion: bool = True
    saliency_metric: bool = True
    masked_accuracy: bool = True
    infiller: str = "blur"  # fill of the infilled masked-out view
    fixed_area: bool = True  # kept / removed top-a regions at a = 0.05, 0.1, 0.2, 0.4 (metrics.fixed_area)
    fixed_area_fill: str = "gray"  # the infiller that fills what a fixed-area region leaves out
    limit: int | None = None
    split: str = "all"  # all, or the class-disjoint val/train part used by `saliency train`
    val_fraction: float = 0.125
    split_seed: int = 0
    device: str = "cpu"
    seed: int = 0
    batch_size: int = 64
    resume: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.methods, str):
            self.methods = [m for m in self.methods.split(",") if m.strip()]
        if not self.methods:
            raise EvalError("give at least one method")
        if self.split not in SPLITS:
            raise EvalError(f"split must be one of {SPLITS}, got '{self.split}'")
        if self.steps < 1:
            raise EvalError("steps must be >= 1")
        if self.limit is not None and self.limit < 1:
            raise EvalError("limit must be >= 1")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def fingerprint(self) -> dict[str, Any]:
        d = self.to_dict()
        return {k: d[k] for k in _FINGERPRINT}


# ----------------------------------------------------------------------------------------------------------- specs
@dataclass
class MethodSpec:
    display: str
    name: str
    options: dict[str, Any]


def parse_method_spec(spec: str) -> MethodSpec:
    """``NAME[:key=value...]`` -> MethodSpec (values parsed as JSON when they can be)."""
    parts = [p for p in spec.strip().split(":")]
    if not parts or not parts[0]:
        raise EvalError(f"bad method spec '{spec}'")
    name, options, display = parts[0].strip(), {}, None
    for part in parts[1:]:
        if "=" not in part:
            raise EvalError(f"method spec '{spec}': '{part}' must look like key=value")
        key, value = (s.strip() for s in part.split("=", 1))
        if key == "as":
            display = value
            continue
        try:
            options[key.replace("-", "_")] = json.loads(value)
        except json.JSONDecodeError:
            options[key.replace("-", "_")] = value
    if display is None:
        display = name
        if name == "masker" and "checkpoint" in options:
            display = f"masker:{Path(str(options['checkpoint'])).stem}"
        elif options:
            display = name + ":" + ":".join(f"{k}={v}" for k, v in options.items())
    return MethodSpec(display, name, options)
