"""The HTML report of an evaluation: settings, the aggregate table and plotly figures.

A fixed-area table (every area, with 95 % intervals) when that metric ran. Figures: mean insertion and deletion
curves of the top label per method with the mean clean probability f(x, a) as the reference line; the figures the
metrics declare (fixed area: kept / removed probability against the area with intervals); completeness vs soundness
of every (image, label) per method; bars of the main metrics. plotly.js is embedded once, so the file works
offline.
"""
from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import numpy as np

from saliency_core.files import atomic_write_text


def _curve_figure(records: list[dict[str, Any]], key: str, title: str):
    import plotly.graph_objects as go

    fig = go.Figure()
    f_ref = []
    for method in dict.fromkeys(r["method"] for r in records):
        curves = [r["labels"][0][key] for r in records if r["method"] == method and r.get("labels")
                  and key in r["labels"][0]]
        if not curves:
            continue
        arr = np.asarray(curves, dtype=float)
        xs = np.linspace(0, 1, arr.shape[1])
        fig.add_trace(go.Scatter(x=xs, y=arr.mean(0), mode="lines", name=f"{method} (n={len(curves)})"))
        f_ref += [r["labels"][0]["f"] for r in records if r["method"] == method and r.get("labels")]
    if f_ref:
        fig.add_hline(y=float(np.mean(f_ref)), line_dash="dash", annotation_text="mean f(x, a) (clean image)")
    fig.update_layout(title=title, xaxis_title="fraction of pixels " + ("inserted" if "ins" in key else "removed"),
                      yaxis_title="probability of the top label", height=420)
    return fig


def _scatter_figure(per_label):
    import plotly.express as px

    if per_label.empty:
        return None
    fig = px.scatter(per_label, x="soundness", y="completeness", color="method", hover_data=["image", "label", "name",
                                                                                              "f", "ins_auc"],
                     title="Completeness vs soundness, every (image, label)", opacity=0.6, height=480)
    fig.update_xaxes(range=[-0.02, 1.02])
    fig.update_yaxes(range=[-0.02, 1.02])
    return fig


