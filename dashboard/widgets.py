"""Widget groups: each ``*_ui()`` draws a few widgets and returns plain values or core configs.

Every toggle is keyed by the core option it sets (``opt:<method>:<option>``,
``inf:<infiller>:<option>``), carries that option's help text and keeps its value for the whole
session (``persist_state="session"``), also across page switches.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import streamlit as st

from dashboard.settings import DashboardSettings
from saliency_core import COLORMAPS, CheckpointInfo, Option

from . import curve_scores, inputs, menus, resources, state, uploads
from .help_text import plain_choice, tooltip

PERSIST = "session"
UPLOAD_CHECKPOINT = "__upload__"
LABEL_MODES = ("top-1", "top-k", "pick classes")


# --------------------------------------------------------------------------- image


def image_source_ui(settings: DashboardSettings) -> inputs.ImageInput | None:
    """Sample photo or upload; returns the chosen image's bytes (None while nothing is uploaded)."""
    source = st.radio("Image", ("Sample photo", "Upload"), key="image_source", horizontal=True,
                      persist_state=PERSIST)
    if source == "Sample photo":
        name = st.selectbox("Sample photo", tuple(inputs.GALLERY), key="gallery_name", persist_state=PERSIST,
                            format_func=lambda n: f"{n}: {inputs.GALLERY[n][0]}",
                            help="Photos bundled with scikit-image (nothing is downloaded).")
        return resources.gallery_input(name)
    upload = st.file_uploader(
        "Upload an image", type=list(inputs.IMAGE_TYPES), key="upload", max_upload_size=settings.max_upload_mb,
        help=f"jpg, png, webp, bmp, tiff or gif, up to {settings.max_upload_mb} MB and "
             f"{settings.max_pixels / 1e6:.0f} megapixels.")
    if upload is None:
        return None
    return inputs.ImageInput.from_bytes(upload.getvalue(), upload.name)


# --------------------------------------------------------------------------- generic options


def _float_step(default: float | None) -> float:
    if not default:
        return 0.01
    return 10.0 ** math.floor(math.log10(abs(default))) / 10.0


def unless_set(key: str, **default: Any) -> dict[str, Any]:
    """A widget's default argument, left out when its key already has a value (a link set it): Streamlit warns,
    with a stack in the server log, about a widget given both a default and a value set through session state."""
    return {} if key in st.session_state else default


def option_widget(spec: Option, key: str, title: str | None = None) -> Any:
    """One widget for one declared core option; its value is what the core receives under ``spec.name``."""
    help_ = spec.help
    spec = dataclasses.replace(spec, label=title) if title else spec
    if spec.kind == "bool":
        return st.checkbox(spec.title, **unless_set(key, value=bool(spec.default)), key=key, help=help_,
                           persist_state=PERSIST)
    if spec.kind in ("choice", "infiller"):
        choices = list(spec.choices) if spec.kind == "choice" else infiller_names()
        index = choices.index(spec.default) if spec.default in choices else 0
        return st.selectbox(spec.title, choices, **unless_set(key, index=index), key=key, help=help_,
                            format_func=plain_choice, persist_state=PERSIST)  # the value stays the code's
    if spec.kind == "int":
        lo = None if spec.low is None else int(spec.low) + (1 if spec.low_open else 0)
        hi = None if spec.high is None else int(spec.high)
        value = spec.default if spec.default is None else int(spec.default)
        return st.number_input(spec.title, min_value=lo, max_value=hi, **unless_set(key, value=value),
                               step=int(spec.step or 1), key=key, help=help_, persist_state=PERSIST,
                               placeholder="default" if spec.optional else None)
    grid = slider_choices(spec)  # a weight spanning decades (1-2-5 grid) or a fraction (steps of 1 %)
    if grid is not None:
        return st.select_slider(spec.title, options=grid, **unless_set(key, value=float(spec.default)), key=key,
                                help=help_, format_func=(lambda v: f"{v:g}") if spec.log else (lambda v: f"{v:.0%}"),
                                persist_state=PERSIST)
    if spec.kind == "float":
        value = None if spec.default is None else float(spec.default)
        lo = None if spec.low is None or spec.low_open else float(spec.low)
        return st.number_input(spec.title, min_value=lo, max_value=None if spec.high is None else float(spec.high),
                               **unless_set(key, value=value), step=spec.step or _float_step(value), format="%g",
                               key=key, help=help_, persist_state=PERSIST,
                               placeholder="default" if spec.optional else None)
    return st.text_input(spec.title, **unless_set(key, value=spec.default or ""), key=key, help=help_,
                         persist_state=PERSIST, placeholder="default" if spec.optional else None)


