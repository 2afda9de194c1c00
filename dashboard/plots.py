"""Plotly figures of the dashboard: the four views with linked zoom, per-label insertion curves, score bars."""
from __future__ import annotations

import base64
import io

import numpy as np
import plotly.graph_objects as go
import torch
from PIL import Image

from saliency_core import resize_mask

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf")


#: ``st.plotly_chart`` config of the views: no tool bar (it covered the top of the pictures); drag zooms, a
#: double-click zooms out.
VIEWS_CONFIG = {"displayModeBar": False, "displaylogo": False, "scrollZoom": False, "doubleClick": "reset"}


def _data_uri(image: Image.Image) -> str:
    buf = io.BytesIO()
    image.convert("RGB").save(buf, "JPEG", quality=88)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def _domains(n: int, spacing: float) -> list[list[float]]:
    """``n`` equal cells of [0, 1] with ``spacing`` between them (as plotly's make_subplots lays them out)."""
    size = (1.0 - spacing * (n - 1)) / n
    return [[i * (size + spacing), min(1.0, i * (size + spacing) + size)] for i in range(n)]


def views_figure(views: list[Image.Image], mask: np.ndarray | None, per_row: int = 4, width: int = 1100,
                 hover_cells: int = 64) -> go.Figure:
    """The four views side by side at one size, with zoom and pan linked across them (a zoom in one view
    zooms all four); hovering the first view (the overlay) shows the mask value, unless ``mask`` is None. ``per_row``
    views a row (1 for very wide images). The dashboard draws each view as a figure of its own (one view, so that a
    phone shows each picture with its title and predictions).
    The layout is written out, not built with ``make_subplots`` / ``update_*axes``: it is redrawn on every toggle
    and plotly's property machinery cost more than the rest of the figure."""
    rows = -(-len(views) // per_row)
    w, h = views[0].size
    scale = hover_cells / max(w, h)
    gh, gw = max(1, round(h * scale)), max(1, round(w * scale))
    coarse = None if mask is None else \
        resize_mask(torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32)), gh, gw).numpy()
    xdom, ydom = _domains(per_row, 0.01), _domains(rows, 0.02)[::-1]  # row 1 at the top
    data, layout = [], {}
    for i, view in enumerate(views):
        n = "" if i == 0 else str(i + 1)
        axes = {"xaxis": f"x{n}", "yaxis": f"y{n}"}
        data.append(go.Image(source=_data_uri(view.resize((w, h))), x0=0, y0=0, dx=1, dy=1, hoverinfo="skip", **axes))
        if i == 0 and coarse is not None:
            data.append(go.Heatmap(z=coarse, x0=(w / gw) / 2, dx=w / gw, y0=(h / gh) / 2, dy=h / gh, zmin=0.0,
                                   zmax=1.0, opacity=0.0, showscale=False, name="mask",
                                   hovertemplate="mask %{z:.2f}<extra></extra>", **axes))
        layout[f"xaxis{n}"] = {"domain": xdom[i % per_row], "anchor": f"y{n}", "visible": False, "range": [0, w],
                               **({"matches": "x"} if n else {})}
        layout[f"yaxis{n}"] = {"domain": ydom[i // per_row], "anchor": f"x{n}", "visible": False, "range": [h, 0],
                               "scaleanchor": "x", **({"matches": "y"} if n else {})}
    cell = width / per_row
    layout.update(height=int(rows * cell * h / w) + 10, margin={"l": 0, "r": 0, "t": 0, "b": 0}, dragmode="zoom",
                  showlegend=False)
    return go.Figure(data=data, layout=layout)


def curves_figure(scores, height: int = 480) -> go.Figure:
    """Insertion curve of every label (probability vs fraction of its top pixels kept) with its
    f(x, a) reference line in the same colour; the worst-completeness label is drawn thicker."""
    fractions = np.asarray(scores.curves.fractions, dtype=float)
    probs = np.asarray(scores.curves.probs, dtype=float)
    f = np.asarray(scores.f, dtype=float)
    comp = np.asarray(scores.completeness, dtype=float)
    sound = np.asarray(scores.soundness, dtype=float)
    worst = int(np.argmin(comp)) if len(comp) else -1
    fig = go.Figure()
    for k, (label, name) in enumerate(zip(scores.labels, scores.names)):
        colour = PALETTE[k % len(PALETTE)]
        tag = f"{name} ({label})"
        fig.add_trace(go.Scatter(
            x=fractions, y=probs[k], mode="lines+markers", name=tag, legendgroup=tag,
            line={"color": colour, "width": 4 if k == worst else 2}, marker={"size": 5},
            hovertemplate=(f"<b>{name}</b><br>kept %{{x:.0%}} of its top pixels<br>p = %{{y:.3f}}<br>"
                           f"completeness {comp[k]:.2f}, soundness {sound[k]:.2f}<extra></extra>"),
        ))
        fig.add_trace(go.Scatter(
            x=[0.0, 1.0], y=[f[k], f[k]], mode="lines", name=f"f(x, a) {name}", legendgroup=tag, showlegend=False,
            line={"color": colour, "dash": "dash", "width": 1},
            hovertemplate=f"f(x, a) for {name}: {f[k]:.3f}<extra></extra>",
        ))
    fig.update_layout(
        height=height, margin={"l": 10, "r": 10, "t": 30, "b": 10},
        xaxis={"title": {"text": "fraction of pixels kept (most salient first)"}, "range": [0, 1],
               "tickformat": ".0%"},
        yaxis={"title": {"text": "probability of the label"}, "rangemode": "tozero"},
        legend={"title": {"text": "label (dashed: f(x, a))"}, "orientation": "h", "y": -0.18, "yanchor": "top",
                "x": 0, "xanchor": "left"},  # below the plot: the plot keeps its width on a phone
        hovermode="closest",
    )
    return fig


def ab_curves_figure(a, b, height: int = 480) -> go.Figure:
    """The pinned setting's curves (A, dashed) and the current one's (B, solid) on one plot, a label's A and B in
    the same colour, with each label's f(x, a) as a thin dotted line (the same for A and B: the same image)."""
    colours: dict[int, str] = {}
    for label in [*b.labels, *a.labels]:
        colours.setdefault(label, PALETTE[len(colours) % len(PALETTE)])
    fig = go.Figure()
    for which, scores, dash, width in (("B", b, "solid", 2), ("A", a, "dash", 2)):
        fractions = np.asarray(scores.curves.fractions, dtype=float)
        probs = np.asarray(scores.curves.probs, dtype=float)
        comp = np.asarray(scores.completeness, dtype=float)
        sound = np.asarray(scores.soundness, dtype=float)
        for k, (label, name) in enumerate(zip(scores.labels, scores.names)):
            fig.add_trace(go.Scatter(
                x=fractions, y=probs[k], mode="lines+markers" if which == "B" else "lines",
                name=f"{which}: {name} ({label})", legendgroup=which,
                line={"color": colours[label], "dash": dash, "width": width}, marker={"size": 5},
                hovertemplate=(f"<b>{which}: {name}</b><br>kept %{{x:.0%}} of its top pixels<br>p = %{{y:.3f}}<br>"
                               f"completeness {comp[k]:.2f}, soundness {sound[k]:.2f}<extra></extra>"),
            ))
    f = {label: float(v) for scores in (a, b) for label, v in zip(scores.labels, np.asarray(scores.f, dtype=float))}
    for label, value in f.items():
        fig.add_trace(go.Scatter(x=[0.0, 1.0], y=[value, value], mode="lines", name=f"f(x, a) {label}",
                                 showlegend=False, line={"color": colours[label], "dash": "dot", "width": 1},
                                 hovertemplate=f"f(x, a) for class {label}: {value:.3f}<extra></extra>"))
    fig.update_layout(
        height=height, margin={"l": 10, "r": 10, "t": 30, "b": 10},
        xaxis={"title": {"text": "fraction of pixels kept (most salient first)"}, "range": [0, 1],
               "tickformat": ".0%"},
        yaxis={"title": {"text": "probability of the label"}, "rangemode": "tozero"},
        legend={"title": {"text": "B solid, A (pinned) dashed; dotted: f(x, a)"}, "orientation": "h", "y": -0.18,
                "yanchor": "top", "x": 0, "xanchor": "left"},
        hovermode="closest",
    )
    return fig


def scores_figure(rows: list[dict], height: int = 300) -> go.Figure:
    """Grouped bars of each method's worst completeness and worst soundness (Compare page)."""
    names = [r["method"] for r in rows]
    fig = go.Figure()
    for key, colour in (("worst completeness", PALETTE[0]), ("worst soundness", PALETTE[1])):
        fig.add_trace(go.Bar(x=names, y=[r.get(key) for r in rows], name=key, marker_color=colour,
                             hovertemplate="%{x}: %{y:.3f}<extra>" + key + "</extra>"))
    fig.update_layout(barmode="group", height=height, margin={"l": 10, "r": 10, "t": 30, "b": 10},
                      yaxis={"range": [0, 1.05], "title": {"text": "score (1 = best)"}})
    return fig


def area_curves_figure(curves: list[tuple[str, object]], chosen: float | None = None, height: int = 380
                       ) -> go.Figure:
    """The area curve of one or more methods (``dashboard.area.AreaCurve``): the class probability with only the
    region kept (solid) and with it removed (dashed) against the region's area, a dotted line at the whole
    picture's probability and one at the share the mark asks for, each method's smallest area keeping that share
    marked with a star, and the area chosen on the slider as a gray line. ``curves``: (name, curve) pairs."""
    from .area import KEEP_SHARE

    fig = go.Figure()
    several = len(curves) > 1
    for i, (name, curve) in enumerate(curves):
        colour = PALETTE[i % len(PALETTE)]
        areas = list(curve.areas)
        tag = f"{name} ({curve.how})" if several else ""
        for what, values, dash, removed in (("only the region kept", curve.kept, "solid", False),
                                            ("the region removed", curve.removed, "dash", True)):
            label = f"{name}: {what}" if several else what
            fig.add_trace(go.Scatter(
                x=areas, y=list(values), mode="lines+markers", name=label, legendgroup=name,
                line={"color": PALETTE[(i + (1 if removed and not several else 0)) % len(PALETTE)], "dash": dash,
                      "width": 2}, marker={"size": 6},
                hovertemplate=(f"<b>{tag or curve.how}</b><br>region %{{x:.0%}} of the picture, {what}<br>"
                               f"p({curve.name}) = %{{y:.3f}}<extra></extra>")))
        if curve.smallest is not None:
            k = areas.index(curve.smallest)
            fig.add_trace(go.Scatter(
                x=[curve.smallest], y=[curve.kept[k]], mode="markers", name=f"smallest area keeping "
                f"{KEEP_SHARE:.0%}: {curve.smallest:.0%}" + (f" ({name})" if several else ""), legendgroup=name,
                marker={"symbol": "star", "size": 16, "color": colour, "line": {"color": "black", "width": 1}},
                hovertemplate=(f"smallest area keeping {KEEP_SHARE:.0%} of the score: %{{x:.0%}}"
                               "<extra></extra>")))
    clean = curves[0][1].clean if curves else 0.0
    for value, words, dash in ((clean, "the whole picture", "dot"),
                               (KEEP_SHARE * clean, f"{KEEP_SHARE:.0%} of it", "dashdot")):
        fig.add_trace(go.Scatter(x=[0.0, 0.65], y=[value, value], mode="lines", name=words, showlegend=False,
                                 line={"color": "#555", "dash": dash, "width": 1},
                                 hovertemplate=f"{words}: {value:.3f}<extra></extra>"))
    shapes = []
    if chosen is not None:
        shapes.append({"type": "line", "x0": chosen, "x1": chosen, "yref": "paper", "y0": 0, "y1": 1,
                       "line": {"color": "#888", "width": 2, "dash": "dot"}})
    fig.update_layout(
        height=height, margin={"l": 10, "r": 10, "t": 30, "b": 10}, shapes=shapes,
        xaxis={"title": {"text": "region's area (fraction of the picture)"}, "range": [0, 0.65],
               "tickformat": ".0%"},
        yaxis={"title": {"text": f"probability of {curves[0][1].name}" if curves and not several
                         else "probability of the class"}, "rangemode": "tozero"},
        legend={"orientation": "h", "y": -0.2, "yanchor": "top", "x": 0, "xanchor": "left"},
        hovermode="closest",
        annotations=[{"x": chosen, "y": 1, "yref": "paper", "text": f"chosen {chosen:.0%}", "showarrow": False,
                      "yanchor": "bottom", "font": {"color": "#555"}}] if chosen is not None else [],
    )
    return fig