def _histogram_figure(records: list[dict[str, Any]]):
    """Mean histogram of mask values per method (Phang et al. Fig. 2: how binary the masks are)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for method in dict.fromkeys(r["method"] for r in records):
        hists = [r["image_level"]["mask_hist"] for r in records
                 if r["method"] == method and "mask_hist" in r.get("image_level", {})]
        if not hists:
            continue
        h = np.asarray(hists, dtype=float).mean(0)
        centres = (np.arange(len(h)) + 0.5) / len(h)
        fig.add_trace(go.Bar(x=centres, y=h, name=method))
    fig.update_layout(title="Distribution of mask values (first label's mask), mean over images", barmode="group",
                      xaxis_title="mask value", yaxis_title="share of pixels", height=400)
    return fig


def _bar_figure(agg):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from saliency_core.evaluate.metrics import declared

    metrics = [m for m in declared("report") if m in agg.columns and agg[m].notna().any()]
    if not metrics:
        return None
    cols = 3
    rows = (len(metrics) + cols - 1) // cols
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=metrics)
    for i, m in enumerate(metrics):
        fig.add_trace(go.Bar(x=agg["method"], y=agg[m], name=m, showlegend=False), row=i // cols + 1,
                      col=i % cols + 1)
    fig.update_layout(height=320 * rows, title="Metrics per method (means over images)")
    return fig


def _fixed_area_html(agg) -> str:
    """The fixed-area section: per method, every probability and accuracy as ``mean [95 % interval]``."""
    from saliency_core.evaluate.tables import cell, fixed_area_columns

    cols = fixed_area_columns(agg) if not agg.empty else {}
    if not cols:
        return ""
    head = "".join(f"<th>{html.escape(t)}</th>" for t in ["method", *cols.values()])
    rows = "".join("<tr><td style='text-align:left'>" + html.escape(str(r["method"])) + "</td>"
                   + "".join(f"<td>{html.escape(cell(r, c))}</td>" for c in cols) + "</tr>" for _, r in agg.iterrows())
    return (f"<h2 id='fixed-area'>Fixed area (mean [95 % interval])</h2>"
            f"<table><tr>{head}</tr>{rows}</table>")


def _failures_html(failures: list, total_images: int) -> str:
    """The section listing the images that failed (file relative to the images CSV, method, reason)."""
    if not failures:
        return ""
    from saliency_core.evaluate.failures import failed_count

    rows = "".join(f"<tr><td style='text-align:left'>{html.escape(f.file)}</td><td style='text-align:left'>"
                   f"{html.escape(f.method or 'every method')}</td><td style='text-align:left'>"
                   f"{html.escape(f.reason)}</td></tr>" for f in failures)
    head = html.escape(failed_count(failures, total_images))
    return (f"<h2 id='failures'>Failed images</h2><p><strong>{head}</strong>; the tables leave them out.</p>"
            f"<table><tr><th>file</th><th>method</th><th>reason</th></tr>{rows}</table>")


def write_report(cfg, records: list[dict[str, Any]], agg, path: Path, failures: list | None = None,
                 total_images: int | None = None) -> Path:
    """Write ``report.html`` for the records of an evaluation (``failures``: the images that could not be
    evaluated, said at the top and listed in a section of their own)."""
    from saliency_core.evaluate.tables import records_to_frames

    _, per_label = records_to_frames(records)
    scored = [r for r in records if r.get("labels")]
    from saliency_core.evaluate.metrics import declared

    figures = [*(_curve_figure(scored, key, title) for key, title in declared("curves")),
               *(fn(agg, scored) for fn in declared("figures")),
               _scatter_figure(per_label), _histogram_figure(scored), _bar_figure(agg)]
    parts, first = [], True
    for fig in figures:
        if fig is None or not fig.data:
            continue
        parts.append(fig.to_html(full_html=False, include_plotlyjs=first))
        first = False
    shared = sorted({r["method"] for r in scored if r.get("shared_mask")})
    space = next((r.get("prob_space") for r in scored), "softmax over all classes")
    failures = failures or []
    evaluated = len({r["image"] for r in records})
    failed = len({f.file for f in failures})
    total = total_images if total_images is not None else evaluated + failed
    counted = (f"{evaluated}" if not failed else
               f"{evaluated} of {total} (<a href='#failures'>{failed} of {total} images failed</a>)")
    notes = [
        f"Images: {counted} from {html.escape(str(cfg.images))} "
        f"(split {cfg.split}{'' if cfg.limit is None else f', first {cfg.limit}'}); labels: {cfg.labels}; "
        f"classifier: {html.escape(cfg.classifier)}.",
        f"Probabilities: {space}" + ("" if not cfg.restrict_labels else f" {cfg.restrict_labels}")
        + " (the paper's ImageNet runs used a softmax over the few labels under study, which makes soundness easier).",
        f"Insertion / deletion: {cfg.steps} steps, gray fill (0 in normalised space), trapezoidal AUC; "
        f"completeness eps1 = {cfg.eps1}, soundness eps2 = {cfg.eps2} (the paper's values are 0.01 and 0.001; "
        "the authors' script used 0.1).",
    ]
    if getattr(cfg, "fixed_area", False):
        notes.append(f"Fixed area: binary regions of exactly round(a &times; pixels) pixels, a = 0.05, 0.1, 0.2, 0.4 "
                     f"(the top a of the first label's map, ties by pixel order; a method that takes an area: its own"
                     f" mask at a), the rest filled with {html.escape(cfg.fixed_area_fill)}; probability of the "
                     "explained top label, accuracy = the view's top-1 is the true label; 95 % intervals: percentile "
                     "bootstrap over images (2000 resamples, seed 0), in the <code>_lo</code> / <code>_hi</code> "
                     "columns.")
    if shared:
        notes.append("One mask for all labels (label-agnostic; the paper's &ldquo;cheating&rdquo; case): "
                     + ", ".join(html.escape(s) for s in shared) + ".")
    table = agg.to_html(index=False, float_format=lambda v: f"{v:.4f}", na_rep="-") if not agg.empty else ""
    body = "\n".join([
        "<!doctype html><html><head><meta charset='utf-8'><title>Saliency evaluation</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1400px} table{border-collapse:collapse;"
        "font-size:12px} td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}</style></head><body>",
        "<h1>Saliency evaluation</h1>",
        "<ul>" + "".join(f"<li>{n}</li>" for n in notes) + "</ul>",
        "<h2>Aggregate</h2>", table, _fixed_area_html(agg), _failures_html(failures, total),
        "<h2>Figures</h2>", *parts,
        "<h2>Settings</h2><pre>" + html.escape(json.dumps(cfg.to_dict(), indent=2)) + "</pre>",
        "</body></html>",
    ])
    atomic_write_text(path, body)
    return path
