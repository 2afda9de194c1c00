"""Heavy objects, loaded once per process with ``st.cache_resource`` and never mutated.

The classifier is frozen and in eval mode; methods keep their own caches (a masker method its
loaded checkpoint, Grad-CAM its private hooked copy of the network behind a lock), so sessions
share them safely. Explanations and scores live in one shared :class:`ResultCache`.
"""
from __future__ import annotations

import gc
import json
import logging
import threading
import time

import streamlit as st

from dashboard.settings import DashboardSettings
from saliency_core import Classifier, ExplainConfig, Method, load_classifier, mask_key_options

from . import inputs, menus, result_cache, uploads

_reaper_log = logging.getLogger("saliency")


def settings() -> DashboardSettings:
    """The dashboard's settings (from ``saliency dashboard`` via the environment); cheap to re-read."""
    return DashboardSettings.from_env()


@st.cache_resource(show_spinner="Loading the classifier (once per server)...")
def classifier(name: str, weights: str, device: str) -> Classifier:
    clf = load_classifier(name, weights or None, device=device)
    _heap["loaded"] = True
    return clf


_heap = {"loaded": False, "frozen": False}
_heap_lock = threading.Lock()


def freeze_heap() -> None:
    """Once per process, after a page has run with the classifier loaded: collect, then move every object alive
    (modules, the classifier, Streamlit, plotly) out of the cyclic garbage collector's full passes (``gc.freeze``).

    Without it a full pass walked that whole heap about once a toggle, inside the rerun: 0.34-0.47 s on this
    project's 2-core CPU (measured with a ``gc.callbacks`` timer in the dashboard server), most of a toggle's
    budget. Frozen objects are still freed when nothing refers to them; only cycles among them stay."""
    if _heap["frozen"] or not _heap["loaded"]:
        return
    with _heap_lock:
        if not _heap["frozen"]:
            gc.collect()
            gc.freeze()
            _heap["frozen"] = True


def current_classifier() -> Classifier:
    s = settings()
    return classifier(s.classifier, s.classifier_weights, s.device)


@st.cache_resource(show_spinner=False, max_entries=32)
def _method(name: str, options_json: str) -> Method:
    return menus.build_method(name, json.loads(options_json))


def method(config: ExplainConfig) -> Method:
    """A shared method object for an explanation's method and options, with its seed where the method declares
    one (building it is cheap; loading happens on first use)."""
    return _method(config.method, json.dumps(mask_key_options(config), sort_keys=True, default=str))


@st.cache_resource(show_spinner=False)
def _results(max_entries: int) -> result_cache.ResultCache:
    return result_cache.ResultCache(max_entries)


def results() -> result_cache.ResultCache:
    return _results(settings().cache_entries)


@st.cache_resource(show_spinner=False, max_entries=16)
def gallery_input(name: str) -> inputs.ImageInput:
    return inputs.gallery_input(name)


@st.cache_resource(show_spinner=False, max_entries=4)
def _catalog(names: tuple[tuple[str, bool], ...]) -> dict[str, menus.MethodEntry]:
    return menus.method_catalog()


def catalog() -> dict[str, menus.MethodEntry]:
    """The methods registered right now (re-read when the registry changes, or when a method's
    availability does, e.g. the per-label masker's checkpoint appears)."""
    from saliency_core import method_entries

    return _catalog(tuple((name, entry.available) for name, entry in method_entries().items()))


#: How often the upload reaper looks, and how long a closed session's uploads wait for a reconnect.
REAP_EVERY_S = 5.0
REAP_GRACE_S = 20.0


@st.cache_resource(show_spinner=False)
def upload_reaper() -> threading.Thread:
    """Once per process: a daemon thread that deletes the uploaded checkpoints of sessions that have ended
    (``uploads.reap_session_uploads``), within ``REAP_EVERY_S + REAP_GRACE_S`` of the browser closing."""
    from streamlit.runtime import Runtime

    def loop() -> None:
        gone: dict[str, float] = {}
        while True:
            time.sleep(REAP_EVERY_S)
            try:
                if not Runtime.exists():
                    continue
                runtime = Runtime.instance()
                for folder in uploads.reap_session_uploads(uploads.UPLOAD_ROOT, runtime.is_active_session, gone,
                                                            time.monotonic(), REAP_GRACE_S):
                    _reaper_log.info("removed the uploads of an ended session (%s)", folder.name)
            except Exception:  # noqa: BLE001 - the reaper must outlive any one failure; it logs it
                _reaper_log.exception("upload reaper")

    thread = threading.Thread(target=loop, name="upload-reaper", daemon=True)
    thread.start()
    return thread
