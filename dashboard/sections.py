"""Page blocks shared by the pages: error guard, progress, image, predictions, views, curves, downloads.

Each block draws widgets and calls :mod:`dashboard.services`; an error inside a block becomes one
``st.error`` line (never a traceback) and the rest of the page keeps working.
"""
from __future__ import annotations

import html
import json
import logging
import threading
import time
from contextlib import contextmanager
from functools import partial
from typing import Any, Iterator

import numpy as np
import streamlit as st
import torch

from saliency_core import Explanation, LoadedImage, classify_views, mask_image

from . import plots, resources, services, state
from .help_text import VIEW_HELP, VIEW_TITLES, tooltip

log = logging.getLogger("saliency.dashboard")

VIEW_ORDER = ("overlay", "masked_in", "masked_out", "infilled")
#: Which predictions go under which view (the overlay shows the unmasked image's).
PREDICTION_OF_VIEW = {"overlay": "original", "masked_in": "masked_in", "masked_out": "masked_out",
                      "infilled": "infilled"}


#: Columns of the per-label score table, in order (``shared_mask`` is said once under the table instead).
SCORE_COLUMNS = ("name", "label", "f", "auc", "completeness", "soundness", "predicted")
#: The Compare page's score table: human headers and formats for its columns.
COMPARE_COLUMNS = {
    "method": st.column_config.TextColumn("method"),
    "time (s)": st.column_config.NumberColumn("time", format="%.2f s"),
    "mask area": st.column_config.NumberColumn("mask area", format="percent"),
    "masked-in keeps top-1": st.column_config.CheckboxColumn("kept part keeps the label"),
    "masked-out removes top-1": st.column_config.CheckboxColumn("removing it changes the label"),
    "top-1 insertion AUC": st.column_config.NumberColumn("insertion AUC (top label)", format="%.3f"),
    "worst completeness": st.column_config.NumberColumn("worst completeness", format="%.3f"),
    "worst soundness": st.column_config.NumberColumn("worst soundness", format="%.3f"),
    "best effort": st.column_config.NumberColumn("best effort", format="%.3f"),
}


class Cancelled(Exception):
    """The user cancelled a running computation."""


def one_line(exc: BaseException, what: str) -> str:
    """A user-facing one-line message: the core's own message for its errors, a short summary otherwise."""
    text = services.shown_path(str(exc).strip())
    first = text.splitlines()[0] if text else type(exc).__name__
    if len(first) > 300:
        first = first[:297] + "..."
    if isinstance(exc, (ValueError, OSError, FloatingPointError)):
        return first
    if isinstance(exc, MemoryError):
        return f"{what}: out of memory (try a smaller image or fewer steps)"
    return f"{what} failed: {type(exc).__name__}: {first}"


@contextmanager
def guard(what: str) -> Iterator[None]:
    """Show any error in the block as one ``st.error`` line; Streamlit's rerun/stop still propagate
    (they are not ``Exception`` subclasses)."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - the point is that nothing reaches the user as a traceback
        message = one_line(exc, what)
        if isinstance(exc, (ValueError, OSError, FloatingPointError, MemoryError)):  # the user's input: one line
            log.warning("%s: %s", what, message)
        else:  # a bug: the traceback goes to the server log only
            log.error("%s failed", what, exc_info=True)
        st.error(message, icon=":material/error:")


def require_classifier():
    """The process's classifier, or one error line and the end of this page run (nothing below runs)."""
    classifier = None
    with guard("Loading the classifier"):
        classifier = resources.current_classifier()
    if classifier is None:
        st.stop()
    return classifier


#: The status line floats at the top of the main area (its element is taken out of the page's flow), so that it
#: appearing and going on every toggle does not push the views down and up.
STATUS_CSS = """<style>
[data-testid="stElementContainer"]:has(.saliency-status) {position: fixed; top: 3.75rem; right: 1.5rem;
  z-index: 999990; width: auto; max-width: min(36rem, 80vw);}
.saliency-status {background: #e8f1fb; color: #0b3a66; border-radius: 0.5rem; padding: 0.45rem 0.8rem;
  box-shadow: 0 1px 4px rgba(0,0,0,.15); font-size: 0.95rem;}
</style>"""


