"""The area curve on the pages: the region at the chosen area beside the curve (Explain), every compared method's
curve on one plot (Compare). The numbers come from :mod:`dashboard.area`."""
from __future__ import annotations

import time
from typing import Any

import streamlit as st

from saliency_core import ExplainConfig, Explanation, LoadedImage

from . import area, inputs, plots, resources, services
from .progress import LiveProgress

#: What the section says the curve is, under its title.
ABOUT = ("The class probability with **only the region kept** (the rest gray) and with **the region removed**, for "
         "regions of 5 % to 60 % of the picture; the star marks the smallest area that keeps "
         f"{area.KEEP_SHARE:.0%} of the score on the whole picture.")


def area_aware(entry, options: dict[str, Any]) -> bool:
    """Whether the page draws the area curve unasked: the method makes its own region at an area with what is
    loaded (a conditional checkpoint without the area input: only on request, as any other map)."""
    return area.takes_area(entry, options)


def _label(expl: Explanation) -> int:
    return int(expl.shown if expl.shown is not None else expl.labels[0])


def _curve_masks(image: inputs.ImageInput, loaded: LoadedImage, config: ExplainConfig, label: int):
    """A function making an area-aware method's masks at the curve's 8 areas in one batched run (cached)."""
    curve_config = area.curve_config(config, label)

    def make(progress=None):
        classifier = resources.current_classifier()
        return services.masks_for(image, loaded, curve_config, classifier, resources.method(curve_config),
                                  resources.results(), progress)
    return make


def cached_curve(image: inputs.ImageInput, config: ExplainConfig, expl: Explanation) -> area.AreaCurve | None:
    """The explanation's area curve if it is at hand (a setting seen before), else None."""
    return resources.results().get(area.curve_key(resources.current_classifier(), image, config, _label(expl)))


def curve_for(image: inputs.ImageInput, loaded: LoadedImage, config: ExplainConfig, expl: Explanation, entry,
              what: str) -> area.AreaCurve:
    """The area curve of the explanation's shown label: from the cache at once, else computed with a ticking line of
    its own in this place (a slow method's run: the bar and the page's status line; ``what`` names it)."""
    classifier = resources.current_classifier()
    cache = resources.results()
    box = st.container()  # always here, a block either way, so the chart below keeps its place (computed or cached),
    # holding one line in every run: "busy" while computing, then where the curve came from
    line = box.empty()  # that line, replaced in place (busy, then done)
    hit = cached_curve(image, config, expl)
    if hit is not None:
        line.caption(f":material/check: {what}: kept from an earlier run with this mask")
        return hit
    masks = services.cached_masks(image, config, classifier, cache)
    if masks is None:
        raise ValueError("the method's masks are no longer at hand; change an option or reload")
    slow = bool(area.takes_area(entry, config.method_options) and entry.on_request)
    t0 = time.monotonic()
    with box, LiveProgress(what, bar=slow, top=slow, keep_marker=True, marker_slot=None if slow else line) as progress:
        curve = progress.run(area.run_area_curve, image, config, expl, masks, entry, classifier, cache,
                             curve_masks=_curve_masks(image, loaded, config, _label(expl)), label=_label(expl))
    line.caption(f":material/check: {what}: computed in {time.monotonic() - t0:.1f} s")  # over the busy line
    return curve


def curve_estimate(image: inputs.ImageInput, loaded: LoadedImage, config: ExplainConfig, expl: Explanation,
                   entry) -> float | None:
    """About how long a slow area-aware method's curve run takes here (its declared cost at the 8 areas)."""
    curve_config = area.curve_config(config, _label(expl))
    return services.estimate_seconds(entry.name, services.method_options(curve_config), 1,
                                     resources.current_classifier(), loaded, resources.results())


def chosen_area(entry, options: dict[str, Any]) -> float | None:
    """The area the method runs at (its ``area`` option, or the default of what is loaded); None for a method that
    takes no area."""
    if not area.takes_area(entry, options):
        return None
    if area.AREA in options:
        return float(options[area.AREA])
    from .menus import option_space

    space = option_space(entry, {k: v for k, v in options.items() if k == "checkpoint"})
    spec = space.get(area.AREA) or next((o for o in entry.options if o.name == area.AREA), None)
    return None if spec is None or spec.default is None else float(spec.default)


def _region(expl: Explanation, at: float, words: str) -> None:
    """The photo with the region of area ``at`` of the shown label's mask as it is and the rest dimmed."""
    shown = expl.shown if expl.shown is not None else expl.labels[0]
    st.markdown(f"**The region at {at:.0%}**")
    small = inputs.display_copy(expl.image, 640)  # the region is found at the size shown (a 4 MP photo: no delay)
    st.image(area.region_picture(small, expl.mask_for(shown), at), caption=f"{words}; the rest dimmed",
             width="stretch")