def is_fraction(spec: Option) -> bool:
    """A main float option bounded within [0, 1] on a linear scale (a region's area, say): drawn as a slider."""
    return (spec.kind == "float" and spec.main and not spec.log and spec.low is not None and spec.high is not None
            and spec.low >= 0 and spec.high <= 1 and spec.default is not None)


def fraction_choices(spec: Option) -> list[float]:
    """The values a fraction's slider offers: steps of ``spec.step`` (1 %) from its lower bound (one step above an
    open bound) to its upper bound, with its default among them."""
    step = float(spec.step or 0.01)
    low = float(spec.low) + (step if spec.low_open else 0.0)
    count = int(math.floor((float(spec.high) - low) / step + 1e-9))
    values = {round(low + i * step, 6) for i in range(count + 1)} | {float(spec.default)}
    return sorted(v for v in values if (v > spec.low if spec.low_open else v >= spec.low) and v <= spec.high)


def slider_choices(spec: Option) -> list[float] | None:
    """The values of the option's slider, or None when it is not drawn as one: a log-scale weight with an upper bound
    (:func:`log_choices`) or a fraction (:func:`fraction_choices`)."""
    if spec.kind == "float" and spec.log and spec.high is not None and spec.default:
        return log_choices(spec)
    if is_fraction(spec):
        return fraction_choices(spec)
    return None


def log_choices(spec: Option) -> list[float]:
    """The values a log-scale weight's slider offers: 0 (when allowed), then 1-2-5 steps from a tenth of its
    default (or its lower bound, when above 0) up to its upper bound, with the default and both bounds always
    among them."""
    high = float(spec.high)
    start = float(spec.default) / 10
    values = {float(spec.default), high}
    if spec.low is not None and spec.low <= 0 and not spec.low_open:
        values.add(0.0)
    if spec.low is not None and spec.low > 0:
        start = max(start, float(spec.low))
        if not spec.low_open:
            values.add(float(spec.low))
    decade = 10.0 ** math.floor(math.log10(start))
    while decade <= high:
        for m in (1, 2, 5):
            v = float(f"{m * decade:.6g}")
            if start * (1 - 1e-9) <= v <= high * (1 + 1e-9) and not (spec.low_open and v <= spec.low):
                values.add(v)
        decade *= 10
    return sorted(values)


def clean_options(specs: tuple[Option, ...], values: dict[str, Any]) -> dict[str, Any]:
    """Options to pass to the core: unset optional values are left out (the core default applies)."""
    names = {s.name for s in specs}
    return {k: v for k, v in values.items() if k in names and v is not None and v != ""}


# --------------------------------------------------------------------------- method


def default_method(catalog: dict[str, menus.MethodEntry], checkpoints: list[CheckpointInfo]) -> str:
    """The first method in the core's order that runs at once and has what it needs (a checkpoint, if it
    reads one): the shipped masker when there is one, else the first quick baseline."""
    for name, entry in catalog.items():
        if entry.on_request:
            continue
        if entry.takes_checkpoint and not menus.checkpoints_for(entry, checkpoints, catalog):
            continue
        return name
    return next(iter(catalog))