class LiveProgress:
    """A ``progress(fraction, message, ...)`` callback drawing a progress bar and, when the core
    passes masks (``current_masks=`` K x H x W, as ``saliency_core.methods.optimize.engine`` does), the first
    label's mask as it forms, plus the status line at the top of the page. Each update is also where a Cancel
    click (a Streamlit rerun) stops the running computation.

    :meth:`run` runs the work in a worker thread while the script thread redraws the status line every
    ``tick_s`` (elapsed time, and the progress reported so far or, for a method that reports none, the elapsed
    share of its estimate), so the line moves even during one long classifier pass. A rerun (Cancel, any click)
    raises in the script thread at its next redraw; the worker is told to stop at its next progress update and
    its result is dropped. ``bar=False``: no bar in the page's flow (the status line only, so nothing above the
    views moves); ``top=False``: no status line at the top (a section with its own marker, see ``busy``)."""

    def __init__(self, label: str, show_mask: bool = False, every_s: float = 0.25,
                 estimate_s: float | None = None, bar: bool = True, top: bool = True, marker: bool = False,
                 clock=time.monotonic) -> None:
        self.bar = st.progress(0.0, text=label) if bar else None
        self.marker = st.empty() if marker else None  # a section's own small "busy" line, in its place
        self.slot = st.empty() if show_mask else None
        self.status = state.status_slot() if top else None  # the line at the top of the page, seen without scrolling
        self.every_s = every_s
        self.clock = clock
        self._last = 0.0
        self._t0 = clock()
        self.label = label
        self.estimate_s = estimate_s
        self.calls = 0
        self.fraction = 0.0  # the progress the work reported (0 until it reports)
        self.message = ""
        self.ticks = 0  # redraws of the status line
        self._status(0.0)

    def shown_fraction(self) -> float:
        """The progress to show: what the work reported, or (none reported) the elapsed share of the estimate,
        kept under 95 % so that a bar never says "done" before the work is."""
        if self.fraction > 0 or not self.estimate_s:
            return self.fraction
        return min((self.clock() - self._t0) / self.estimate_s, 0.95)

    def status_text(self) -> str:
        elapsed = self.clock() - self._t0
        if self.estimate_s is not None and self.estimate_s >= 1:
            total = f" of {services.describe_seconds(self.estimate_s)}"
        elif self.fraction > 0.05:
            total = f" of about {elapsed / self.fraction:.0f} s"
        else:
            total = ""
        done = f" ({self.fraction:.0%} done)" if self.fraction > 0 else ""
        return f"**Running:** {self.label} — {elapsed:.0f} s{total}{done}"

    def _status(self, fraction: float | None = None) -> None:
        if fraction is not None:
            self.fraction = fraction
        self.ticks += 1
        text = self.status_text()
        if self.status is not None:  # floats over the page's top: showing or hiding it moves nothing below
            self.status.markdown(STATUS_CSS + '<div class="saliency-status" role="status">&#x23F3; '
                                 + html.escape(text).replace("**Running:**", "<b>Running:</b>") + "</div>",
                                 unsafe_allow_html=True)
        if self.marker is not None:
            self.marker.caption(":material/hourglass_top: " + text.replace("**Running:** ", ""))

    def tick(self) -> None:
        """Redraw the status line and the bar with the time elapsed (the script thread, every ``tick_s``)."""
        if self.bar is not None:
            text = f"{self.label}: {self.message}" if self.message else self.label
            self.bar.progress(self.shown_fraction(), text=f"{text} ({self.clock() - self._t0:.0f} s)")
        self._status()

    def __call__(self, fraction: float, message: str = "", *args: Any, **kwargs: Any) -> None:
        self.calls += 1
        value = float(min(max(fraction, 0.0), 1.0)) if fraction == fraction else 0.0
        self.message = message
        if self.bar is not None:
            self.bar.progress(value, text=f"{self.label}: {message}" if message else self.label)
        self._status(value)
        mask = kwargs.get("current_masks", kwargs.get("mask", args[0] if args else None))
        if self.slot is not None and mask is not None and self.clock() - self._last >= self.every_s:
            self._last = self.clock()
            arr = mask.detach().float().cpu().numpy() if torch.is_tensor(mask) else np.asarray(mask, dtype=np.float32)
            while arr.ndim > 2:
                arr = arr[0]
            self.slot.image(mask_image(arr), caption="the mask as it forms", width=260)

    def run(self, fn, *args: Any, tick_s: float = 0.25, **kwargs: Any) -> Any:
        """``fn(*args, progress=..., **kwargs)`` in a worker thread; the page is redrawn from here every
        ``tick_s`` with the latest progress (Streamlit elements are only touched by the script thread)."""
        return run_ticking(fn, args, kwargs, self, tick_s)

    def done(self) -> None:
        if self.marker is not None:
            self.marker.empty()
        if self.bar is not None:
            self.bar.empty()
        if self.status is not None:
            self.status.empty()
        if self.slot is not None:
            self.slot.empty()

    def __enter__(self) -> "LiveProgress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.done()  # also on errors: no half-filled bar is left on the page


