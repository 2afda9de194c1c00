"""What is running, shown while it runs: the status line at the top of the page, a progress bar, the mask as it
forms, and the worker thread that lets the page redraw them (and a click stop the work) during a long call.
"""
from __future__ import annotations

import html
import threading
import time
from typing import Any

import numpy as np
import streamlit as st
import torch

from saliency_core import mask_image

from . import services, state


class Cancelled(Exception):
    """The user cancelled a running computation."""




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
    views moves); ``top=False``: no status line at the top (a section with its own marker, see ``busy``);
    ``keep_marker=True``: the marker's last line stays when the work is done, for the caller to write its outcome over
    (an emptied marker would let what is under it move up and back down)."""

    def __init__(self, label: str, show_mask: bool = False, every_s: float = 0.25,
                 estimate_s: float | None = None, bar: bool = True, top: bool = True, marker: bool = False,
                 keep_marker: bool = False, marker_slot=None, clock=time.monotonic) -> None:
        self.bar = st.progress(0.0, text=label) if bar else None
        # a section's own small "busy" line, in its place (``marker_slot``: the caller's slot, whose last line it
        # replaces in place: a new slot would be empty, and what is under it move, until its first line is drawn)
        self.marker = marker_slot if marker_slot is not None else (st.empty() if marker else None)
        self.keep_marker = keep_marker
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

    def done(self, failed: bool = False) -> None:
        if self.marker is not None and (failed or not self.keep_marker):
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
        self.done(failed=exc[0] is not None)  # also on errors: no half-filled bar or busy line is left on the page


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
