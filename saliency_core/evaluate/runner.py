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
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from saliency_core.classifiers import Classifier, load_classifier
from saliency_core.datasets import (
    IMAGE_SUFFIXES,
    DataError,
    class_disjoint_split,
    data_root,
    display_path,
    problem_text,
    read_samples,
)
from saliency_core.evaluate.failures import Failure, failure_summary, write_failures_csv
from saliency_core.explanation import with_seed
from saliency_core.methods.base import Method, MethodError, ProgressFn, create_method, method_entry

#: Fields whose change makes earlier results in the same folder incomparable.
_FINGERPRINT = ("images", "labels", "boxes", "pixel_masks", "classifier", "classifier_weights", "extra_classifiers",
                "steps", "eps1", "eps2", "restrict_labels", "deletion", "saliency_metric", "masked_accuracy",
                "infiller", "split", "val_fraction", "split_seed", "seed")
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


# ----------------------------------------------------------------------------------------------------------- data
@dataclass
class EvalSample:
    path: Path
    label: int  # -1 when unknown
    name: str
    wnid: str | None = None
    file: str = ""  # the path as messages show it: relative to the images CSV (or folder)


def read_eval_samples(cfg: EvalConfig) -> list[EvalSample]:
    """Images to evaluate: a CSV / ImageFolder / folder with labels.csv (labelled), or a plain folder."""
    src = Path(cfg.images)
    if not src.exists():
        raise EvalError(f"image source '{src}' does not exist")
    wnids: dict[Path, str] = {}
    try:
        samples = [(s.path, s.label) for s in read_samples(src)]
        csv_path = src if src.is_file() else src / "labels.csv"
        if csv_path.is_file():
            import csv

            with csv_path.open(newline="") as f:
                for r in csv.DictReader(f):
                    if r.get("wnid") and (r.get("file") or r.get("path")):
                        wnids[(csv_path.parent / (r.get("file") or r.get("path"))).resolve()] = r["wnid"]
    except DataError:
        if not src.is_dir():
            raise
        files = sorted(p for p in src.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise EvalError(f"folder '{src}' has no images") from None
        samples = [(p, -1) for p in files]
    if cfg.split != "all":
        from saliency_core.datasets import Sample

        if any(label < 0 for _, label in samples):
            raise EvalError("split=val/train needs labelled images")
        train, val = class_disjoint_split([Sample(p, y) for p, y in samples], cfg.val_fraction, cfg.split_seed)
        chosen = val if cfg.split == "val" else train
        samples = [(s.path, s.label) for s in chosen]
    if cfg.limit is not None:
        samples = samples[:cfg.limit]
    out, used = [], set()
    root = data_root(src)
    for p, y in samples:
        name = Path(p).stem
        if name in used:
            name = f"{name}_{len(used)}"
        used.add(name)
        out.append(EvalSample(Path(p), int(y), name, wnids.get(Path(p).resolve()), display_path(p, root)))
    return out


# ----------------------------------------------------------------------------------------------------------- core
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


def _load_extra_classifier(spec: str, device: str) -> tuple[str, Classifier]:
    name, _, weights = spec.partition("=")
    return spec, load_classifier(name, weights or None, device=device)


def build_context(cfg: EvalConfig, classifier: Classifier | None = None) -> EvalContext:
    from saliency_core.infill.base import create_infiller
    from saliency_core.metrics.annotations import read_boxes
    from saliency_core.metrics.insertion import restricted_softmax

    classifier = classifier or load_classifier(cfg.classifier, cfg.classifier_weights, device=cfg.device)
    specs: dict[str, MethodSpec] = {}
    methods: dict[str, Method] = {}
    classifiers: dict[str, Classifier] = {"explained": classifier}
    for raw in cfg.methods:
        spec = parse_method_spec(raw)
        if spec.display in specs:
            raise EvalError(f"method '{spec.display}' is listed twice (use as=NAME to tell them apart)")
        method = create_method(spec.name, **with_seed(method_entry(spec.name), spec.options, cfg.seed))
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
    return EvalContext(cfg, classifier, methods, specs, classifiers, create_infiller(cfg.infiller), boxes, probs_fn,
                       warnings)


def _labels_for(cfg: EvalConfig, probs: torch.Tensor) -> list[int]:
    from saliency_core.labels import resolve_labels

    if cfg.restrict_labels:
        sub = torch.zeros_like(probs)
        idx = torch.tensor(cfg.restrict_labels)
        sub[idx] = probs[idx]
        spec = cfg.labels
        if spec.startswith("top"):
            k = min(int(spec[3:] or 1), len(cfg.restrict_labels))
            return sub.topk(k).indices.tolist()
        return resolve_labels(spec, probs)
    return resolve_labels(cfg.labels, probs)


def _gt_boxes(ctx: EvalContext, sample: EvalSample, image_size: tuple[int, int], work_hw: tuple[int, int]
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
    inp = MetricInput(ctx, x, clean, masks, labels, target, scores, gt_boxes, pixel_gt)
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


# ----------------------------------------------------------------------------------------------------------- files
def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    records = []
    if not path.exists():
        return records
    with path.open() as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut by a kill: ignore it, it will be redone
                continue
    return records


@dataclass
class EvalResult:
    out: Path
    records: list[dict[str, Any]]
    aggregate: Any  # pandas DataFrame
    failures: list[Failure]
    warnings: list[str] = field(default_factory=list)
    total_images: int = 0

    @property
    def report(self) -> Path:
        return self.out / "report.html"

    @property
    def summary(self) -> str | None:
        """``3 of 5 images failed: a.jpg (reason), ...`` (None when nothing failed)."""
        return failure_summary(self.failures, self.total_images)


def write_outputs(cfg: EvalConfig, out: Path, records: list[dict[str, Any]], failures: list[Failure] = (),
                  total_images: int = 0, methods: list[str] = ()):
    """Rebuild the CSVs, the aggregate tables and the HTML report from the records; every one of them says how many
    of ``total_images`` failed and which (``failures.csv`` lists them with the reason)."""
    from saliency_core.evaluate.report import write_report
    from saliency_core.evaluate.tables import aggregate, records_to_frames, with_failures

    failures = list(failures)
    total = total_images or len({r["image"] for r in records}) + len({f.file for f in failures})
    per_image, per_label = records_to_frames(records)
    per_image.to_csv(out / "per_image.csv", index=False)
    per_label.to_csv(out / "per_label.csv", index=False)
    agg = with_failures(aggregate(records), failures, list(methods))
    agg.to_csv(out / "aggregate.csv", index=False)
    write_failures_csv(out / "failures.csv", failures)
    images = {"total": total, "evaluated": total - len({f.file for f in failures if f.method is None}),
              "failed": len({f.file for f in failures})}
    (out / "aggregate.json").write_text(json.dumps(
        {"config": cfg.to_dict(), "images": images, "failures": [asdict(f) for f in failures],
         "methods": json.loads(agg.to_json(orient="records"))}, indent=2) + "\n")
    write_report(cfg, records, agg, out / "report.html", failures=failures, total_images=total)
    return agg


def _prepare_out(cfg: EvalConfig) -> tuple[Path, list[dict[str, Any]]]:
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    jsonl = out / "per_image.jsonl"
    cfg_path = out / "config.json"
    records: list[dict[str, Any]] = []
    if cfg.resume and jsonl.exists() and cfg_path.exists():
        old = json.loads(cfg_path.read_text())
        old_fp = {k: old.get(k) for k in _FINGERPRINT}
        if old_fp != cfg.fingerprint():
            diff = [k for k in _FINGERPRINT if old_fp.get(k) != cfg.fingerprint().get(k)]
            raise EvalError(f"'{out}' holds results made with other settings ({', '.join(diff)}); "
                            "use another --out or --no-resume")
        records = _read_jsonl(jsonl)
        # rewrite without a line cut by a kill, so new records start on a fresh line
        tmp = jsonl.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in records))
        tmp.replace(jsonl)
    elif jsonl.exists():
        jsonl.unlink()
    cfg_path.write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
    return out, records


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
    out, records = _prepare_out(cfg)
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
            labels = _labels_for(cfg, probs)
            target = sample.label if sample.label >= 0 else int(probs.argmax())
            gt = _gt_boxes(ctx, sample, loaded.image.size, hw)
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
