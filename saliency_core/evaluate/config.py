"""The settings of ``saliency evaluate``: :class:`EvalConfig`, what makes two runs comparable (the fingerprint), and
method specs ``NAME[:key=value...]``."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from saliency_core.explain_config import DEFAULT_INFILLER
from saliency_core.labels import parse_labels
from saliency_core.options import OptionError, check_options, option
from saliency_core.vocabulary import EPS1, EPS2

#: Fields whose change makes earlier results in the same folder incomparable.
_FINGERPRINT = ("images", "labels", "boxes", "pixel_masks", "classifier", "classifier_weights", "extra_classifiers",
                "steps", "eps1", "eps2", "restrict_labels", "deletion", "saliency_metric", "masked_accuracy",
                "infiller", "split", "val_fraction", "split_seed", "seed", "fixed_area", "fixed_area_fill")
SPLITS = ("all", "val", "train")


class EvalError(ValueError):
    """Bad evaluation settings or an output folder that cannot be resumed."""


@dataclass(frozen=True)
class EvalConfig:
    """One evaluation run (shared by ``saliency evaluate`` and the dashboard): each field declared once with
    :func:`~saliency_core.options.option`, checked in ``__post_init__`` (a bad value is one :class:`EvalError`
    line), frozen."""

    images: str = option("../shared/data/imagenet-samples/labels.csv",
                         help="folder of images, ImageFolder tree, or CSV (file,label)")
    methods: list[str] = option(default_factory=lambda: ["masker"], help="method specs NAME[:key=value...]")
    labels: str = option("top1", help="labels explained per image: top1, topK")
    out: str = option("evaluation", help="output folder")
    boxes: str | None = option(None, help="ground-truth boxes: folder of ILSVRC XML files or a CSV")
    pixel_masks: str | None = option(None, help="folder of <image stem>.png ground-truth masks (PxAP)")
    classifier: str = option("efficientnet_lite0", help="classifier to explain")
    classifier_weights: str | None = option(None, help="local weights file (all but the default classifier)")
    extra_classifiers: list[str] = option(default_factory=list, help="NAME or NAME=WEIGHTS: other classifiers for "
                                                                     "the masked-view accuracy check")
    steps: int = option(32, low=1, help="insertion/deletion steps")
    eps1: float = option(EPS1, low=0.0, help="completeness epsilon (paper 0.01)")
    eps2: float = option(EPS2, low=0.0, help="soundness epsilon (paper 0.001)")
    restrict_labels: list[int] | None = option(None, help="softmax over these labels only (Gupta's ImageNet runs)")
    deletion: bool = option(True, help="deletion curves")
    saliency_metric: bool = option(True, help="the Saliency Metric")
    masked_accuracy: bool = option(True, help="masked-view accuracy")
    infiller: str = option(DEFAULT_INFILLER, kind="infiller", help="fill of the infilled masked-out view")
    fixed_area: bool = option(True, help="kept / removed top-a regions at a = 0.05, 0.1, 0.2, 0.4 "
                                         "(metrics.fixed_area)")
    fixed_area_fill: str = option("gray", kind="infiller", help="infiller for what a fixed-area region leaves out")
    limit: int | None = option(None, low=1, help="evaluate only the first N images")
    split: str = option("all", choices=SPLITS, help="all images, or the class-disjoint val/train part that "
                                                    "`saliency train` uses")
    val_fraction: float = option(0.125, low=0.0, high=1.0, low_open=True, help="held-out share of the classes")
    split_seed: int = option(0, low=0, help="seed of the class split")
    device: str = option("cpu", help="cpu, cuda or auto")
    seed: int = option(0, low=0, help="seed of every random choice of the methods and infillers")
    batch_size: int = option(64, low=1, help="images per forward pass of the curves")
    resume: bool = option(True, help="resume when --out holds results made with the same settings")

    def __post_init__(self) -> None:
        if isinstance(self.methods, str):
            object.__setattr__(self, "methods", [m for m in self.methods.split(",") if m.strip()])
        if not self.methods:
            raise EvalError("give at least one method")
        try:
            check_options(self, "evaluate")
            parse_labels(self.labels)
        except (OptionError, ValueError) as exc:
            raise EvalError(str(exc)) from None

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