def area_block(image: inputs.ImageInput, loaded: LoadedImage, config: ExplainConfig, expl: Explanation, entry,
               key: str = "area") -> area.AreaCurve | None:
    """The region at the chosen area (a method that takes one: its own mask at the slider's area) or at the curve's
    mark (the top of any other map), beside the area curve. Moving the area slider redraws the region and the
    chosen-area line; the curve does not depend on the slider and comes from the cache."""
    st.caption(ABOUT)
    chosen = chosen_area(entry, config.method_options)
    left, right = st.columns([2, 3])
    if chosen is not None:  # drawn before the curve is computed: it needs only the mask
        with left:
            _region(expl, chosen, f"its own mask at {chosen:.0%}")
    curve = None
    with right:
        if entry.on_request and area.takes_area(entry, config.method_options) and cached_curve(image, config, expl) is None:
            # a slow method optimises each region: the 8 areas are one more run of it (one batch), on request
            estimate = curve_estimate(image, loaded, config, expl, entry)
            if not st.button(f"Compute the area curve ({services.describe_seconds(estimate)})", key="area_run",
                             icon=":material/play_arrow:", width="content"):
                st.info(f"**{entry.name}** optimises each region: the curve's 8 areas are one more run of it, all in "
                        "one batch.")
                return None
        curve = curve_for(image, loaded, config, expl, entry, "Area curve (8 areas)")
        st.plotly_chart(plots.area_curves_figure([(expl.config.method, curve)], chosen=chosen),
                        key=f"{key}_chart", config={"displaylogo": False})
        mark = (f"{curve.smallest:.0%} of the picture keeps {area.KEEP_SHARE:.0%} of the score" if curve.smallest
                is not None else f"no region up to 60 % keeps {area.KEEP_SHARE:.0%} of the score")
        st.caption(f"{curve.name}: {curve.clean:.1%} on the whole picture; {mark}. The region is {curve.how}. "
                   f"Computed in {curve.seconds:.2f} s (kept for every area on the slider).")
    if chosen is None:
        at = curve.smallest or curve.areas[-1]
        with left:
            _region(expl, at, f"the top {at:.0%} of its map" + (
                f" (the smallest area keeping {area.KEEP_SHARE:.0%})" if curve.smallest is not None else ""))
    return curve


def compare_block(image: inputs.ImageInput, loaded: LoadedImage, explained: list[tuple[str, Explanation]],
                  configs: dict[str, ExplainConfig], entries: dict[str, Any], run_slow: bool) -> None:
    """Every compared method's area curve on one plot (its own masks at each area, or the top a of its map: the
    legend says which) and a table of each one's smallest area keeping the score and its kept / removed at 20 %. A
    slow area-aware method's curve is one more run of it: made with the slow methods (``run_slow``), then cached."""
    curves, later = [], []
    for name, expl in explained:
        entry = entries[name]
        if entry.on_request and area.takes_area(entry, configs[name].method_options) and not run_slow \
                and cached_curve(image, configs[name], expl) is None:
            later.append(name)
            continue
        curves.append((name, curve_for(image, loaded, configs[name], expl, entry, f"{name}: area curve")))
    if later:
        st.caption(f"{', '.join(later)}: the area curve is one more optimisation run; it is made the next time the "
                   "slow methods run.")
    if not curves:
        return
    st.caption(ABOUT)
    st.plotly_chart(plots.area_curves_figure(curves), key="compare_area_chart", config={"displaylogo": False})
    near = min(range(len(area.CURVE_AREAS)), key=lambda i: abs(area.CURVE_AREAS[i] - 0.2))
    st.dataframe([{"method": name, "region": c.how,
                   f"smallest area keeping {area.KEEP_SHARE:.0%}": c.smallest,
                   f"kept at {area.CURVE_AREAS[near]:.0%}": c.kept[near],
                   f"removed at {area.CURVE_AREAS[near]:.0%}": c.removed[near]} for name, c in curves],
                 hide_index=True, width="stretch",
                 column_config={f"smallest area keeping {area.KEEP_SHARE:.0%}":
                                st.column_config.NumberColumn(format="percent"),
                                f"kept at {area.CURVE_AREAS[near]:.0%}": st.column_config.NumberColumn(format="%.3f"),
                                f"removed at {area.CURVE_AREAS[near]:.0%}":
                                st.column_config.NumberColumn(format="%.3f")})
