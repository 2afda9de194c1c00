"""Compare page: a grid of methods x views for the same image, with each method's scores and time."""
from __future__ import annotations

import functools
import json

import streamlit as st

from dashboard import (area_section, curve_scores, export, inputs, menus, plots, resources, sections, services,
                       state, url_state, widgets)
from dashboard.progress import LiveProgress
from saliency_core import ExplainConfig

st.title("Compare methods")
st.caption("Every method explains the same image's top-5 labels; the views show the top label's mask and the "
           "scores cover all five (a per-label method's own masks, or one mask shared by all).")
settings = resources.settings()
image = state.image_input()

classifier = sections.require_classifier()

choices: dict[str, tuple[str, dict]] = {}
picked: list[str] = []
infiller, infiller_options = "blur", {}
with st.sidebar:
    st.divider()
    st.subheader("Methods to compare")
    with sections.guard("The comparison controls"):
        catalog = resources.catalog()
        checkpoints = menus.find_checkpoints(settings.checkpoint_folders)
        choices, preferred = menus.comparison_choices(catalog, checkpoints)
        quick = [c for c, (n, _) in choices.items() if not catalog[n].on_request]
        preferred = [c for c in preferred if c in quick]
        picked = st.multiselect("Methods", list(choices), key="compare_methods",
                                **widgets.unless_set("compare_methods", default=preferred or quick[:3]),
                                help="Per-image optimisation methods run with their default options.",
                                persist_state=widgets.PERSIST)
        infiller, infiller_options = widgets.infiller_ui()
        url_state.publish(image, view=(infiller, infiller_options), page=True,  # a link reproduces the page
                          compare=picked)

