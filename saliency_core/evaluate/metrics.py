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
- ``aggregate``: an optional ``fn(records, per_image, per_label) -> dict`` for what a mean cannot express;
- ``figures``: optional ``fn(aggregate, records) -> plotly figure | None`` drawn in ``report.html``.

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
    result: Any = None  # the method's MethodResult (an area-aware method's area_masks)
    main_area: float | None = None  # an area-aware method's own ``area`` (its ``masks`` are at that area)

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
        flag, needs = entry.traits.flag, entry.traits.needs
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
        value = getattr(entry.traits, attr) or ()
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


# ------------------------------------------------------------------------------------------------ fixed area
def _fa_key(kind: str, area: float) -> str:
    """``fa_kept_0.1``, ``fa_removed_acc_0.4``...: the per-image column of one fixed-area figure."""
    return f"fa_{kind}_{area:g}"


def _own_area_masks(inp: MetricInput, areas: tuple[float, ...]) -> torch.Tensor | None:
    """An area-aware method's own mask (first label) at each of ``areas``, A x h x w: its main mask at its main
    ``area``, its ``area_masks`` at the others (None: not an area-aware method, or an area is missing)."""
    result = inp.result
    if inp.main_area is None or result is None:
        return None
    own = [float(a) for a in getattr(result, "areas", ())]
    picked = []
    for a in areas:
        i = next((j for j, b in enumerate(own) if abs(a - b) < 1e-6), None)
        if abs(a - inp.main_area) < 1e-6:
            picked.append(inp.masks[0])
        elif i is not None and result.area_masks is not None:
            picked.append(result.area_masks[i][0].to(inp.masks.device))
        else:
            return None
    return torch.stack(picked).float()


def _fixed_area_aggregate(records: list[dict[str, Any]], per_image: pd.DataFrame, per_label: pd.DataFrame) -> dict:
    """The percentile bootstrap 95 % interval over images (2000 resamples, seed 0) of every fixed-area mean, as
    ``<column>_lo`` / ``<column>_hi``, and how the regions were made."""
    from saliency_core.metrics.fixed_area import bootstrap_ci

    row: dict[str, Any] = {}
    for col in [c for c in per_image.columns if c.startswith("fa_")]:
        values = pd.to_numeric(per_image[col], errors="coerce").dropna()
        if len(values):
            _, row[f"{col}_lo"], row[f"{col}_hi"] = bootstrap_ci(torch.tensor(values.to_numpy()))
    if "fixed_area_region" in per_image:
        row["fixed_area_region"] = ", ".join(sorted(set(per_image["fixed_area_region"].dropna())))
    return row


def _fixed_area_figure(agg: pd.DataFrame, records: list[dict[str, Any]]):
    """Kept and removed probability against the area per method, with the 95 % intervals as error bars."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from saliency_core.metrics.fixed_area import FIXED_AREAS

    if agg.empty or _fa_key("kept", FIXED_AREAS[0]) not in agg.columns:
        return None
    fig = make_subplots(rows=1, cols=2, subplot_titles=("only the region kept ↑", "the region removed ↓"))
    for _, r in agg.iterrows():
        for col, kind in ((1, "kept"), (2, "removed")):
            keys = [_fa_key(kind, a) for a in FIXED_AREAS]
            if any(k not in r or pd.isna(r[k]) for k in keys):
                continue
            y = [r[k] for k in keys]
            fig.add_trace(go.Scatter(
                x=list(FIXED_AREAS), y=y, mode="lines+markers", name=str(r["method"]), legendgroup=str(r["method"]),
                showlegend=col == 1, error_y=dict(type="data", symmetric=False,
                                                  array=[r[f"{k}_hi"] - v for k, v in zip(keys, y)],
                                                  arrayminus=[v - r[f"{k}_lo"] for k, v in zip(keys, y)])),
                row=1, col=col)
    fig.update_xaxes(title_text="area a (fraction of the image)")
    fig.update_yaxes(title_text="probability of the top label", range=[0, 1])
    fig.update_layout(height=420, title="Fixed area: binary top-a regions, mean over images with 95 % bootstrap "
                                        "intervals")
    return fig


@register_metric("fixed_area", summary="class probability and top-1 accuracy with only the top-a region kept / with "
                                       "it removed, a = 0.05, 0.1, 0.2, 0.4 (Fong et al. 2019)",
                 flag="fixed_area", averaged=("fa_*",),
                 table={"fa_kept_0.1": "kept 10 % ↑", "fa_kept_0.2": "kept 20 % ↑", "fa_removed_0.1": "deleted 10 % ↓",
                        "fa_removed_0.2": "deleted 20 % ↓"},
                 report=("fa_kept_0.1", "fa_removed_0.1", "fa_kept_0.2", "fa_removed_0.2"),
                 aggregate=_fixed_area_aggregate, figures=(_fixed_area_figure,))
def fixed_area_metric(inp: MetricInput) -> MetricOutput:
    """Binary regions of exactly round(a * pixels) pixels: the top a of the first label's map, or, for a method that
    takes an area (``takes_area``), its own mask at area a binarised the same way. The probability is the explained
    top label's; the accuracy says whether the view's top-1 is the true label (the prediction when none is known).
    All regions of the image go through the classifier in one forward; the fill is ``--fixed-area-fill``."""
    from saliency_core.metrics.fixed_area import FIXED_AREAS, kept_and_removed, top_area_regions

    own = _own_area_masks(inp, FIXED_AREAS)
    if own is not None:
        regions = torch.stack([top_area_regions(m, a) for m, a in zip(own.to(inp.x.device), FIXED_AREAS)])
    else:
        regions = top_area_regions(inp.masks[0], FIXED_AREAS)
    s = kept_and_removed(inp.ctx.classifier, inp.x, inp.labels[0], regions, fill=inp.ctx.fixed_area_fill,
                         probs_fn=inp.ctx.probs_fn)
    target = inp.target if inp.target >= 0 else inp.labels[0]
    kept_acc, removed_acc = s.kept_logits.argmax(-1) == target, s.removed_logits.argmax(-1) == target
    image: dict[str, Any] = {"fixed_area_region": "own mask at area a" if own is not None else "top a of the map"}
    for i, a in enumerate(FIXED_AREAS):
        image[_fa_key("kept", a)] = round(float(s.kept[i]), 6)
        image[_fa_key("removed", a)] = round(float(s.removed[i]), 6)
        image[_fa_key("kept_acc", a)] = float(kept_acc[i])
        image[_fa_key("removed_acc", a)] = float(removed_acc[i])
    return MetricOutput(image=image)
