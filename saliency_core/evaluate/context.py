"""What an evaluation loads once (:class:`EvalContext`) and the work on one image: every enabled metric of one
method (:func:`evaluate_method_on_image`) and the WSOL rows of the box baselines."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from saliency_core.classifiers import Classifier, load_classifier
from saliency_core.evaluate.config import EvalConfig, EvalError, MethodSpec, parse_method_spec
from saliency_core.evaluate.samples import EvalSample
from saliency_core.seeding import with_seed
from saliency_core.methods.base import Method, MethodError, create_method, method_entry


@dataclass
class EvalContext:
    """Everything loaded once for a run."""

    cfg: EvalConfig
    classifier: Classifier
    methods: dict[str, Method]
    specs: dict[str, MethodSpec]
    classifiers: dict[str, Classifier]  # for the masked-accuracy check (explained one first)
    infiller: Any
    boxes: dict | None
    probs_fn: Any
    warnings: list[str] = field(default_factory=list)  # skipped annotation rows and the like, one line each
    fixed_area_fill: Any = None  # the infiller of the fixed-area views (None: gray)
    main_areas: dict[str, float] = field(default_factory=dict)  # an area-aware method's own ``area``, by display


def _with_protocol_areas(entry: Any, options: dict[str, Any]) -> tuple[dict[str, Any], float]:
    """An area-aware method's options with ``areas`` = the fixed-area protocol's areas other than its main ``area``
    (all its masks come from the same pass; the main one is not computed twice), and that main area."""
    from saliency_core.metrics.fixed_area import FIXED_AREAS

    main = float(getattr(entry.make_config(**options), "area"))
    given = tuple(float(a) for a in (options.get("areas") or ()))
    extra = tuple(a for a in FIXED_AREAS if abs(a - main) > 1e-9 and all(abs(a - b) > 1e-9 for b in given))
    return {**options, "areas": given + extra}, main


def _load_extra_classifier(spec: str, device: str) -> tuple[str, Classifier]:
    name, _, weights = spec.partition("=")
    return spec, load_classifier(name, weights or None, device=device)


def build_context(cfg: EvalConfig, classifier: Classifier | None = None) -> EvalContext:
    from saliency_core.infill.base import create_infiller
    from saliency_core.metrics.annotations import read_boxes
    from saliency_core.metrics.insertion import restricted_softmax

    classifier = classifier or load_classifier(cfg.classifier, cfg.classifier_weights, device=cfg.device)
    specs: dict[str, MethodSpec] = {}
    main_areas: dict[str, float] = {}
    methods: dict[str, Method] = {}
    classifiers: dict[str, Classifier] = {"explained": classifier}
    for raw in cfg.methods:
        spec = parse_method_spec(raw)
        if spec.display in specs:
            raise EvalError(f"method '{spec.display}' is listed twice (use as=NAME to tell them apart)")
        entry, options = method_entry(spec.name), dict(spec.options)
        if cfg.fixed_area and entry.traits.takes_area:
            options, main_areas[spec.display] = _with_protocol_areas(entry, options)
        method = create_method(spec.name, **with_seed(entry, options, cfg.seed))
        if hasattr(method, "load"):  # a trained masker: fail now, not on the first image, if it does not fit
            ckpt = method.load(classifier)
            if ckpt.classifier is not classifier:
                classifiers[f"co-trained:{Path(str(method.checkpoint)).stem}"] = ckpt.classifier
        specs[spec.display], methods[spec.display] = spec, method
    for extra in cfg.extra_classifiers:
        key, clf = _load_extra_classifier(extra, cfg.device)
        classifiers[key] = clf
    warnings: list[str] = []
    boxes = read_boxes(cfg.boxes, warn=warnings.append) if cfg.boxes else None
    if cfg.pixel_masks and not Path(cfg.pixel_masks).is_dir():
        raise EvalError(f"pixel-mask folder '{cfg.pixel_masks}' does not exist")
    probs_fn = restricted_softmax(cfg.restrict_labels) if cfg.restrict_labels else None
    fixed_fill = create_infiller(cfg.fixed_area_fill) if cfg.fixed_area else None
    return EvalContext(cfg, classifier, methods, specs, classifiers, create_infiller(cfg.infiller), boxes, probs_fn,
                       warnings, fixed_fill, main_areas)


def labels_for(cfg: EvalConfig, probs: torch.Tensor) -> list[int]:
    from saliency_core.labels import resolve_labels

    return resolve_labels(cfg.labels, probs, within=cfg.restrict_labels)


def sample_gt_boxes(ctx: EvalContext, sample: EvalSample, image_size: tuple[int, int], work_hw: tuple[int, int]
              ) -> torch.Tensor | None:
    from saliency_core.metrics.wsol import scale_boxes

    if ctx.boxes is None or sample.name not in ctx.boxes:
        return None
    entry = ctx.boxes[sample.name]
    wanted = {c for c in (sample.wnid, str(sample.label)) if c}
    entry = entry.select(wanted)
    if not entry.boxes:
        return None
    src = entry.size or image_size
    return scale_boxes(entry.tensor(), src, (work_hw[1], work_hw[0]))


def _wsol_record(pred_box: torch.Tensor, mask: torch.Tensor | None, gt: torch.Tensor, correct: bool) -> dict:
    from saliency_core.metrics.wsol import wsol_scores

    return wsol_scores(pred_box, mask, gt, correct)


def evaluate_method_on_image(ctx: EvalContext, display: str, x: torch.Tensor, clean, labels: list[int],
                             target: int, gt_boxes: torch.Tensor | None,
                             pixel_gt: tuple[torch.Tensor, torch.Tensor] | None) -> dict[str, Any]:
    """Every enabled metric of one method on one image -> a JSON-ready record (without the image fields)."""
    from saliency_core.evaluate.metrics import METRICS, MetricInput, enabled_metrics
    from saliency_core.metrics.completeness import label_scores

    cfg, clf, method = ctx.cfg, ctx.classifier, ctx.methods[display]
    t0 = time.perf_counter()
    result = method(clf, x, labels, clean)
    masks = result.masks.detach().float().clamp(0, 1).to(x.device)
    if not torch.isfinite(masks).all():
        raise FloatingPointError(f"method '{display}' returned NaN or infinite values")
    if masks.shape[0] not in (1, len(labels)):
        raise MethodError(f"method '{display}' returned {masks.shape[0]} masks for {len(labels)} labels")
    t1 = time.perf_counter()
    scores = label_scores(clf, x, masks, labels, steps=cfg.steps, eps1=cfg.eps1, eps2=cfg.eps2,
                          restrict_to=cfg.restrict_labels, batch_size=cfg.batch_size)
    inp = MetricInput(ctx, x, clean, masks, labels, target, scores, gt_boxes, pixel_gt, result,
                      ctx.main_areas.get(display))
    rows = [{"label": label, "name": scores.names[k], "rank": k + 1, "f": float(scores.f[k]),
             "predicted": label == scores.predicted} for k, label in enumerate(labels)]
    image_level: dict[str, Any] = {}
    for name in enabled_metrics(cfg, gt_boxes is not None, pixel_gt is not None):
        out = METRICS.get(name).factory(inp)
        for key, values in out.labels.items():
            for row, value in zip(rows, values):
                row[key] = value
        image_level.update(out.image)
    t2 = time.perf_counter()
    return {"method": display, "method_name": ctx.specs[display].name, "per_label_masks": bool(result.per_label),
            "shared_mask": masks.shape[0] == 1, "prob_space": scores.prob_space, "labels": rows,
            "image_level": image_level,
            "timings": {"method_s": round(t1 - t0, 3), "metrics_s": round(t2 - t1, 3)},
            "info": {k: v for k, v in result.info.items() if isinstance(v, (int, float, str, bool))}}


def box_baseline_records(gt: torch.Tensor, hw: tuple[int, int], correct: bool) -> list[dict[str, Any]]:
    """WSOL rows of the two box baselines: a centred box of half the image area, and the whole image."""
    from saliency_core.metrics.wsol import box_masks, centre_box, whole_box

    out = []
    for name, box in (("baseline:centre-50%-box", centre_box(*hw)), ("baseline:whole-image", whole_box(*hw))):
        soft = box_masks(box, *hw)[0]
        out.append({"method": name, "method_name": name, "per_label_masks": False, "shared_mask": True,
                    "labels": [], "image_level": {f"wsol_{k}": v for k, v in _wsol_record(box[0], soft, gt,
                                                                                          correct).items()},
                    "timings": {}, "info": {}})
    return out
