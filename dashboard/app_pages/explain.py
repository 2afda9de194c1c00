"""Explain page: the image's top-5, a method with its toggles, the four views, the area curve, per-label curves,
downloads."""
from __future__ import annotations

import streamlit as st

from dashboard import (ab, area_section, curve_scores, menus, resources, sections, services, state, url_state,
                       widgets)
from dashboard.progress import LiveProgress
from saliency_core import ExplainConfig

st.title("Explain an image")
settings = resources.settings()
image = state.image_input()

classifier = sections.require_classifier()

config: ExplainConfig | None = None
entry = None
ready = False
with st.sidebar:
    st.divider()
    st.subheader("Explanation")
    with sections.guard("The explanation controls"):
        catalog = resources.catalog()
        checkpoints = menus.find_checkpoints(settings.checkpoint_folders)
        entry, options, ready = widgets.method_ui(catalog, checkpoints, settings)
        labels = widgets.labels_ui(classifier.class_names)
        infiller, infiller_options = widgets.infiller_ui()
        with st.expander("Display"):
            opacity, cmap = widgets.display_ui()
        with st.expander("Advanced"):
            seed = widgets.seed_ui()
        config = ExplainConfig(method=entry.name, method_options=options, labels=labels, infiller=infiller,
                               infiller_options=infiller_options, seed=seed, overlay_opacity=opacity, colormap=cmap)
        # every setting that changes what is shown, from its declaration (never a checkpoint's path on the server)
        url_state.publish(image, entry, options, labels, view=(infiller, infiller_options), page=True)

loaded = sections.load_current_image(image)
top_slot = st.container()  # the image and its top-5, filled below (from the explanation when there is one)


def explanation_section():
    """The explanation for the current image and options (quick methods run at once; per-image
    optimisation runs when asked, with a progress bar, the mask as it forms, and Cancel)."""
    cache = resources.results()
    found = services.cached_explanation(image, config, classifier, cache, show=shown_label())
    if found is not None:
        return found
    estimate = services.estimate_seconds(entry.name, services.method_options(config), services.label_count(labels),
                                         classifier, loaded, cache) if entry.on_request else None
    if entry.on_request and not services.has_masks(image, config, classifier, cache):
        buttons = st.container(horizontal=True)  # each button as wide as its words: the method's full name shows
        run = buttons.button(f"Run {entry.name}", type="primary", key="run_method", icon=":material/play_arrow:",
                             width="content")
        cancel = buttons.button("Cancel", key="cancel_method", icon=":material/stop:", width="content")
        if cancel:
            st.info("Cancelled. Change the options or press Run to start again.")
        if not run:
            if not cancel:
                st.info(f"**{entry.name}** takes {services.describe_seconds(estimate)} on this machine; press Run. "
                        "Progress is shown at the top of the page, and Cancel stops it.")
            return None
    method = resources.method(config)
    # a quick method: only the floating status line (no bar in the page's flow, so the views do not move); the
    # work runs in a worker thread while the status line ticks, and any click still stops it (``run``)
    with LiveProgress(f"Explaining with {entry.name}", show_mask=entry.on_request, bar=entry.on_request,
                               estimate_s=estimate) as progress:
        return progress.run(services.run_explanation, image, loaded, config, classifier, method, cache,
                            show=shown_label(), predict_views=False)  # classified as they are drawn


def shown_label() -> int | None:
    """The label picked in "Show the mask of" (drawn under the views of a per-label method)."""
    value = st.session_state.get("show_label")
    return int(value) if value is not None else None


expl = None
if loaded is not None and config is not None:
    if not ready:
        st.info("Choose a masker checkpoint in the sidebar (upload one or give its path), or pick another method.")
    else:
        with sections.guard(f"Explaining with {config.method}"):
            expl = explanation_section()

predictions = None
if loaded is not None:
    with top_slot, sections.guard("Classifying the image"):
        # the explanation already classified the unmasked image: no second forward pass
        predictions = expl.predictions["overlay"] if expl is not None else \
            services.top_predictions(loaded, image, classifier, resources.results())
        sections.original_block(loaded, predictions)

if expl is not None:
    st.subheader("What the classifier sees")
    if expl.per_label and len(expl.labels) > 1:
        names = expl.summary()["labels"]
        picked = widgets.show_label_ui(expl.labels, [f"{n['name']} ({n['index']})" for n in names])
        if picked != expl.shown:  # another label's mask: the views are drawn again, the method does not run
            with sections.guard("Drawing the views"):
                expl = services.run_explanation(image, loaded, config, classifier, resources.method(config),
                                                resources.results(), show=picked, predict_views=False)
    elif not expl.per_label:
        st.caption("This method makes **one mask for the whole picture**: it is the same for every label. The "
                   "curves below score that one mask for each label.")
    pin = ab.ab_control(expl, image, config)
    if pin is not None:  # A and B side by side, each view with its predictions
        ab.ab_views_block(pin, expl, config)
    else:
        sections.views_block(expl, key="explain_views")
    st.caption(sections.timings_caption(expl))
    # the area curve: the method's own region at each area (an area-aware method), or the top of its map on request
    if area_section.area_aware(entry, config.method_options) or st.toggle("Area curve of this map", key="area_curve_any",
                                     help="Keep or remove the top 5 % to 60 % of the map and see the class "
                                          "probability (Fong, Patrick & Vedaldi's fixed-area view)."):
        st.subheader("Area curve")
        with sections.guard("Computing the area curve"):
            area_section.area_block(image, loaded, config, expl, entry)
    if expl.per_label and len(expl.labels) > 1:
        with st.expander(f"Masks of all {len(expl.labels)} labels"):
            with sections.guard("Drawing the per-label masks"):
                sections.per_label_masks_block(expl)
    scores = None
    if curve_scores.curves_available():
        st.subheader("Per-label insertion curves")
        with sections.guard("Computing the per-label curves"):
            with st.expander("Curve settings"):
                request = widgets.curves_ui(settings)
            curve_labels = curve_scores.curve_labels(expl)
            if pin is not None:  # A's curves (dashed) with B's on one plot, and A, B and B - A in a table
                scores = ab.ab_curves_block(pin, expl, curve_labels, request,
                                                  services.masks_key(classifier, image, config))
            else:
                scores = sections.curves_block(expl, curve_labels, request,  # curves depend on the masks only
                                               services.masks_key(classifier, image, config))
    st.subheader("Downloads")
    with sections.guard("Preparing the downloads"):
        sections.downloads_block(expl, image.name, scores)
