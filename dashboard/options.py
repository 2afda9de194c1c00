"""The options a method or infiller takes, read from its factory's signature at run time.

A toggle is shown only for an option the core function really accepts (never a dead control), and
it carries the option's own name, so every toggle maps to one named core option. Ranges and choices
come from the option's annotation (``Literal[...]`` gives a choice list) and its default, refined by
a few known names (``steps``, ``tv_weight``, ...). Options that a widget cannot express (tensors,
callables, tuples) are not shown and keep the core's default.
"""
from __future__ import annotations

import inspect
import types
import typing
from dataclasses import dataclass
from typing import Any, Callable

#: Widget kinds: int, float, bool, choice, text, infiller (a registry name), checkpoint (a file).
KINDS = ("int", "float", "bool", "choice", "text", "infiller", "checkpoint")

#: What is known about some option names: kind, range and step (used when the signature agrees).
KNOWN: dict[str, dict[str, Any]] = {
    "checkpoint": {"kind": "checkpoint"},
    "infiller": {"kind": "infiller"},
    "steps": {"kind": "int", "minimum": 1, "maximum": 5000},
    "iterations": {"kind": "int", "minimum": 1, "maximum": 5000},
    "samples": {"kind": "int", "minimum": 1, "maximum": 20000},
    "n_masks": {"kind": "int", "minimum": 1, "maximum": 20000},
    "num_masks": {"kind": "int", "minimum": 1, "maximum": 20000},
    "n_steps": {"kind": "int", "minimum": 1, "maximum": 1000},
    "batch_size": {"kind": "int", "minimum": 1, "maximum": 1024},
    "upsample": {"kind": "int", "minimum": 1, "maximum": 64},
    "window": {"kind": "int", "minimum": 1, "maximum": 101, "step": 2},
    "tv_weight": {"kind": "float", "minimum": 0.0},
    "l1_weight": {"kind": "float", "minimum": 0.0},
    "area_weight": {"kind": "float", "minimum": 0.0},
    "lr": {"kind": "float", "minimum": 0.0},
    "learning_rate": {"kind": "float", "minimum": 0.0},
    "sigma": {"kind": "float", "minimum": 0.01},
    "std": {"kind": "float", "minimum": 0.0},
    "temperature": {"kind": "float", "minimum": 0.001},
    "tau": {"kind": "float", "minimum": 0.001},
    "p": {"kind": "float", "minimum": 0.0, "maximum": 1.0},
    "seed": {"kind": "int", "minimum": 0},
}

#: Choices of string options whose annotation does not list them (the default is always added).
KNOWN_CHOICES: dict[str, tuple[str, ...]] = {
    "objective": ("masked-in", "masked-out", "both"),
}

#: Options not shown: filled by the core or the dashboard itself (a pool of other images, a folder on
#: the server), or only about speed and previews (they do not change the result).
NOT_SHOWN = {"pool", "reference_dir", "max_batch", "preview_every", "show_progress", "should_stop"}

#: Options shown first; a method with many options shows the rest under "More options".
MAIN_OPTIONS = ("checkpoint", "objective", "infiller", "steps", "tv_weight", "l1_weight", "upsample", "layer",
                "num_masks", "sigma")

#: Widget labels that say more than the option's name.
LABELS = {"infiller": "infiller (while optimising)", "tv_weight": "TV weight", "l1_weight": "L1 weight",
          "upsample": "upsampling factor", "lr": "learning rate"}


@dataclass(frozen=True)
class OptionSpec:
    """One toggle: the core option's name, widget kind, default and limits."""

    name: str
    kind: str
    default: Any
    choices: tuple[Any, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    optional: bool = False  # None is allowed: an empty widget means "the core's default"

    @property
    def label(self) -> str:
        return LABELS.get(self.name, self.name.replace("_", " "))

    @property
    def main(self) -> bool:
        return self.name in MAIN_OPTIONS


def _target(factory: Callable) -> Callable:
    return factory.__init__ if inspect.isclass(factory) else factory


def _hints(factory: Callable) -> dict[str, Any]:
    try:
        return typing.get_type_hints(_target(factory), include_extras=False)
    except Exception:  # noqa: BLE001 - unresolvable annotations just mean no hints
        return {}


def _unwrap_optional(hint: Any) -> tuple[Any, bool]:
    args = typing.get_args(hint)
    if args and type(None) in args and typing.get_origin(hint) in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else hint), True
    return hint, False