def checkpoint_ui(checkpoints: list[CheckpointInfo], settings: DashboardSettings,
                  key: str = "checkpoint", help_: str | None = None) -> str | None:
    """A checkpoint from the folders the operator named at start (and the shipped ones), or an uploaded file;
    returns the file to load (None: none given). Visitors cannot name a path on the server."""
    by_path = {str(c.path): c for c in checkpoints}
    choices = [*by_path, UPLOAD_CHECKPOINT]
    choice = st.selectbox("Masker checkpoint", choices, key=key, help=help_, persist_state=PERSIST,
                          format_func=lambda c: by_path[c].label if c in by_path else "upload a checkpoint...")
    if choice in by_path:
        if by_path[choice].description:
            st.caption(by_path[choice].description)
        return choice
    upload = st.file_uploader("Checkpoint (.safetensors)", type=["safetensors"], key=f"{key}_upload",
                              max_upload_size=settings.max_upload_mb)
    if upload is None:
        return None
    return str(uploads.store_uploaded_checkpoint(upload.getvalue(), upload.name, settings.max_upload_mb,
                                                  state.upload_folder()))


def fit_to_space(spec: Option, space: dict[str, Option]) -> Option:
    """The option as the method's ``option_space`` gives it for what is loaded (its range, choices and default; not
    shown when what is loaded takes one value only), keeping where the declaration puts it (main or not) and its help
    and label when the space gives none."""
    fitted = space.get(spec.name)
    if fitted is None:
        return spec
    return dataclasses.replace(fitted, main=spec.main, shown=spec.shown and fitted.shown,
                               help=fitted.help or spec.help, label=fitted.label or spec.label)


def _drop_unfit(spec: Option, key: str) -> str | None:
    """Forget a widget's value the option no longer allows (another checkpoint's range or choices), so the widget
    starts at the option's default; returns the line that says so, or None."""
    from saliency_core import OptionError, coerce_option

    if key not in st.session_state:
        return None
    value = st.session_state[key]
    try:
        ok = value is None or coerce_option(spec, value, "dashboard") is not None
    except (OptionError, ValueError, TypeError):
        ok = False
    grid = slider_choices(spec)
    ok = ok and (grid is None or value in grid) and (spec.kind != "choice" or not spec.choices or value in spec.choices)
    if ok:
        return None
    del st.session_state[key]
    return f"{spec.title} {plain_choice(value)} is not offered by this checkpoint ({spec.describe()}); using " \
           f"{plain_choice(spec.default)}."


def _method_option(spec: Option, entry: menus.MethodEntry, checkpoints: list[CheckpointInfo],
                   settings: DashboardSettings, values: dict[str, Any], fixed: dict[str, Any],
                   space: dict[str, Option]) -> None:
    """Draw one option into ``values``; a checkpoint also fills ``fixed`` with the options it was trained at one
    value only (declared before them, so they are not drawn) and ``space`` with the ranges it was trained over
    (the method's ``option_space``), which the widgets after it are drawn with."""
    if spec.kind == "checkpoint":  # only the checkpoints this method can read, in its own widget
        values[spec.name] = checkpoint_ui(checkpoints, settings, key=f"checkpoint_{entry.name}", help_=spec.help)
        fixed.update(menus.fixed_options(values[spec.name]))
        if values[spec.name] is not None:
            space.update(menus.option_space(entry, {spec.name: values[spec.name]}))
        return
    if spec.name in fixed:  # the checkpoint was trained at this one value: nothing to choose
        values[spec.name] = fixed[spec.name]
        return
    spec = fit_to_space(spec, space)
    if not spec.shown:  # what is loaded takes one value only (or not this option): the method uses its own
        return
    key = f"opt:{entry.name}:{spec.name}"
    note = _drop_unfit(spec, key) if spec.name in space else None
    values[spec.name] = option_widget(spec, key=key)
    if note:
        st.caption(note)
    if spec.kind == "infiller":
        values["infiller_options"] = infiller_options_ui(values[spec.name], key=f"opt:{entry.name}:infiller_options",
                                                         context="while optimising")


