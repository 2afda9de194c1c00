"""The metrics ``saliency evaluate`` computes, each registered once in :data:`METRICS`.

A metric is a function ``metric(inp: MetricInput) -> MetricOutput``: per-label values (one per explained
label; a key ending in ``_curve`` holds a list) and image-level values. What it declares when it
registers is all the runner, the tables and the report need:

- ``flag``: the :class:`EvalConfig` field that switches it on (None: always on);
- ``needs``: ``"boxes"`` or ``"pixel_masks"`` when it needs annotations (skipped without them);
- ``top``: per-label columns whose value for the top label becomes a per-image column ``top_<name>``;
- ``averaged``: per-image columns (or prefixes ending in ``*``) averaged over images per method;
- ``table``: aggregate columns of the main table, as ``{column: title}``;
- ``report``: aggregate columns drawn as bars in ``report.html``; ``curves``: ``{key: title}`` curve figures;
- ``aggregate``: an optional ``fn(records, per_image, per_label) -> dict`` for what a mean cannot express.

The maths lives in :mod:`saliency_core.metrics` (pure tensor functions); this module only adapts it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable, Literal

import numpy as np
import pandas as pd
import torch

from saliency_core.registry import Registry, trait

MetricFn = Callable[["MetricInput"], "MetricOutput"]


@dataclass
class MetricInput:
    """One method's masks on one image, with everything a metric may use."""

    ctx: Any  # the run's EvalContext: cfg, classifier, classifiers, infiller, probs_fn
    x: torch.Tensor  # 1 x 3 x h x w normalised input
    clean: Any  # the classifier's output on x
    masks: torch.Tensor  # K x h x w (K = labels, or 1 for a shared mask)
    labels: list[int]
    target: int  # the true label (or the prediction when none is known; -1: none)
    scores: Any  # LabelScores of the insertion game (computed once: every row needs f)
    gt_boxes: torch.Tensor | None = None
    pixel_gt: tuple[torch.Tensor, torch.Tensor] | None = None

    @cached_property
    def boxes(self) -> torch.Tensor:
        """The WSOL box of each mask (shared by the metrics that need one)."""
        from saliency_core.metrics.wsol import mask_boxes

        return mask_boxes(self.masks.cpu())


@dataclass
class MetricOutput:
    labels: dict[str, list[Any]] = field(default_factory=dict)
    image: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MetricTraits:
    """What a metric declares when it registers (see the module's docstring)."""

    flag: str | None = trait(None, help="the EvalConfig field that switches it on (None: always on)")
    needs: Literal["boxes", "pixel_masks"] | None = trait(None, help="the annotations it needs (skipped without)")
    top: tuple[str, ...] = trait((), help="per-label columns whose top label's value becomes top_<name>")
    averaged: tuple[str, ...] = trait((), help="per-image columns (or prefixes ending in *) averaged per method")
    table: dict[str, str] = trait({}, help="aggregate columns of the main table: {column: title}")
    report: tuple[str, ...] = trait((), help="aggregate columns drawn as bars in report.html")
    curves: dict[str, str] = trait({}, help="curve figures of report.html: {key: title}")
    aggregate: Callable[[Any, Any, Any], dict] | None = trait(
        None, help="aggregate(records, per_image, per_label) -> dict: what a mean cannot express")
    figures: tuple[Callable[[Any, Any], Any], ...] = trait(
        (), help="figures of report.html: fn(aggregate, records) -> plotly figure or None")


#: Every metric of ``saliency evaluate``, in the order of the tables.
METRICS: Registry[MetricOutput] = Registry("metric", traits=MetricTraits)
register_metric = METRICS.register


def enabled_metrics(cfg: Any, have_boxes: bool = False, have_pixel_masks: bool = False) -> list[str]:
    """The metrics a run computes: their flag is on and their annotations are given."""
    out = []
    for name, entry in METRICS.entries().items():
        flag, needs = entry.attrs.get("flag"), entry.attrs.get("needs")
        if flag and not getattr(cfg, flag, True):
            continue
        if (needs == "boxes" and not have_boxes) or (needs == "pixel_masks" and not have_pixel_masks):
            continue
        out.append(name)
    return out


def declared(attr: str) -> list[Any]:
    """One declared attribute of every metric, flattened in registration order (``table``, ``report``...)."""
    out: list[Any] = []
    for entry in METRICS.entries().values():
        value = entry.attrs.get(attr) or ()
        out.extend(value.items() if isinstance(value, dict) else value)
    return out


# ----------------------------------------------------------------------------------------------- built in
def _round(values: torch.Tensor) -> list[float]:
    return [round(float(v), 5) for v in values]


@register_metric("completeness", summary="insertion curve and AUC, completeness and soundness (Gupta et al.)",
                 top=("ins_auc",), averaged=("top_ins_auc", "worst_completeness", "worst_soundness"),
                 table={"top_ins_auc": "insertion AUC ↑", "worst_completeness": "worst completeness ↑",
                        "worst_soundness": "worst soundness ↑", "best_effort": "best effort ↑"},
                 report=("top_ins_auc", "worst_completeness", "worst_soundness", "best_effort"),
                 curves={"ins_curve": "Insertion curves (gray fill), top label, mean over images"},
                 aggregate=lambda records, per_image, per_label: _completeness_aggregate(per_image, per_label))
def completeness_metric(inp: MetricInput) -> MetricOutput:
    s = inp.scores
    return MetricOutput(
        labels={"ins_auc": [float(v) for v in s.auc], "completeness": [float(v) for v in s.completeness],
                "soundness": [float(v) for v in s.soundness], "ins_curve": [_round(c) for c in s.curves.probs]},
        image={"worst_completeness": s.worst_completeness, "worst_soundness": s.worst_soundness,
               "best_effort": s.best_effort, "second_prob": s.second_prob})


