"""The view in the URL, so that a link reproduces it: the sample photo, the method, its main options and the
labels (the page is the URL's path). Read once when a session starts, each value checked against its declared
option (a value that cannot be used is named on the page with what is used instead); written after every run."""
from __future__ import annotations

from typing import Any

import streamlit as st

from . import resources, services

_RESTORED = "_url_restored"
#: What the link asked for that could not be used, one line each (shown until the user dismisses them).
NOTES = "_url_notes"
#: URL parameter -> the widget key it sets.
PLAIN = {"image": "gallery_name", "method": "method", "labels": "labels_mode", "k": "labels_k"}
#: The ``image`` value written for an uploaded photo: a link cannot carry the photo itself.
UPLOADED = "upload"
LABELS_HELP = "top1, top2 .. top10, or class indices such as 281,285"


def _option_value(spec, text: str) -> tuple[Any, str | None]:
    """A URL value as its option's type, checked against the option's declaration; (value, None) or
    (None, why it was refused)."""
    from saliency_core import OptionError, coerce_option

    if spec.kind == "infiller":
        names = list(services.infiller_catalog())
        return (text, None) if text in names else (None, f"must be one of {', '.join(names)}")
    try:
        value = coerce_option(spec, text, "link")
    except OptionError as exc:
        return None, str(exc).split(": ", 2)[-1].replace(f"option '{spec.name}' ", "")
    if spec.kind == "float" and spec.log and spec.high is not None and spec.default:
        from .widgets import log_choices

        if value not in log_choices(spec):  # the slider offers a 1-2-5 grid: the nearest step is used
            grid = log_choices(spec)
            near = min(grid, key=lambda v: abs(v - value))
            return near, f"is not a step of the slider; using the nearest, {near:g}"
    return value, None


def _labels(text: str, n_classes: int) -> tuple[dict[str, Any], str | None]:
    """The label widgets' state for a link's ``labels`` value, or why it was refused."""
    if text == "top1":
        return {"labels_mode": "top-1"}, None
    if text.startswith("top") and text[3:].isdigit() and 2 <= int(text[3:]) <= 10:
        return {"labels_mode": "top-k", "labels_k": int(text[3:])}, None
    parts = text.split(",")
    if all(p.strip().isdigit() for p in parts) and 1 <= len(parts) <= 10:
        picked = list(dict.fromkeys(int(p) for p in parts))
        if all(0 <= i < n_classes for i in picked):
            return {"labels_mode": "pick classes", "labels_classes": picked}, None
        return {}, f"class indices go from 0 to {n_classes - 1}"
    return {}, f"must be {LABELS_HELP}"


def restore(catalog: dict[str, services.MethodEntry], n_classes: int = 1000) -> None:
    """Set the widgets from the URL the session was opened with (only once: later the widgets rule). A value
    that cannot be used is named in :data:`NOTES`, with what is used instead."""
    if st.session_state.get(_RESTORED):
        return
    st.session_state[_RESTORED] = True
    params = st.query_params
    notes: list[str] = []
    image = params.get("image")
    if image in services.GALLERY:
        st.session_state["image_source"] = "Sample photo"
        st.session_state["gallery_name"] = image
    elif image == UPLOADED:
        notes.append("This link was made with an uploaded photo, which a link cannot carry: upload it again "
                     "(the sample photo is shown until then).")
    elif image is not None:
        notes.append(f"image={image!r} is not a sample photo ({', '.join(services.GALLERY)}); showing the first.")
    method = params.get("method")
    if method is not None and method not in catalog:
        notes.append(f"method={method!r} is not available here; using the default method.")
    elif method is not None:
        st.session_state["method"] = method
        for spec in catalog[method].options:
            if spec.name not in params or spec.kind == "checkpoint":
                continue
            value, why = _option_value(spec, params[spec.name])
            if value is not None:
                st.session_state[f"opt:{method}:{spec.name}"] = value
            if why is not None:
                used = "" if value is not None else f"; using the default, {spec.default}"
                notes.append(f"{spec.name}={params[spec.name]!r} {why}{used}.")
    if "labels" in params:
        state, why = _labels(params["labels"], n_classes)
        st.session_state.update(state)
        if why is not None:
            notes.append(f"labels={params['labels']!r}: {why}; using the top-5.")
    st.session_state[NOTES] = notes


def show_notes() -> None:
    """The link's refused values, one warning line each, until the user dismisses them."""
    notes = st.session_state.get(NOTES) or []
    if not notes:
        return
    st.warning("**The link could not be followed in full.**\n\n" + "\n\n".join(f"- {n}" for n in notes),
               icon=":material/link_off:")
    if st.button("Dismiss", key="url_notes_ok"):
        st.session_state[NOTES] = []
        st.rerun()


def publish(image: services.ImageInput | None, method: str | None, options: dict[str, Any], labels: str | None,
            main: tuple[str, ...]) -> None:
    """Write the current view into the URL (main options that differ from the defaults only)."""
    params: dict[str, str] = {}
    if image is not None:  # an uploaded photo is named as such: a link cannot carry it (see restore)
        stem = image.name.rsplit(".", 1)[0]
        sample = stem in services.GALLERY and image.digest == resources.gallery_input(stem).digest
        params["image"] = stem if sample else UPLOADED
    if method:
        params["method"] = method
        params.update({k: str(v) for k, v in options.items() if k in main and isinstance(v, (int, float, str, bool))})
    if labels:
        params["labels"] = labels
    if dict(st.query_params) != params:
        st.query_params.from_dict(params)


def requested_page() -> str:
    """The page part of the URL the browser asked for ("" for the root)."""
    from urllib.parse import urlparse

    try:
        url = st.context.url or ""
    except Exception:  # noqa: BLE001 - outside a browser session (tests) there is no URL
        return ""
    return urlparse(url).path.strip("/").split("/")[-1] if url else ""