def method_ui(catalog: dict[str, menus.MethodEntry], checkpoints: list[CheckpointInfo],
              settings: DashboardSettings) -> tuple[menus.MethodEntry, dict[str, Any], bool]:
    """Method choice and its declared options; returns (entry, options, ready). Only options changed from
    the method's defaults are returned; ``ready`` is False while a required checkpoint is missing."""
    names = list(catalog)
    default = default_method(catalog, checkpoints)
    name = st.selectbox("Method", names, **unless_set("method", index=names.index(default)), key="method",
                        help=tooltip("method"),
                        format_func=lambda n: catalog[n].title, persist_state=PERSIST)
    entry = catalog[name]
    masks = "One mask per label." if entry.per_label else "One mask for every label."
    st.caption(f"{entry.summary.rstrip('.')}. {masks}")
    own = menus.checkpoints_for(entry, checkpoints, catalog)
    values: dict[str, Any] = {}
    fixed: dict[str, Any] = {}
    # the ranges of what is loaded (``option_space``): from the checkpoint once it is chosen, else at once
    space: dict[str, Option] = {} if entry.takes_checkpoint else menus.option_space(entry, {})
    many = len(entry.options) > 6
    for spec in entry.options:
        if spec.main or not many:
            _method_option(spec, entry, own, settings, values, fixed, space)
    if many:
        with st.expander("More options"):
            for spec in entry.options:
                if not spec.main:
                    _method_option(spec, entry, own, settings, values, fixed, space)
    ready = all(values.get(s.name) is not None for s in entry.options if s.kind == "checkpoint")
    # an option at its default is left out (the method applies it), except one the loaded checkpoint gives a range
    # of its own (``option_space``): passed as the widget shows it
    defaults = {s.name: s.default for s in entry.options}
    options = {k: v for k, v in clean_options(entry.options, values).items() if k in space or v != defaults[k]}
    if values.get("infiller_options"):
        options["infiller_options"] = values["infiller_options"]
    return entry, options, ready


# --------------------------------------------------------------------------- labels, infiller


def labels_ui(class_names: tuple[str, ...]) -> str:
    """``ExplainConfig.labels``: top1, topK or explicit class indices picked by searching their names.

    The default is the top-5, so the per-label curves cover five labels for every method (a
    per-label method makes one mask per label, in one batched run)."""
    mode = st.radio("Target label", LABEL_MODES, **unless_set("labels_mode", index=LABEL_MODES.index("top-k")),
                    key="labels_mode",
                    horizontal=True, help=tooltip("labels"), persist_state=PERSIST)
    if mode == "top-1":
        return "top1"
    if mode == "top-k":
        k = st.slider("k (labels)", 2, min(10, len(class_names)),
                      **unless_set("labels_k", value=min(5, len(class_names))), key="labels_k",
                      persist_state=PERSIST)
        return f"top{k}"
    picked = st.multiselect("Classes (type to search)", list(range(len(class_names))), key="labels_classes",
                            format_func=lambda i: f"{class_names[i]} ({i})", max_selections=10,
                            persist_state=PERSIST)
    if not picked:
        st.caption("Pick at least one class; the top-1 label is used until then.")
        return "top1"
    return ",".join(str(int(i)) for i in picked)


def infiller_names() -> list[str]:
    """Registered infillers, each once (``none`` is another name of ``gray``)."""
    return list(menus.infiller_catalog())


def infiller_options_ui(name: str, key: str, context: str = "of the infilled view") -> dict[str, Any]:
    """The chosen infiller's declared options (e.g. blur ``sigma``), as ``infiller_options``; each widget says
    which infiller it belongs to (a method's own infiller and the view's can both be on screen)."""
    specs = menus.infiller_options(name)
    values = {s.name: option_widget(s, key=f"{key}:{name}:{s.name}", title=f"{name} {s.title} ({context})")
              for s in specs}
    if menus.uses_reference_pool(name):
        st.caption("Removed pixels are filled from other photos (scikit-image samples, not this one).")
    return clean_options(specs, values)


#: The dashboard's own settings that change what is shown, declared like the core's options (``Option``): each
#: widget is drawn from its declaration (key = the option's name, or ``infiller`` for the view's infiller), and
#: ``url_state`` writes and reads links from the same declarations (``page_options``), never from a list of widgets.
VIEW_INFILLER = Option("view_infiller", "infiller", "blur", tooltip("infiller") or "The infilled view's fill.",
                       label="Infiller of the infilled view")