def run_ticking(fn, args: tuple, kwargs: dict[str, Any], shown, tick_s: float = 0.25) -> Any:
    """Run ``fn(*args, progress=<recorder>, **kwargs)`` in a worker thread and call ``shown.tick()`` every ``tick_s``
    from this (the script) thread, passing on the progress the work reported (``shown(fraction, message, ...)``).

    A Streamlit rerun or stop raises out of ``shown``'s drawing here; the worker is then told to stop: its next
    progress update raises :class:`Cancelled`, so a cancelled computation is not finished or cached. Work that
    reports no progress (one classifier pass) finishes in the background; it is complete, so what it caches is
    right. An error of the work is raised here."""
    stop = threading.Event()
    box: dict[str, Any] = {}

    def progress(fraction: float, message: str = "", *a: Any, **kw: Any) -> None:
        if stop.is_set():
            raise Cancelled("stopped by a newer run of the page")
        box["latest"] = (fraction, message, a, kw)  # one slot: the newest update wins

    def work() -> None:
        try:
            box["value"] = fn(*args, progress=progress, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the script thread
            box["error"] = exc

    worker = threading.Thread(target=work, name="saliency-dashboard-work", daemon=True)
    worker.start()
    try:
        while True:
            worker.join(tick_s)
            update = box.pop("latest", None)  # the newest update only (redrawn at most every tick)
            if not worker.is_alive():
                break
            if update is not None:  # drawing it is where a rerun (Cancel, any click) stops the script
                fraction, message, a, kw = update
                shown(fraction, message, *a, **kw)
            else:
                shown.tick()  # the same, with the time elapsed
    except BaseException:
        stop.set()
        raise
    if "error" in box:
        raise box["error"]
    return box["value"]


# --------------------------------------------------------------------------- image


def load_current_image(image: services.ImageInput | None) -> LoadedImage | None:
    """Decode the chosen image with the dashboard's limits; errors are shown, None returned."""
    if image is None:
        st.info("Upload an image in the sidebar, or pick a sample photo.", icon=":material/image:")
        return None
    s = resources.settings()
    cache = resources.results()
    key = services.cache_key("image", image.digest, s.max_upload_mb, s.max_pixels, s.max_side)
    loaded = cache.get(key)
    if loaded is None:
        with guard("Reading the image"):
            loaded = services.load_input(image, s.max_upload_mb, s.max_pixels, s.max_side)
            cache.put(key, services.anonymous(loaded))  # shared by content: no session's file name in it
    return None if loaded is None else services.for_session(loaded, image)  # None: the error is on the page


def predictions_md(predictions: list, highlight: set[int] | None = None) -> str:
    lines = []
    for rank, p in enumerate(predictions, 1):
        name = f"**{p.name}**" if highlight and p.index in highlight else p.name
        lines.append(f"{rank}. {name} {p.probability:.1%}")
    return "\n".join(lines)


def original_block(loaded: LoadedImage, predictions: list, width: int = 420) -> None:
    """The image as loaded, its size and notes, and the classifier's top-5."""
    c1, c2 = st.columns([3, 2])
    with c1:
        st.image(services.display_copy(loaded.image, width), caption=f"{loaded.name} "
                 f"({loaded.original_size[0]} x {loaded.original_size[1]})", width="content")  # never wider than
        # its column, so a phone gets no horizontal scroll
    with c2:
        st.markdown("**The classifier says**")
        st.markdown(predictions_md(predictions))
        for note in loaded.notes:
            st.caption(f"Note: {note}")


# --------------------------------------------------------------------------- views


#: A mask whose mean is above this keeps almost the whole picture (below 1 - this: almost nothing); said in words.
NEARLY_ALL = 0.95


def mask_extent_note(mask: np.ndarray) -> str | None:
    """A plain sentence when a mask keeps almost all (or almost none) of the picture, read from the mask itself."""
    mean = float(np.mean(mask))
    if mean > NEARLY_ALL:
        return (f"This mask keeps almost all of the picture (on average {mean:.0%}): the masked-in view is nearly the "
                "whole photo and the masked-out view removes nearly everything, so these views cannot say which "
                "part mattered.")
    if mean < 1 - NEARLY_ALL:
        return (f"This mask keeps almost none of the picture (on average {mean:.0%}): the masked-in view is nearly "
                "all gray and the masked-out view is nearly the whole photo.")
    return None


def views_block(expl: Explanation, key: str, large: bool = False, captions: dict[str, str] | None = None,
                titles: dict[str, str] | None = None, max_per_row: int = 4, width: int = 1200) -> None:
    """The overlay, masked-in, masked-out and infilled views at one size, each in a column of its own with its title
    above and its top-5 below (Streamlit stacks columns on a phone, so each picture stays with its words); a very
    wide or tall image gets one or two views a row. ``max_per_row``/``width``: the space the block has (A/B: half)."""
    shown = expl.shown if expl.shown is not None else expl.labels[0]
    if large:  # the Demo: two big pictures a row, each with its sentence right below it
        classify_views(expl, resources.current_classifier())
        for start in (0, 2):
            for col, view in zip(st.columns(2), VIEW_ORDER[start:start + 2]):
                with col:
                    st.markdown(f"**{(titles or VIEW_TITLES)[view]}**", help=VIEW_HELP[view])
                    st.image(services.display_copy(expl.views[view], 900), width="stretch")
                    st.markdown(captions[view] if captions and view in captions else
                                predictions_md(expl.predictions[PREDICTION_OF_VIEW[view]], {shown}))
        return
    w, h = expl.image.size
    per_row = min(max_per_row, 1 if w > 3 * h else (2 if h > 2 * w else 4))
    side = 1400 if per_row == 1 else (900 if per_row == 2 else 560)
    mask = expl.mask_for(shown)
    slots = {}
    for start in range(0, len(VIEW_ORDER), per_row):
        for col, view in zip(st.columns(per_row), VIEW_ORDER[start:start + per_row]):
            with col:  # title, picture, predictions: together in one column
                st.markdown(f"**{(titles or VIEW_TITLES)[view]}**", help=VIEW_HELP[view])
                picture = services.display_copy(expl.views[view], side)
                st.plotly_chart(plots.views_figure([picture], mask if view == "overlay" else None, per_row=1,
                                                   width=width // per_row),
                                key=f"{key}_{view}", config=plots.VIEWS_CONFIG)
                slots[view] = st.empty()
    # the pictures are on their way to the browser: the masked views are classified while it draws them
    classify_views(expl, resources.current_classifier())
    for view, slot in slots.items():
        slot.markdown(captions[view] if captions and view in captions else
                      predictions_md(expl.predictions[PREDICTION_OF_VIEW[view]], {shown}))
    st.caption("Drag over a picture to zoom in; double-click to zoom out. The colours cover the photo in proportion "
               "to the mask: where the mask is 0 the photo is left as it is.")
    note = mask_extent_note(mask)
    if note:
        st.caption(note)


AB_PIN = "ab_pin"


def setting_words(config) -> str:
    """The method and the options that differ from its defaults, in one line (never a checkpoint's path)."""
    shown = {k: v for k, v in config.method_options.items() if k not in ("checkpoint", "infiller_options")}
    words = ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in shown.items())
    return f"{config.method}" + (f": {words}" if words else " (its default options)")


def ab_control(expl: Explanation, image: services.ImageInput, config) -> dict[str, Any] | None:
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


def ab_scores(pin: dict[str, Any], request: services.CurveRequest):
    """A's per-label scores at the current curve settings, computed as B's are (``services.run_label_scores``, cached
    under A's masks key) and kept in the pin too, so they outlive the shared cache."""
    kept = pin["scores"].get(request)
    if kept is None:
        a = pin["expl"]
        labels = services.curve_labels(a)
        with LiveProgress(f"A's insertion curves ({request.steps} steps, {len(labels)} labels)") as progress:
            kept = services.run_label_scores(a, labels, request, resources.current_classifier(), resources.results(),
                                             pin["key"], progress=progress)
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


def ab_curves_block(pin: dict[str, Any], expl: Explanation, labels: list[int], request: services.CurveRequest,
                    expl_key: str):
    """With A pinned: A's curves (dashed) and B's on one plot, and a table of A, B and B − A. Returns B's scores."""
    a = ab_scores(pin, request)
    with LiveProgress(f"Insertion curves ({request.steps} steps, {len(labels)} labels)") as progress:
        b = services.run_label_scores(expl, labels, request, resources.current_classifier(), resources.results(),
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


def per_label_masks_block(expl: Explanation, side: int = 320) -> None:
    """The overlay of every label's own mask (per-label methods), five to a row."""
    from saliency_core import overlay, resize_mask

    small = services.display_copy(expl.image, side)
    masks = resize_mask(torch.from_numpy(expl.masks), small.height, small.width).numpy()
    names = expl.summary()["labels"]
    cols = st.columns(5)
    for k, (mask, label) in enumerate(zip(masks, names)):
        cols[k % 5].image(overlay(small, mask), caption=f"{label['name']} ({label['index']})", width="stretch")


def timings_caption(expl: Explanation) -> str:
    t = expl.timings
    return (f"method {t.get('method_s', 0):.2f} s, views and new predictions {t.get('views_classify_s', 0):.2f} s, "
            f"total {t.get('total_s', 0):.2f} s (first computation; cached afterwards)")


# --------------------------------------------------------------------------- curves


def scores_summary(scores) -> dict[str, Any]:
    return {"worst completeness": scores.worst_completeness, "worst soundness": scores.worst_soundness,
            "best effort": scores.best_effort}


def plural(n: int, word: str) -> str:
    """``1 label``, ``5 labels``."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def curves_label(steps: int, n_labels: int) -> str:
    return f"Insertion curves ({plural(steps, 'step')}, {plural(n_labels, 'label')})"


def curves_block(expl: Explanation, labels: list[int], request: services.CurveRequest, expl_key: str,
                 key: str = "curves"):
    """Per-label insertion curves with f(x, a), completeness, soundness and the worst case."""
    classifier = resources.current_classifier()
    cache = resources.results()
    busy = st.empty()  # the section's own "busy" line (always here, so the chart below keeps its place)
    scores = services.cached_label_scores(labels, request, cache, expl_key)  # a seen setting: at once
    if scores is None:  # computed after the views, in one batched pass, with a ticking line of its own (not the
        with busy.container(), LiveProgress(curves_label(request.steps, len(labels)), bar=False, top=False,
                                            marker=True) as progress:  # page's top status line)
            scores = progress.run(services.run_label_scores, expl, labels, request, classifier, cache, expl_key)
    st.plotly_chart(plots.curves_figure(scores), key=f"{key}_chart")
    frame = scores.to_frame()
    st.dataframe(frame, hide_index=True, width="stretch", column_order=SCORE_COLUMNS,
                 column_config={"label": st.column_config.NumberColumn("class id", format="%d"),
                                "name": st.column_config.TextColumn("label"),
                                "f": st.column_config.NumberColumn("f(x, a)", format="%.3f",
                                                                   help="probability on the whole image"),
                                "auc": st.column_config.NumberColumn("insertion AUC", format="%.3f"),
                                "completeness": st.column_config.NumberColumn("completeness", format="%.3f"),
                                "soundness": st.column_config.NumberColumn("soundness", format="%.3f"),
                                "predicted": st.column_config.CheckboxColumn("top prediction")})
    worst_c = int(np.argmin(np.asarray(scores.completeness)))
    worst_s = int(np.argmin(np.asarray(scores.soundness)))
    c1, c2, c3 = st.columns(3)
    c1.metric("worst completeness", f"{scores.worst_completeness:.3f}", help=tooltip("eps1"),
              delta=scores.names[worst_c], delta_color="off", delta_arrow="off")
    c2.metric("worst soundness", f"{scores.worst_soundness:.3f}", help=tooltip("eps2"),
              delta=scores.names[worst_s], delta_color="off", delta_arrow="off")
    effort = scores.best_effort
    c3.metric("best effort (other labels)", "n/a" if effort is None else f"{effort:.3f}",
              help="Worst completeness over the labels other than the prediction (only defined when the "
                   "runner-up label has at least 1% probability).")
    if scores.shared_mask and len(labels) > 1:
        st.caption("One mask is shared by all labels: it can be complete for every label but not sound for all "
                   "(Gupta et al.).")
    return scores


# --------------------------------------------------------------------------- downloads


def _result_json(expl: Explanation, name: str) -> bytes:
    return services.result_json({**expl.summary(), "image": name})  # a checkpoint by name and hash, no path


def downloads_block(expl: Explanation, name: str, scores=None, key: str = "dl") -> None:
    """Mask (PNG, NPY), the four views (PNG), per-label scores (CSV) and result.json; the files are
    made only when a button is clicked. ``name``: the image's name in this session (a cached explanation
    carries none, see ``services.CACHED_NAME``)."""
    stem = name.rsplit(".", 1)[0] or "image"
    shown = expl.mask_for(expl.shown if expl.shown is not None else expl.labels[0])
    items = [
        ("mask (PNG)", partial(services.mask_png, shown), f"{stem}_mask.png", "image/png"),
        ("mask (NPY)", partial(services.mask_npy, shown), f"{stem}_mask.npy", "application/octet-stream"),
    ]
    if expl.per_label and len(expl.labels) > 1:
        items.append(("all masks (NPY)", partial(services.mask_npy, expl.masks), f"{stem}_masks.npy",
                      "application/octet-stream"))
    items += [(f"{VIEW_TITLES[v].split(' (')[0].lower()} (PNG)", partial(services.image_png, expl.views[v]),
               f"{stem}_{v}.png", "image/png") for v in VIEW_ORDER]
    if scores is not None:
        items.append(("per-label scores (CSV)", partial(lambda s: s.to_frame().to_csv(index=False), scores),
                      f"{stem}_scores.csv", "text/csv"))
    items.append(("result.json", partial(_result_json, expl, name), f"{stem}_result.json", "application/json"))
    cols = st.columns(4)
    for i, (label, data, file_name, mime) in enumerate(items):
        cols[i % 4].download_button(label, data=data, file_name=file_name, mime=mime, key=f"{key}_{i}",
                                    on_click="ignore", icon=":material/download:")