loaded = sections.load_current_image(image)
if loaded is not None and picked:
    cache = resources.results()
    request = curve_scores.CurveRequest(steps=settings.curve_steps)
    rows = []
    explained: list[tuple[str, object]] = []
    scored: list[tuple[str, object]] = []  # each method's label_scores, for the note and the top-1 table
    configs = {c: ExplainConfig(method=choices[c][0], method_options=choices[c][1], labels="top5", infiller=infiller,
                                infiller_options=infiller_options) for c in picked}
    # one rule for every method, from what it declares: slow ones wait for a Run, with their estimated time
    waiting = [c for c in picked if catalog[choices[c][0]].on_request
               and not services.has_masks(image, configs[c], classifier, cache)]
    run_slow = False
    if waiting:
        estimates = [services.estimate_seconds(choices[c][0], services.method_options(configs[c]), 5, classifier,
                                               loaded, cache) for c in waiting]
        total = None if any(e is None for e in estimates) else sum(estimates)
        b1, b2, note = st.columns([1.4, 1, 3])
        run_slow = b1.button(f"Run {len(waiting)} slow method{'s' if len(waiting) > 1 else ''}", type="primary",
                             key="compare_run", icon=":material/play_arrow:")
        if b2.button("Cancel", key="compare_cancel", icon=":material/stop:"):
            note.info("Cancelled: the slow methods wait for Run again.")
        elif not run_slow:
            note.caption(f"{', '.join(waiting)}: {services.describe_seconds(total)} in all on this machine. "
                         "The other methods are shown already.")
    for choice in picked:
        name, options = choices[choice]
        config = configs[choice]
        if choice in waiting and not run_slow:
            continue
        cols = st.columns([1.3, 1, 1, 1, 1])
        cols[0].markdown(f"**{choice}**")
        with sections.guard(f"Explaining with {choice}"):
            scores = None
            estimate = services.estimate_seconds(name, services.method_options(config), 5, classifier, loaded,
                                                 cache) if choice in waiting else None
            with LiveProgress(choice, estimate_s=estimate) as progress:  # ticks every 0.25 s (``run``)
                expl = progress.run(services.run_explanation, image, loaded, config, classifier,
                                    resources.method(config), cache)
                row = {"method": choice, "time (s)": expl.timings.get("method_s"),
                       "mask area": float(expl.masks[0].mean()),
                       "masked-in keeps top-1": expl.predictions["masked_in"][0].index == expl.labels[0],
                       "masked-out removes top-1": expl.predictions["masked_out"][0].index != expl.labels[0]}
                if curve_scores.curves_available():
                    progress.label = f"{choice}: {sections.curves_label(request.steps, len(expl.labels))}"
                    scores = progress.run(curve_scores.run_label_scores, expl, curve_scores.curve_labels(expl), request,
                                          classifier, cache, services.masks_key(classifier, image, config))
                    row.update({"top-1 insertion AUC": float(scores.auc[0]), **sections.scores_summary(scores)})
            rows.append(row)
            explained.append((choice, expl))
            if scores is not None:
                scored.append((choice, scores))
            with cols[0]:
                st.caption(f"{row['time (s)']:.2f} s; mask area {row['mask area']:.0%}")
                if scores is not None:
                    st.caption(f"completeness {row['worst completeness']:.2f}, "
                               f"soundness {row['worst soundness']:.2f} (worst of {len(scores.labels)} labels)")
            for col, view in zip(cols[1:], sections.VIEW_ORDER):
                top = expl.predictions[view][0]
                col.image(inputs.display_copy(expl.views[view], 360), width="stretch",  # a phone stacks the
                          caption=f"{sections.VIEW_TITLES[view]} · {choice}: {top.name} {top.probability:.0%}")  # grid
    if rows:
        st.subheader("Scores for this image")
        top_p = explained[0][1].predictions["overlay"][0].probability
        reasons = curve_scores.why_scores_cannot_separate(top_p, [s for _, s in scored])
        if reasons:  # from the numbers: an unsure photo, tied worst cases, or a weak label's floor
            st.info(f"These scores cannot separate the methods on this photo: {'; '.join(reasons)}. "
                    f"“{widgets.COMPARE_TOP1.title}” below shows each method's scores on the top label alone.",
                    icon=":material/balance:")
        top1 = widgets.option_widget(widgets.COMPARE_TOP1, key=widgets.COMPARE_TOP1.name) if scored else False
        st.dataframe(rows, hide_index=True, width="stretch",  # narrow columns: all nine fit at 1440 px
                     column_config={k: {**v, "width": "small" if k != "method" else "medium",  # a cut header:
                                        "help": v.get("help") or v.get("label")}  # its full name on hover
                                    for k, v in sections.COMPARE_COLUMNS.items()})
        if top1:
            st.markdown("**Scores of the top-1 label** (each method's own mask for it)")
            st.dataframe([curve_scores.top1_scores_row(c, s) for c, s in scored], hide_index=True, width="stretch",
                         column_config={k: st.column_config.NumberColumn(k, format="%.3f")
                                        for k in ("f(x)", "insertion AUC", "completeness", "soundness")})
        if "worst completeness" in rows[0]:
            st.plotly_chart(plots.scores_figure(rows), key="compare_scores")
        st.subheader("Area curves")
        with sections.guard("Computing the area curves"):
            area_section.compare_block(image, loaded, explained, configs,
                                       {c: catalog[choices[c][0]] for c, _ in explained}, run_slow)
        settings_used = {"image": loaded.name, "labels": "top5", "infiller of the infilled view": infiller,
                         "infiller options": json.dumps({k: v for k, v in infiller_options.items() if k != "pool"}),
                         "methods": ", ".join(f"{c} {json.dumps(export.export_safe(choices[c][1]))}"  # a checkpoint by
                                             for c, _ in explained)}  # its name and content hash, not its path
        st.download_button("Download this comparison (one HTML file)", icon=":material/download:",
                           data=functools.partial(export.comparison_report, loaded.name, explained, rows,
                                                  settings_used, classifier),
                           file_name=f"comparison_{loaded.name.rsplit('.', 1)[0]}.html", mime="text/html",
                           key="compare_report", on_click="ignore")
elif loaded is not None:
    st.info("Pick one or more methods in the sidebar.")
