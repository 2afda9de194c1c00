"""A/B: "Pin as A" keeps the current views and their scores on screen while the options change, so two settings are
seen side by side (A pinned, B now), their curves on one plot and their scores in one table.
"""
from __future__ import annotations

from typing import Any

import streamlit as st

from saliency_core import Explanation

from . import curve_scores, inputs, menus, plots, resources, services
from .help_text import plain_choice
from .progress import LiveProgress
from .sections import views_block

AB_PIN = "ab_pin"


def setting_words(config) -> str:
    """The method and the options that differ from its defaults, in one line (never a checkpoint's path)."""
    shown = {k: v for k, v in config.method_options.items()
             if k not in ("checkpoint", "infiller_options", menus.AREAS_OPTION)}  # areas: the curve's, not chosen
    words = ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {plain_choice(v)}" for k, v in shown.items())
    return f"{config.method}" + (f": {words}" if words else " (its default options)")


def ab_control(expl: Explanation, image: inputs.ImageInput, config) -> dict[str, Any] | None:
    """"Pin as A": keep the current views (and, on the page, their scores) while the options change, so two settings
    are seen side by side (A pinned, B now). Returns the pin (for this image) or None; any method, any option."""
    pin = st.session_state.get(AB_PIN)
    if pin is not None and pin["image"] != image.digest:  # another photo: a pin of the old one means nothing
        st.session_state.pop(AB_PIN, None)
        pin = None
    if pin is None:  # callbacks: the page is drawn again with the pin already set (or gone)
        key = services.masks_key(resources.current_classifier(), image, config)  # what A's curves are cached under
        st.button("Pin as A", key="ab_pin_button", icon=":material/push_pin:", on_click=_pin,
                  args=({"image": image.digest, "expl": expl, "words": setting_words(config), "key": key,
                         "scores": {}},),
                  help="Keep these views and their scores on screen as A; then change the options to see B beside "
                       "them.")
    else:
        st.button("Unpin A", key="ab_unpin_button", icon=":material/close:", on_click=_pin, args=(None,),
                  help="Show only the current setting.")
    return pin


def ab_views_block(pin: dict[str, Any], expl: Explanation, config) -> None:
    """A (pinned) and B (now) in two columns, each with its four views and their predictions (a phone stacks B
    below A)."""
    col_a, col_b = st.columns(2, gap="medium")
    with col_a:
        st.markdown(f"**A (pinned)**: {pin['words']}")
        views_block(pin["expl"], key="pinned_views", max_per_row=2, width=600)
    with col_b:
        st.markdown(f"**B (now)**: {setting_words(config)}")
        views_block(expl, key="explain_views", max_per_row=2, width=600)


def ab_scores(pin: dict[str, Any], request: curve_scores.CurveRequest):
    """A's per-label scores at the current curve settings, computed as B's are (``run_label_scores``, cached
    under A's masks key) and kept in the pin too, so they outlive the shared cache."""
    kept = pin["scores"].get(request)
    if kept is None:
        a = pin["expl"]
        labels = curve_scores.curve_labels(a)
        with LiveProgress(f"A's insertion curves ({request.steps} steps, {len(labels)} labels)") as progress:
            kept = curve_scores.run_label_scores(a, labels, request, resources.current_classifier(),
                                                 resources.results(), pin["key"], progress=progress)
        pin["scores"][request] = kept
    return kept


def ab_table(a, b):
    """A, B and B − A for the worst completeness and soundness, the best effort, and each label's insertion AUC,
    completeness and soundness (a label explained on one side only has no number on the other)."""
    import pandas as pd

    rows = [(name, getattr(a, attr), getattr(b, attr)) for name, attr in (
        ("worst completeness", "worst_completeness"), ("worst soundness", "worst_soundness"),
        ("best effort", "best_effort"))]
    per_a = {label: k for k, label in enumerate(a.labels)}
    per_b = {label: k for k, label in enumerate(b.labels)}
    names = dict(zip(a.labels, a.names)) | dict(zip(b.labels, b.names))
    for label in [*b.labels, *(v for v in a.labels if v not in per_b)]:
        for what, attr in (("completeness", "completeness"), ("soundness", "soundness"), ("insertion AUC", "auc")):
            value = lambda s, index: None if label not in index else float(getattr(s, attr)[index[label]])  # noqa: E731
            rows.append((f"{what}: {names[label]} ({label})", value(a, per_a), value(b, per_b)))
    frame = pd.DataFrame(rows, columns=["score", "A", "B"]).astype({"A": float, "B": float})
    frame["B − A"] = frame["B"] - frame["A"]
    return frame


def ab_curves_block(pin: dict[str, Any], expl: Explanation, labels: list[int], request: curve_scores.CurveRequest,
                    expl_key: str):
    """With A pinned: A's curves (dashed) and B's on one plot, and a table of A, B and B − A. Returns B's scores."""
    a = ab_scores(pin, request)
    with LiveProgress(f"Insertion curves ({request.steps} steps, {len(labels)} labels)") as progress:
        b = curve_scores.run_label_scores(expl, labels, request, resources.current_classifier(), resources.results(),
                                      expl_key, progress=progress)
    st.plotly_chart(plots.ab_curves_figure(a, b), key="ab_curves_chart")
    st.dataframe(ab_table(a, b), hide_index=True, width="stretch",
                 column_config={"score": st.column_config.TextColumn("score"),
                                "A": st.column_config.NumberColumn("A", format="%.3f", help=pin["words"]),
                                "B": st.column_config.NumberColumn("B", format="%.3f"),
                                "B − A": st.column_config.NumberColumn("B − A", format="%+.3f")})
    return b


def _pin(pin: dict[str, Any] | None) -> None:
    if pin is None:
        st.session_state.pop(AB_PIN, None)
    else:
        st.session_state[AB_PIN] = pin
