"""Page blocks shared by the pages: error guard, image, predictions, views, curves, downloads (the status line and
progress are in ``progress``, A/B in ``ab``).

Each block draws widgets and calls :mod:`dashboard.services`; an error inside a block becomes one
``st.error`` line (never a traceback) and the rest of the page keeps working.
"""
from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from functools import partial
from typing import Any, Iterator

import numpy as np
import streamlit as st
import torch

from saliency_core import VIEWS, Explanation, LoadedImage, classify_views

from . import curve_scores, export, inputs, plots, resources, result_cache, uploads
from .progress import LiveProgress
from .help_text import VIEW_HELP, VIEW_TITLES, tooltip

log = logging.getLogger("saliency.dashboard")

#: The four views, in the core's order and by the core's names (each name keys the picture and its predictions).
VIEW_ORDER = VIEWS


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


def one_line(exc: BaseException, what: str) -> str:
    """A user-facing one-line message: the core's own message for its errors, a short summary otherwise."""
    text = uploads.shown_path(str(exc).strip())
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


# --------------------------------------------------------------------------- image


def load_current_image(image: inputs.ImageInput | None) -> LoadedImage | None:
    """Decode the chosen image with the dashboard's limits; errors are shown, None returned."""
    if image is None:
        st.info("Upload an image in the sidebar, or pick a sample photo.", icon=":material/image:")
        return None
    s = resources.settings()
    cache = resources.results()
    key = result_cache.cache_key("image", image.digest, s.max_upload_mb, s.max_pixels, s.max_side)
    loaded = cache.get(key)
    if loaded is None:
        with guard("Reading the image"):
            loaded = inputs.load_input(image, s.max_upload_mb, s.max_pixels, s.max_side)
            cache.put(key, inputs.anonymous(loaded))  # shared by content: no session's file name in it
    return None if loaded is None else inputs.for_session(loaded, image)  # None: the error is on the page


#: What a view's predictions read while the view is being classified (one line per prediction to come).
PENDING = "…"


def pending_md(k: int) -> str:
    """A numbered list of ``k`` placeholder lines: the height of ``k`` predictions, held while they are computed."""
    return "\n".join(f"{rank}. {PENDING}" for rank in range(1, k + 1))


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
        st.image(inputs.display_copy(loaded.image, width), caption=f"{loaded.name} "
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
                    st.image(inputs.display_copy(expl.views[view], 900), width="stretch")
                    st.markdown(captions[view] if captions and view in captions else
                                predictions_md(expl.predictions[view], {shown}))
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
                picture = inputs.display_copy(expl.views[view], side)
                st.plotly_chart(plots.views_figure([picture], mask if view == "overlay" else None, per_row=1,
                                                   width=width // per_row),
                                key=f"{key}_{view}", config=plots.VIEWS_CONFIG)
                words = captions.get(view) if captions else None
                if words is None and view in expl.predictions:
                    words = predictions_md(expl.predictions[view], {shown})
                if words is not None:
                    st.markdown(words)
                else:  # as tall as the predictions to come (an empty slot would take the last run's predictions
                    # away, and everything under the views would move up and back down on each toggle)
                    slots[view] = st.empty()
                    slots[view].markdown(pending_md(expl.config.top_k_predictions))
    # the pictures are on their way to the browser: the masked views are classified while it draws them
    classify_views(expl, resources.current_classifier())
    for view, slot in slots.items():
        slot.markdown(predictions_md(expl.predictions[view], {shown}))
    st.caption("Drag over a picture to zoom in; double-click to zoom out. The colours cover the photo in proportion "
               "to the mask: where the mask is 0 the photo is left as it is.")
    note = mask_extent_note(mask)
    if note:
        st.caption(note)



def per_label_masks_block(expl: Explanation, side: int = 320) -> None:
    """The overlay of every label's own mask (per-label methods), five to a row."""
    from saliency_core import overlay, resize_mask

    small = inputs.display_copy(expl.image, side)
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


def curves_block(expl: Explanation, labels: list[int], request: curve_scores.CurveRequest, expl_key: str,
                 key: str = "curves"):
    """Per-label insertion curves with f(x, a), completeness, soundness and the worst case."""
    classifier = resources.current_classifier()
    cache = resources.results()
    busy = st.empty()  # the section's own line: "busy" while computing, then where the curves came from (one line
    # in every run, so the chart below keeps its place)
    what = curves_label(request.steps, len(labels))
    scores = curve_scores.cached_label_scores(labels, request, cache, expl_key)  # a seen setting: at once
    if scores is None:  # computed after the views, in one batched pass, with a ticking line of its own (not the
        t0 = time.monotonic()  # page's top status line)
        with LiveProgress(what, bar=False, top=False, keep_marker=True, marker_slot=busy) as progress:
            scores = progress.run(curve_scores.run_label_scores, expl, labels, request, classifier, cache, expl_key)
        busy.caption(f":material/check: {what}: computed in {time.monotonic() - t0:.1f} s")
    else:
        busy.caption(f":material/check: {what}: kept from an earlier run with this mask")
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
    return export.result_json({**expl.summary(), "image": name})  # a checkpoint by name and hash, no path


def downloads_block(expl: Explanation, name: str, scores=None, key: str = "dl") -> None:
    """Mask (PNG, NPY), the four views (PNG), per-label scores (CSV) and result.json; the files are
    made only when a button is clicked. ``name``: the image's name in this session (a cached explanation
    carries none, see ``inputs.CACHED_NAME``)."""
    stem = name.rsplit(".", 1)[0] or "image"
    shown = expl.mask_for(expl.shown if expl.shown is not None else expl.labels[0])
    items = [
        ("mask (PNG)", partial(export.mask_png, shown), f"{stem}_mask.png", "image/png"),
        ("mask (NPY)", partial(export.mask_npy, shown), f"{stem}_mask.npy", "application/octet-stream"),
    ]
    if expl.per_label and len(expl.labels) > 1:
        items.append(("all masks (NPY)", partial(export.mask_npy, expl.masks), f"{stem}_masks.npy",
                      "application/octet-stream"))
    items += [(f"{VIEW_TITLES[v].split(' (')[0].lower()} (PNG)", partial(export.image_png, expl.views[v]),
               f"{stem}_{v}.png", "image/png") for v in VIEW_ORDER]
    if scores is not None:
        items.append(("per-label scores (CSV)", partial(lambda s: s.to_frame().to_csv(index=False), scores),
                      f"{stem}_scores.csv", "text/csv"))
    items.append(("result.json", partial(_result_json, expl, name), f"{stem}_result.json", "application/json"))
    cols = st.columns(4)
    for i, (label, data, file_name, mime) in enumerate(items):
        cols[i % 4].download_button(label, data=data, file_name=file_name, mime=mime, key=f"{key}_{i}",
                                    on_click="ignore", icon=":material/download:")
