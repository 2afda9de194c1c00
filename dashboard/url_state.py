"""The view in the URL, so that a link reproduces it: the sample photo, the method, its main options and the
labels (the page is the URL's path). Read once when a session starts, each value checked against its declared
option (a value that cannot be used is named on the page with what is used instead); written after every run."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import streamlit as st

from saliency_core import LabelSpecError, Option, parse_labels

from . import inputs, menus, resources, widgets

_RESTORED = "_url_restored"
#: What the link asked for that could not be used, one line each (shown until the user dismisses them).
NOTES = "_url_notes"
#: URL parameter -> the widget key it sets.
PLAIN = {"image": "gallery_name", "method": "method", "labels": "labels_mode", "k": "labels_k"}
#: The ``image`` value written for an uploaded photo: a link cannot carry the photo itself.
UPLOADED = "upload"
#: The Compare page's methods, one parameter each (``compare=grad-cam&compare=random``).
COMPARE = "compare"
LABELS_HELP = "top1, top2 .. top10, or class indices such as 281,285"


def _option_value(spec, text: str) -> tuple[Any, str | None]:
    """A URL value as its option's type, checked against the option's declaration; (value, None) or
    (None, why it was refused)."""
    from saliency_core import OptionError, coerce_option

    if spec.kind == "infiller":
        names = list(menus.infiller_catalog())
        return (text, None) if text in names else (None, f"must be one of {', '.join(names)}")
    try:
        value = coerce_option(spec, text, "link")
    except OptionError as exc:
        return None, str(exc).split(": ", 2)[-1].replace(f"option '{spec.name}' ", "")
    grid = widgets.slider_choices(spec)  # a log-scale weight's 1-2-5 grid or a fraction's steps of 1 %
    if grid is not None and value not in grid:  # the nearest step is used
        near = min(grid, key=lambda v: abs(v - value))
        return near, f"is not a step of the slider; using the nearest, {near:g}"
    return value, None


def _labels(text: str, n_classes: int) -> tuple[dict[str, Any], str | None]:
    """The label widgets' state for a link's ``labels`` value, or why it was refused."""
    try:
        spec = parse_labels(text)  # the core's one label parser; the widgets offer top-1 .. top-10, 10 classes
    except LabelSpecError:
        return {}, f"must be {LABELS_HELP}"
    if spec.top == 1:
        return {"labels_mode": "top-1"}, None
    if spec.top is not None and 2 <= spec.top <= 10:
        return {"labels_mode": "top-k", "labels_k": spec.top}, None
    if spec.ids and len(spec.ids) <= 10:
        if all(0 <= i < n_classes for i in spec.ids):
            return {"labels_mode": "pick classes", "labels_classes": list(spec.ids)}, None
        return {}, f"class indices go from 0 to {n_classes - 1}"
    return {}, f"must be {LABELS_HELP}"


@dataclass(frozen=True)
class Field:
    """One setting a link carries: its URL parameter, the widget key it sets and the ``Option`` declaring it (which
    checks a link's value and gives the default, left out of links). ``within``: the dict of options it sits in
    (``infiller_options`` for an infiller's own options), None for a top-level option."""

    param: str
    key: str
    spec: Option
    within: str | None = None


def infiller_fields(name: Any, param: str, key: str) -> list[Field]:
    """The options of the infiller ``name`` as fields ``<param>.<option>`` (e.g. ``view_infiller.sigma``)."""
    if not isinstance(name, str) or name not in menus.infiller_catalog():
        return []
    return [Field(f"{param}.{s.name}", f"{key}:{name}:{s.name}", s, "infiller_options")
            for s in menus.infiller_options(name)]


def method_fields(entry: menus.MethodEntry, values: dict[str, Any]) -> list[Field]:
    """A method's declared options (never a checkpoint: a link names no file on the server); an infiller option's
    own options follow the infiller in ``values`` (or its default)."""
    out = []
    for spec in entry.options:
        if spec.kind == "checkpoint":
            continue
        out.append(Field(spec.name, f"opt:{entry.name}:{spec.name}", spec))
        if spec.kind == "infiller":
            out += infiller_fields(values.get(spec.name, spec.default), spec.name,
                                   f"opt:{entry.name}:infiller_options")
    return out


def view_fields(values: dict[str, Any]) -> list[Field]:
    """The infilled view's infiller and its options."""
    spec = widgets.VIEW_INFILLER
    return [Field(spec.name, "infiller", spec),
            *infiller_fields(values.get(spec.name, spec.default), spec.name, "inf")]


def page_fields(values: dict[str, Any] | None = None) -> list[Field]:
    """The dashboard's own display, seed and curve settings (widget key = option name)."""
    return [Field(s.name, s.name, s) for s in widgets.page_options(resources.settings())]


def _restore_fields(fields: Callable[[dict[str, Any]], list[Field]], params, notes: list[str],
                    used: set[str]) -> None:
    """Set the widgets of ``fields`` from the link, each value checked against its declaration (two passes: an
    infiller's options depend on the infiller the link chose)."""
    values: dict[str, Any] = {}
    for _ in range(2):
        for field in fields(values):
            if field.param in used or field.param not in params:
                continue
            used.add(field.param)
            value, why = _option_value(field.spec, params[field.param])
            if value is not None:
                st.session_state[field.key] = value
                values[field.spec.name] = value
            if why is not None:
                fallback = "" if value is not None else f"; using the default, {field.spec.default}"
                notes.append(f"{field.param}={params[field.param]!r} {why}{fallback}.")


def _compare_choices(catalog: dict[str, menus.MethodEntry]) -> list[str]:
    checkpoints = menus.find_checkpoints(resources.settings().checkpoint_folders)
    return list(menus.comparison_choices(catalog, checkpoints)[0])


def restore(catalog: dict[str, menus.MethodEntry], n_classes: int = 1000) -> None:
    """Set the widgets from the URL the session was opened with (only once: later the widgets rule). A value
    that cannot be used is named in :data:`NOTES`, with what is used instead."""
    if st.session_state.get(_RESTORED):
        return
    st.session_state[_RESTORED] = True
    params = st.query_params
    notes: list[str] = []
    used = {"image", "method", "labels", COMPARE}
    image = params.get("image")
    if image in inputs.GALLERY:
        st.session_state["image_source"] = "Sample photo"
        st.session_state["gallery_name"] = image
    elif image == UPLOADED:
        notes.append("This link was made with an uploaded photo, which a link cannot carry: upload it again "
                     "(the sample photo is shown until then).")
    elif image is not None:
        notes.append(f"image={image!r} is not a sample photo ({', '.join(inputs.GALLERY)}); showing the first.")
    method = params.get("method")
    if method is not None and method not in catalog:
        notes.append(f"method={method!r} is not available here; using the default method.")
    elif method is not None:
        st.session_state["method"] = method
        _restore_fields(lambda values: method_fields(catalog[method], values), params, notes, used)
    _restore_fields(view_fields, params, notes, used)
    _restore_fields(page_fields, params, notes, used)
    if "labels" in params:
        state, why = _labels(params["labels"], n_classes)
        st.session_state.update(state)
        if why is not None:
            notes.append(f"labels={params['labels']!r}: {why}; using the top-5.")
    if COMPARE in params:
        offered = _compare_choices(catalog)
        asked = [v for v in params.get_all(COMPARE) if v]
        picked = [v for v in dict.fromkeys(asked) if v in offered]
        for bad in (v for v in asked if v not in offered):
            notes.append(f"{COMPARE}={bad!r} is not a method offered here ({', '.join(offered)}); left out"
                         + ("" if picked else ", and the default methods are compared") + ".")
        if picked:
            st.session_state["compare_methods"] = picked
    if method is None or method in catalog:  # a refused method's options are said with it
        for param in params:
            if param not in used:
                notes.append(f"{param}={params[param]!r} is not a setting of "
                             f"{'the method ' + method if method else 'this dashboard'}; ignored.")
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


def _text(value: Any) -> str:
    """A value as a link writes it (floats in their shortest exact form; flags as true/false)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


def _changed(fields: list[Field], values: dict[str, Any]) -> dict[str, str]:
    """The URL parameters of the fields whose value in ``values`` differs from the declared default."""
    out = {}
    for field in fields:
        where = values.get(field.within) or {} if field.within else values
        value = where.get(field.spec.name)
        if value is None or not isinstance(value, (int, float, str, bool)) or value == field.spec.default:
            continue
        out[field.param] = _text(value)
    return out


def publish(image: inputs.ImageInput | None, method: menus.MethodEntry | None = None,
            options: dict[str, Any] | None = None, labels: str | None = None,
            view: tuple[str, dict[str, Any]] | None = None, page: bool = False,
            compare: list[str] | None = None) -> None:
    """Write what the page shows into the URL, each setting from its declaration and only where it differs from
    the default: the photo, the method and its options (never a checkpoint), the labels, the view's infiller and
    its options (``view``), the display, seed and curve settings (``page``), the compared methods (``compare``)."""
    params: dict[str, Any] = {}
    if image is not None:  # an uploaded photo is named as such: a link cannot carry it (see restore)
        stem = image.name.rsplit(".", 1)[0]
        sample = stem in inputs.GALLERY and image.digest == resources.gallery_input(stem).digest
        params["image"] = stem if sample else UPLOADED
    if method is not None:
        params["method"] = method.name
        params.update(_changed(method_fields(method, options or {}), options or {}))
    if labels:
        params["labels"] = labels
    if view is not None:
        values = {widgets.VIEW_INFILLER.name: view[0], "infiller_options": view[1]}
        params.update(_changed(view_fields(values), values))
    if page:
        values = {f.key: st.session_state.get(f.key) for f in page_fields()}
        params.update(_changed(page_fields(), values))
    if compare is not None:
        params[COMPARE] = list(compare)
    if {k: st.query_params.get_all(k) for k in st.query_params} != \
            {k: v if isinstance(v, list) else [v] for k, v in params.items()}:
        st.query_params.from_dict(params)


def requested_page() -> str:
    """The page part of the URL the browser asked for ("" for the root)."""
    from urllib.parse import urlparse

    try:
        url = st.context.url or ""
    except Exception:  # noqa: BLE001 - outside a browser session (tests) there is no URL
        return ""
    return urlparse(url).path.strip("/").split("/")[-1] if url else ""
