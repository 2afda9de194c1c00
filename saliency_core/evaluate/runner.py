"""Evaluate saliency methods over a data set: per-image metrics appended as they come, then tables
and an HTML report.

``evaluate(EvalConfig(...))`` is what ``saliency evaluate`` and the dashboard run. For every image
and method it records, per explained label: the clean probability f, insertion and deletion AUC
(gray fill, ``steps`` points), completeness and soundness (Gupta et al.), the Saliency Metric; per
image: worst completeness / soundness, best effort, mask statistics, WSOL scores (with ``boxes``),
PxAP histograms (with ``pixel_masks``) and the accuracy of the masked-in / masked-out / infilled
views under every classifier at hand (the explained one, the co-trained classifier of each CA
checkpoint, and any extra ones).

Files in ``out``: ``config.json``; ``per_image.jsonl`` (one JSON record per image and method,
appended and flushed as soon as it is computed, so a kill loses only the work in flight; a rerun
with the same settings resumes); ``per_image.csv`` and ``per_label.csv`` (rebuilt from the JSONL);
``aggregate.csv`` and ``aggregate.json`` (one row per method; ``failed`` counts the images it has no result for
because they failed, and ``aggregate.json`` lists them); ``failures.csv`` (file, method, reason of every failure);
``report.html`` (plotly).

Methods are given as specs ``NAME[:key=value[:key=value...]]``, e.g. ``grad-cam``,
``masker:checkpoint=checkpoints/ca_lite0.safetensors``, ``rise:num_masks=500``; ``as=LABEL`` sets
the name shown in the tables.
"""
from __future__ import annotations

import json

import torch

from saliency_core.classifiers import Classifier
from saliency_core.datasets import problem_text
from saliency_core.evaluate.config import SPLITS, EvalConfig, EvalError, MethodSpec, parse_method_spec
from saliency_core.evaluate.context import (
    EvalContext,
    box_baseline_records,
    build_context,
    evaluate_method_on_image,
    labels_for,
    sample_gt_boxes,
)
from saliency_core.evaluate.failures import Failure
from saliency_core.evaluate.outputs import EvalResult, prepare_out, write_outputs
from saliency_core.evaluate.samples import EvalSample, read_eval_samples
from saliency_core.methods.base import MethodError, ProgressFn

__all__ = ["SPLITS", "EvalConfig", "EvalContext", "EvalError", "EvalResult", "EvalSample", "MethodSpec",
           "box_baseline_records", "build_context", "evaluate", "evaluate_method_on_image", "parse_method_spec",
           "read_eval_samples", "write_outputs"]


def evaluate(cfg: EvalConfig, classifier: Classifier | None = None, progress: ProgressFn | None = None
             ) -> EvalResult:
    """Run the evaluation; results are appended to ``per_image.jsonl`` one (image, method) at a time."""
    from saliency_core.images.loading import ImageLoadError, load_image
    from saliency_core.metrics.annotations import read_pixel_mask

    samples = read_eval_samples(cfg)
    if not samples:
        raise EvalError("no images to evaluate")
    ctx = build_context(cfg, classifier)
    if ctx.boxes is not None:
        unmatched = sorted(set(ctx.boxes) - {s.name for s in samples})
        if unmatched:
            ctx.warnings.append(f"{len(unmatched)} image(s) in the box file are not evaluated (first: "
                                f"{', '.join(unmatched[:3])}); their boxes are not used")
    out, records = prepare_out(cfg)
    done = {(r["image"], r["method"]) for r in records}
    failures: list[Failure] = []
    jsonl = out / "per_image.jsonl"
    pre, dev = ctx.classifier.preprocessing, ctx.classifier.device
    total = len(samples) * len(ctx.methods)
    count = 0
    with jsonl.open("a") as f:
        for i, sample in enumerate(samples):
            todo = [m for m in ctx.methods if (sample.name, m) not in done]
            if not todo:
                count += len(ctx.methods)
                continue
            try:
                loaded = load_image(sample.path)
            except ImageLoadError as exc:
                failures.append(Failure(sample.file, problem_text(exc, sample.path)))
                count += len(ctx.methods)
                continue
            x = pre.pil_to_input(loaded.image).to(dev)
            hw = tuple(x.shape[-2:])
            with torch.no_grad():
                clean = ctx.classifier.forward_features(x)
            probs = clean.logits.float().softmax(-1)[0]
            labels = labels_for(cfg, probs)
            target = sample.label if sample.label >= 0 else int(probs.argmax())
            gt = sample_gt_boxes(ctx, sample, loaded.image.size, hw)
            pix = read_pixel_mask(cfg.pixel_masks, sample.name, hw) if cfg.pixel_masks else None
            base = {"image": sample.name, "file": str(sample.path), "gt_label": sample.label,
                    "top1": int(probs.argmax()), "top1_prob": float(probs.max()), "size": list(hw)}
            if gt is not None and (sample.name, "baseline:whole-image") not in done:
                for rec in box_baseline_records(gt, hw, int(probs.argmax()) == target):
                    rec = {**base, **rec}
                    f.write(json.dumps(rec) + "\n")
                    records.append(rec)
            for display in ctx.methods:
                count += 1
                if (sample.name, display) in done:
                    continue
                try:
                    rec = {**base, **evaluate_method_on_image(ctx, display, x, clean, labels, target, gt, pix)}
                except (MethodError, FloatingPointError) as exc:
                    failures.append(Failure(sample.file, problem_text(exc, sample.path), display))
                    continue
                f.write(json.dumps(rec) + "\n")
                f.flush()
                records.append(rec)
                if progress is not None:
                    progress(count / total, f"{sample.name}: {display}")
    agg = write_outputs(cfg, out, records, failures, len(samples), list(ctx.methods))
    if progress is not None:
        progress(1.0, "done")
    return EvalResult(out, records, agg, failures, ctx.warnings, len(samples))
