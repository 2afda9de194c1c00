"""Help page: each toggle in two sentences with the paper it comes from, and the registered methods."""
from __future__ import annotations

import streamlit as st

from dashboard import curve_scores, menus, resources, widgets
from dashboard.help_text import PAPERS, TOGGLES, VIEW_HELP, VIEW_TITLES

st.title("Help")
st.markdown("A **saliency map** (mask) marks the pixels a classifier relies on. The views test it: the "
            "classifier is asked again on the image with only the mask kept, with the mask removed, and with "
            "the removed part filled in.")


def _toggle(name: str) -> None:
    entry = TOGGLES.get(name)
    if entry is None:
        st.markdown(f"- **{name.replace('_', ' ')}** (`{name}`): an option of the method, passed as it is.")
        return
    st.markdown(f"- **{entry.title}** (`{name}`): {entry.text} *{entry.citation}.*")


st.markdown("**Contents**: [Views](#views) · [What you choose](#what-you-choose) · [Method options](#method-options)"
            " · [Infiller options](#infiller-options) · [Per-label curves](#per-label-curves) · [Methods](#methods) · "
            "[Papers](#papers)")

st.header("Views", anchor="views")
for view, text in VIEW_HELP.items():
    st.markdown(f"- **{VIEW_TITLES[view]}**: {text}")

st.header("What you choose", anchor="what-you-choose")
for name in ("method", "labels", "infiller", "seed"):
    _toggle(name)

catalog = resources.catalog()
st.subheader("Method options", anchor="method-options")
st.caption("Each method declares its options with their help (saliency_core.options); the sidebar shows them.")
for entry in catalog.values():
    if entry.options:
        with st.expander(f"{entry.name}: {len(entry.options)} option{'s' if len(entry.options) > 1 else ''}"):
            for spec in entry.options:
                st.markdown(f"- **{spec.title}** (`{spec.name}`, {spec.describe()}, default `{spec.default}`): "
                            f"{spec.help}")

st.subheader("Infiller options", anchor="infiller-options")
for name in widgets.infiller_names():
    for spec in menus.infiller_options(name):
        st.markdown(f"- **{name}: {spec.title}** (`{spec.name}`, {spec.describe()}): {spec.help}")

if curve_scores.curves_available():
    st.subheader("Per-label curves", anchor="per-label-curves")
    st.markdown("For each label a, the pixels are ranked by the mask and inserted into a gray image, most salient "
                "first; the curve is the classifier's probability of a at each step, and the dashed line is "
                "f(x, a), its probability on the whole image.")
    for name in ("curve_steps", "eps1", "eps2", "restrict_to"):
        _toggle(name)

st.header("Methods", anchor="methods")
for name, entry in catalog.items():
    cite = f" *{entry.paper}.*" if entry.paper else ""
    st.markdown(f"- **{name}** ({entry.group.lower()}): {entry.summary}.{cite}")

st.header("Papers", anchor="papers")
for text in PAPERS.values():
    st.markdown(f"- {text}")
