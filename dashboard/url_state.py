"""The view in the URL, so that a link reproduces it: the sample photo, the method, its main options and the
labels (the page is the URL's path). Read once when a session starts; written after every run."""
from __future__ import annotations

from typing import Any

import streamlit as st

from . import services

_RESTORED = "_url_restored"
#: URL parameter -> the widget key it sets.
PLAIN = {"image": "gallery_name", "method": "method", "labels": "labels_mode", "k": "labels_k"}


def _typed(spec, text: str) -> Any:
    """A URL value as its option's type (a bad value is dropped: the widget keeps its default)."""
    try:
        if spec.kind == "bool":
            return text.lower() in ("1", "true", "yes")
        if spec.kind == "int" or (spec.kind == "choice" and all(isinstance(c, int) for c in spec.choices)):
            value: Any = int(text)
        elif spec.kind == "float":
            value = float(text)
        else:
            value = text
    except ValueError:
        return None
    if spec.kind in ("choice",) and value not in spec.choices:
        return None
    return value


def restore(catalog: dict[str, services.MethodEntry]) -> None:
    """Set the widgets from the URL the session was opened with (only once: later the widgets rule)."""
    if st.session_state.get(_RESTORED):
        return
    st.session_state[_RESTORED] = True
    params = st.query_params
    if params.get("image") in services.GALLERY:
        st.session_state["image_source"] = "Sample photo"
        st.session_state["gallery_name"] = params["image"]
    method = params.get("method")
    if method in catalog:
        st.session_state["method"] = method
        for spec in catalog[method].options:
            if spec.name in params and spec.kind != "checkpoint":
                value = _typed(spec, params[spec.name])
                if value is not None:
                    st.session_state[f"opt:{method}:{spec.name}"] = value
    labels = params.get("labels", "")
    if labels == "top1":
        st.session_state["labels_mode"] = "top-1"
    elif labels.startswith("top") and labels[3:].isdigit() and 2 <= int(labels[3:]) <= 10:
        st.session_state["labels_mode"] = "top-k"
        st.session_state["labels_k"] = int(labels[3:])


def publish(image: services.ImageInput | None, method: str | None, options: dict[str, Any], labels: str | None,
            main: tuple[str, ...]) -> None:
    """Write the current view into the URL (main options that differ from the defaults only)."""
    params: dict[str, str] = {}
    if image is not None and image.name.rsplit(".", 1)[0] in services.GALLERY:
        params["image"] = image.name.rsplit(".", 1)[0]
    if method:
        params["method"] = method
        params.update({k: str(v) for k, v in options.items() if k in main and isinstance(v, (int, float, str, bool))})
    if labels and "," not in labels:
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