DISPLAY_OPTIONS = (
    Option("overlay_opacity", "float", 0.7, "How much of the photo the colour covers where the mask is 1 (0: the "
           "photo alone).", label="overlay opacity", low=0.0, high=1.0, step=0.05),
    Option("colormap", "choice", COLORMAPS[0], "Perceptually uniform maps (equal steps look equal), or gray.",
           label="colour map", choices=tuple(COLORMAPS)),
)
SEED_OPTION = Option("seed", "int", 0, tooltip("seed") or "The random seed.", low=0, step=1)
CURVE_OPTIONS = (
    Option("curve_steps", "int", 16, tooltip("curve_steps") or "Points of each curve.", label="curve steps",
           low=2, high=256, step=1),
    Option("eps1", "float", 0.01, tooltip("eps1") or "eps1", label="eps1", low=0.0, high=1.0, step=0.001),
    Option("eps2", "float", 0.001, tooltip("eps2") or "eps2", label="eps2", low=0.0, high=1.0, step=0.0001),
    Option("restrict_to", "bool", False, tooltip("restrict_to") or "Softmax over the curve labels only.",
           label="softmax over the curve labels only"),
)

COMPARE_TOP1 = Option("compare_top1", "bool", False, "Each method's completeness and soundness on the top label "
                      "alone (with its own mask), next to the worst case over the five labels.",
                      label="Scores of the top-1 label")


def page_options(settings: DashboardSettings) -> tuple[Option, ...]:
    """The dashboard's own display, seed, curve and Compare settings, with this server's defaults (curve steps)."""
    curves = tuple(dataclasses.replace(o, default=settings.curve_steps) if o.name == "curve_steps" else o
                   for o in CURVE_OPTIONS)
    return DISPLAY_OPTIONS + (SEED_OPTION,) + curves + (COMPARE_TOP1,)


def infiller_ui() -> tuple[str, dict[str, Any]]:
    """``ExplainConfig.infiller`` and ``infiller_options`` (the infilled view's fill)."""
    name = option_widget(VIEW_INFILLER, key="infiller")
    options = infiller_options_ui(name, key="inf")
    if menus.uses_reference_pool(name):
        options["pool"] = inputs.GALLERY_POOL
    return name, options


def display_ui() -> tuple[float, str]:
    """How the overlay is drawn: the colour's opacity where the mask is 1, and the colour map."""
    spec, cmap_spec = DISPLAY_OPTIONS
    opacity = st.slider(spec.title, float(spec.low), float(spec.high), **unless_set(spec.name, value=spec.default),
                        step=spec.step, key=spec.name, persist_state=PERSIST, help=spec.help)
    cmap = option_widget(cmap_spec, key=cmap_spec.name)
    return float(opacity), str(cmap)


def seed_ui() -> int:
    return int(option_widget(SEED_OPTION, key=SEED_OPTION.name))


# --------------------------------------------------------------------------- curves


def curves_ui(settings: DashboardSettings) -> curve_scores.CurveRequest:
    """The named options of ``label_scores`` (steps, eps1, eps2, restrict_to); the labels are the explained ones."""
    specs = [o for o in page_options(settings) if o.name in {c.name for c in CURVE_OPTIONS}]
    values = {}
    for col, spec in zip(st.columns(3), specs[:3]):
        with col:
            values[spec.name] = option_widget(spec, key=spec.name)
    values[specs[3].name] = option_widget(specs[3], key=specs[3].name)
    return curve_scores.CurveRequest(steps=int(values["curve_steps"]), eps1=float(values["eps1"]),
                                 eps2=float(values["eps2"]), restrict=bool(values["restrict_to"]))


def show_label_ui(labels: list[int], names: list[str]) -> int:
    """Which label's mask the overlay and the four views show (a per-label method has one mask per label)."""
    return st.selectbox("Show the mask of", labels, key="show_label", format_func=lambda v: names[labels.index(v)],
                        help="The method made one mask per label; the overlay and the views show this one.")