def _completeness_aggregate(per_image: pd.DataFrame, per_label: pd.DataFrame) -> dict[str, Any]:
    row: dict[str, Any] = {}
    if "best_effort" in per_image:  # defined only where the runner-up label is likely enough
        be = per_image["best_effort"].dropna()
        row["best_effort"] = float(be.mean()) if len(be) else float("nan")
        row["best_effort_images"] = int(len(be))
    if not per_label.empty and "completeness" in per_label:
        row["mean_completeness"] = float(per_label["completeness"].mean())
        row["mean_soundness"] = float(per_label["soundness"].mean())
    return row


@register_metric("deletion", summary="deletion curve and AUC (Petsiuk et al.)", flag="deletion", top=("del_auc",),
                 averaged=("top_del_auc",), table={"top_del_auc": "deletion AUC ↓"}, report=("top_del_auc",),
                 curves={"del_curve": "Deletion curves (gray fill), top label, mean over images"})
def deletion_metric(inp: MetricInput) -> MetricOutput:
    from saliency_core.metrics.insertion import deletion_curves

    cfg = inp.ctx.cfg
    d = deletion_curves(inp.ctx.classifier, inp.x, inp.masks, inp.labels, steps=cfg.steps,
                        batch_size=cfg.batch_size, probs_fn=inp.ctx.probs_fn)
    return MetricOutput(labels={"del_auc": [float(v) for v in d.auc], "del_curve": [_round(c) for c in d.probs]})


@register_metric("saliency_metric", summary="the Saliency Metric of the mask's box (Dabkowski & Gal)",
                 flag="saliency_metric", top=("sm",), averaged=("top_sm",), table={"top_sm": "SM ↓"},
                 report=("top_sm",))
def saliency_metric_metric(inp: MetricInput) -> MetricOutput:
    from saliency_core.metrics.saliency_metric import saliency_metric

    sm = saliency_metric(inp.ctx.classifier, inp.x, inp.boxes.to(inp.x.device), inp.labels,
                         probs_fn=inp.ctx.probs_fn)
    return MetricOutput(labels={"sm": [float(v) for v in sm.score], "sm_area": [float(v) for v in sm.area],
                                "sm_prob": [float(v) for v in sm.prob]})


@register_metric("mask_stats", summary="mean, spread, total variation and histogram of the mask (Phang et al.)",
                 averaged=("mask_*",), table={"mask_mean": "mean mask"}, report=("mask_mean",))
def mask_stats_metric(inp: MetricInput) -> MetricOutput:
    from saliency_core.metrics.mask_stats import mask_histogram, mask_stats

    stats = mask_stats(inp.masks)
    return MetricOutput(image={**{f"mask_{k}": float(v[0]) for k, v in stats.items()},
                               "mask_hist": _round(mask_histogram(inp.masks[:1], bins=20))})


@register_metric("masked_accuracy", summary="accuracy of the masked-in, masked-out and infilled views per classifier",
                 flag="masked_accuracy", averaged=("acc[*",),
                 table={"acc[explained]/masked_in": "masked-in acc ↑", "acc[explained]/masked_out": "masked-out acc ↓",
                        "acc[explained]/infilled_out": "infilled acc ↓"},
                 report=("acc[explained]/masked_in", "acc[explained]/masked_out"))
def masked_accuracy_metric(inp: MetricInput) -> MetricOutput:
    from saliency_core.metrics.masked_accuracy import masked_correct

    if inp.target < 0:
        return MetricOutput()
    correct = masked_correct(inp.ctx.classifiers, inp.x, inp.masks[:1], [inp.target], inp.ctx.infiller)
    return MetricOutput(image={f"acc[{c}]/{view}": float(ok[0]) for c, views in correct.items()
                               for view, ok in views.items()})


@register_metric("wsol", summary="box localisation against ground-truth boxes: LE, OM, continuous F1",
                 needs="boxes", averaged=("wsol_*",), report=("wsol_le", "wsol_om", "wsol_f1"))
def wsol_metric(inp: MetricInput) -> MetricOutput:
    from saliency_core.metrics.wsol import wsol_scores

    correct = int(inp.clean.logits.argmax(-1)[0]) == inp.target
    scores = wsol_scores(inp.boxes[0], inp.masks[:1][0].cpu(), inp.gt_boxes, correct)
    return MetricOutput(image={f"wsol_{k}": v for k, v in scores.items()})


def _pxap_aggregate(records: list[dict[str, Any]], per_image: pd.DataFrame, per_label: pd.DataFrame) -> dict:
    from saliency_core.metrics.pxap import PxAPAccumulator

    hists = [r for r in records if "pxap_fg_hist" in r.get("image_level", {})]
    if not hists:
        return {}
    acc = PxAPAccumulator()
    for r in hists:
        acc.fg_hist += np.asarray(r["image_level"]["pxap_fg_hist"], dtype=float)
        acc.bg_hist += np.asarray(r["image_level"]["pxap_bg_hist"], dtype=float)
    return {"pxap": acc.pxap()}


@register_metric("pxap", summary="pixel average precision against pixel masks (Choe et al.)", needs="pixel_masks",
                 report=("pxap",), aggregate=_pxap_aggregate)
def pxap_metric(inp: MetricInput) -> MetricOutput:
    from saliency_core.metrics.pxap import PxAPAccumulator

    acc = PxAPAccumulator()
    acc.add(inp.masks[:1].cpu(), inp.pixel_gt[0][None], inp.pixel_gt[1][None])
    return MetricOutput(image={"pxap": acc.pxap(), "pxap_fg_hist": acc.fg_hist.astype(int).tolist(),
                               "pxap_bg_hist": acc.bg_hist.astype(int).tolist()})