def _spec_for(name: str, default: Any, hint: Any, choices: tuple | None = None) -> OptionSpec | None:
    hint, optional = _unwrap_optional(hint)
    optional = optional or default is None
    known = KNOWN.get(name, {})
    if choices:
        choices = tuple(choices)
        if default is not None and default not in choices:
            choices = (default, *choices)
        return OptionSpec(name, "choice", default if default is not None else choices[0], choices)
    if typing.get_origin(hint) is typing.Literal:
        choices = tuple(typing.get_args(hint))
        if default is not None and default not in choices:
            choices = (default, *choices)
        return OptionSpec(name, "choice", default if default is not None else choices[0], choices)
    if known.get("kind") in ("checkpoint", "infiller"):
        return OptionSpec(name, known["kind"], default, optional=optional)
    if isinstance(default, bool) or hint is bool:
        return OptionSpec(name, "bool", bool(default))
    base = hint if isinstance(hint, type) else type(default) if default is not None else None
    if base is int or (default is None and known.get("kind") == "int"):
        return OptionSpec(name, "int", default, minimum=known.get("minimum"), maximum=known.get("maximum"),
                          step=known.get("step", 1), optional=optional)
    if base is float or (default is None and known.get("kind") == "float"):
        return OptionSpec(name, "float", None if default is None else float(default), minimum=known.get("minimum"),
                          maximum=known.get("maximum"), step=known.get("step"), optional=optional)
    if base is str:
        if name in KNOWN_CHOICES:
            choices = KNOWN_CHOICES[name]
            if default is not None and default not in choices:
                choices = (default, *choices)
            return OptionSpec(name, "choice", default if default is not None else choices[0], choices)
        return OptionSpec(name, "text", default or "", optional=optional)
    return None  # tensors, callables, tuples...: not a widget


def options_of(factory: Callable, skip: set[str] | frozenset[str] = frozenset()) -> tuple[OptionSpec, ...]:
    """The keyword options of a registry factory that the dashboard can show as widgets."""
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):
        return ()
    hints = _hints(factory)
    specs = []
    for p in sig.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.name in ("self", "progress") or p.name in skip:
            continue
        if p.name in NOT_SHOWN:
            continue
        default = None if p.default is inspect.Parameter.empty else p.default
        spec = _spec_for(p.name, default, hints.get(p.name, p.annotation if p.annotation is not p.empty else None))
        if spec is not None:
            specs.append(spec)
    return tuple(specs)


def accepts(factory: Callable, name: str) -> bool:
    """Whether ``factory`` takes a keyword option called ``name``."""
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind == p.VAR_KEYWORD for p in params.values())


def clean_options(specs: tuple[OptionSpec, ...], values: dict[str, Any]) -> dict[str, Any]:
    """Options to pass to the core: unset optional values are left out (the core default applies)."""
    names = {s.name for s in specs}
    return {k: v for k, v in values.items() if k in names and v is not None and v != ""}


def _module_choices(module: Any, name: str) -> tuple | None:
    """Allowed values of a config field, from the defining module's constants by convention
    (``objective`` -> ``OBJECTIVES``, ``upsample`` -> ``UPSAMPLE_FACTORS`` or ``UPSAMPLE_CHOICES``)."""
    for const in (f"{name.upper()}S", f"{name.upper()}_FACTORS", f"{name.upper()}_CHOICES"):
        value = getattr(module, const, None)
        if isinstance(value, (tuple, list, frozenset)) and value:
            return tuple(value)
    return None


def options_of_config(config: Any) -> tuple[OptionSpec, ...]:
    """Toggles for a method configured by a dataclass (e.g. ``OptimizeConfig``): one per field the
    dashboard can show, with the method's current (preset) values as defaults."""
    import dataclasses
    import sys

    if not dataclasses.is_dataclass(config):
        return ()
    try:
        hints = typing.get_type_hints(type(config))
    except Exception:  # noqa: BLE001
        hints = {}
    module = sys.modules.get(type(config).__module__)
    specs = []
    for f in dataclasses.fields(config):
        if f.name in NOT_SHOWN or f.name.startswith("_"):
            continue
        default = getattr(config, f.name)
        if isinstance(default, (dict, list, tuple)):
            continue
        spec = _spec_for(f.name, default, hints.get(f.name), _module_choices(module, f.name))
        if spec is not None:
            specs.append(spec)
    return tuple(specs)


def _default_config(factory: Callable) -> Any:
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return None
    if not any(p.kind == p.VAR_KEYWORD for p in params):
        return None
    try:
        instance = factory()
    except Exception:  # noqa: BLE001 - a factory that needs arguments simply has no discoverable options
        return None
    return getattr(instance, "config", None)


def takes_option(factory: Callable, name: str) -> bool:
    """Whether a method factory takes the option ``name`` (in its signature or its config dataclass)."""
    import dataclasses

    try:
        if name in inspect.signature(factory).parameters:
            return True
    except (TypeError, ValueError):
        return False
    config = _default_config(factory)
    return dataclasses.is_dataclass(config) and name in {f.name for f in dataclasses.fields(config)}


def method_options(factory: Callable) -> tuple[OptionSpec, ...]:
    """A method's toggles: its factory's keyword options, or, for a factory that takes ``**options``
    only, the fields of the ``config`` dataclass of a default instance."""
    specs = options_of(factory)
    if specs:
        return specs
    return options_of_config(_default_config(factory))
