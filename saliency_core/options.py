"""Option metadata declared once, on the fields of the config dataclass that uses them.

A field declared with :func:`option` carries its help text, its allowed values (choices or a range),
its widget kind and whether it is a main option. The CLI (``-o name=value``), the Python API and
the dashboard all read the same declaration: the dashboard draws one widget per shown option,
``build_config`` turns ``name=value`` pairs into the validated dataclass, and :func:`check_options`
(called from the dataclass's ``__post_init__``) refuses a bad value with one line naming the option.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import math
import typing
from dataclasses import dataclass
from typing import Any, Callable

from saliency_core.errors import OptionError, RegistryError

#: Widget kinds: numbers, a flag, one of a fixed list, free text, a registered infiller, a checkpoint file, and a
#: list of numbers or words (``4,5`` on a command line; declared with ``kind="list"``, never a dashboard widget).
KINDS = ("int", "float", "bool", "choice", "text", "infiller", "checkpoint", "list")
#: The words a flag accepts (any case); the first half mean true.
TRUE_WORDS, FALSE_WORDS = ("true", "1", "yes", "on"), ("false", "0", "no", "off")
#: The words that mean "unset" for an option that may be None (``--max-steps none``).
NONE_WORDS = ("none", "null")
_META = "saliency_option"


@dataclass(frozen=True)
class Option:
    """What one option is: its name, kind, default, help, allowed values and how a UI shows it."""

    name: str
    kind: str
    default: Any
    help: str
    label: str = ""
    choices: tuple[Any, ...] = ()
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # low itself is not allowed (a strictly positive weight, say)
    high_open: bool = False  # high itself is not allowed (a fraction below 1, say)
    step: float | None = None
    log: bool = False  # a UI should offer a log scale
    main: bool = False  # shown first; the rest under "more options"
    shown: bool = True  # False: not drawn as a widget (filled in by code: a tensor, a callback, the run's seed)
    typed: bool = True  # a plain number, flag or text that is checked (False: a tensor or other object)
    optional: bool = False  # None is allowed and means "the default behaviour"
    checkpoint_kinds: tuple[str, ...] | None = None  # kind "checkpoint": which masker kinds fit
    aliases: tuple[str, ...] = ()
    item: str | None = None  # kind "list": the kind of each item (int, float, text or choice)
    length: int | None = None  # kind "list": exactly this many items (None: one or more)

    @property
    def title(self) -> str:
        return self.label or self.name.replace("_", " ")

    def describe(self) -> str:
        """The allowed values in words (for errors, ``--help`` and tooltips)."""
        if self.kind == "list":
            each = dataclasses.replace(self, kind=self.item or "text", length=None).describe()
            many = f"{self.length}" if self.length else "one or more"
            return f"{many} comma-separated values, each {each}"
        if self.kind in ("choice",) and self.choices:
            return "one of " + ", ".join(map(str, self.choices))
        if self.kind == "infiller":
            return "the name of a registered infiller"
        if self.kind in ("int", "float"):
            parts = []
            if self.low is not None:
                parts.append(f"> {self.low:g}" if self.low_open else f">= {self.low:g}")
            if self.high is not None:
                parts.append(f"< {self.high:g}" if self.high_open else f"<= {self.high:g}")
            kind = "a whole number" if self.kind == "int" else "a number"
            return kind + (" " + " and ".join(parts) if parts else "")
        if self.kind == "bool":
            return "true or false (also yes/no, on/off, 1/0)"
        return "text"


def option(default: Any = dataclasses.MISSING, *, help: str, kind: str | None = None, label: str = "",
           choices: tuple[Any, ...] = (), low: float | None = None, high: float | None = None,
           low_open: bool = False, high_open: bool = False, step: float | None = None, log: bool = False, main: bool = False,
           shown: bool = True, checkpoint_kinds: tuple[str, ...] | None = None, aliases: tuple[str, ...] = (),
           default_factory: Callable[[], Any] | None = None, length: int | None = None) -> Any:
    """A dataclass field with its option metadata (``kind`` is inferred from the annotation when omitted).

    ``kind="list"`` declares a tuple of items (``tuple[int, ...]``): each item is checked against ``choices`` or
    ``low``/``high``, and ``length`` fixes how many there are."""
    meta = {_META: dict(help=help, kind=kind, label=label, choices=tuple(choices), low=low, high=high,
                        low_open=low_open, high_open=high_open, step=step, log=log, main=main, shown=shown,
                        checkpoint_kinds=checkpoint_kinds, aliases=tuple(aliases), length=length)}
    if default_factory is not None:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _base_type(hint: Any) -> tuple[Any, bool]:
    """``int | None`` -> (int, True); ``float`` -> (float, False)."""
    args = typing.get_args(hint)
    if args and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else Any), True
    return hint, False


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def declared_options(cls: type, defaults: dict[str, Any] | None = None) -> tuple[Option, ...]:
    """The options declared on a config dataclass, in field order (``defaults`` override the field's)."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    options = _declared(cls)  # read once per class: every config's construction checks its options
    if not defaults:
        return options
    return tuple(dataclasses.replace(o, default=defaults[o.name]) if o.name in defaults else o for o in options)


@functools.lru_cache(maxsize=None)
def _declared(cls: type) -> tuple[Option, ...]:
    hints = _hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        meta = f.metadata.get(_META)
        if meta is None:
            continue
        base, optional = _base_type(hints.get(f.name, Any))
        kind = meta["kind"] or ("choice" if meta["choices"] else "bool" if base is bool else "int" if base is int
                                else "float" if base is float else "text" if base is str else "text")
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = f.default_factory()  # type: ignore[misc]
        else:
            default = None
        item = None
        if kind == "list":  # tuple[int, ...] -> items of kind int
            args = [a for a in typing.get_args(base) if a is not Ellipsis] or [str]
            item = ("choice" if meta["choices"] else "int" if args[0] is int else "float" if args[0] is float
                    else "text")
        typed = kind in KINDS and (base in (int, float, bool, str) or kind == "list")
        shown = meta["shown"] and typed and kind != "list"
        out.append(Option(name=f.name, kind=kind, default=default, optional=optional, typed=typed, item=item,
                          **{k: v for k, v in meta.items() if k not in ("kind",)} | {"shown": shown}))
    return tuple(out)


def _coerce(opt: Option, value: Any, what: str) -> Any:
    """The value as the option's type (``"4"`` -> 4 for an int) or OptionError naming the option."""
    if (opt.optional and isinstance(value, str)
            and (value.strip().lower() in NONE_WORDS or (not value.strip() and opt.kind not in ("text", "checkpoint")))):
        value = None  # "--max-steps none" unsets an option that may be None
    if value is None:
        if opt.optional or opt.kind == "checkpoint" or opt.default is None:
            return None
        raise OptionError(f"{what}: option '{opt.name}' needs a value ({opt.describe()})")
    if not opt.typed:
        return value
    shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
    bad = OptionError(f"{what}: option '{opt.name}' must be {opt.describe()}, got {shown}")
    if opt.kind == "list":
        return _coerce_list(opt, value, what, bad)
    if opt.kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in TRUE_WORDS + FALSE_WORDS:
            return value.strip().lower() in TRUE_WORDS
        raise bad
    if opt.kind in ("int", "float") or (opt.kind == "choice" and opt.choices
                                         and all(isinstance(c, (int, float)) and not isinstance(c, bool)
                                                 for c in opt.choices)):
        if isinstance(value, bool):
            raise bad
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise bad from None
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise bad
        integer = opt.kind == "int" or (opt.kind == "choice" and all(isinstance(c, int) for c in opt.choices))
        if integer:
            if int(value) != value:
                raise bad
            value = int(value)
        else:
            value = float(value)
    if opt.kind == "choice" and value not in opt.choices:
        raise bad
    if opt.kind == "infiller" and not isinstance(value, str):
        raise bad  # whether the name is registered is checked by the config that uses it (it knows the registry)
    if opt.kind in ("int", "float"):
        if opt.low is not None and (value <= opt.low if opt.low_open else value < opt.low):
            raise bad
        if opt.high is not None and (value >= opt.high if opt.high_open else value > opt.high):
            raise bad
    if opt.kind in ("text", "checkpoint") and not isinstance(value, (str, bytes)) and not hasattr(value, "__fspath__"):
        raise bad
    return value


def _coerce_list(opt: Option, value: Any, what: str, bad: OptionError) -> tuple[Any, ...]:
    """A ``kind="list"`` value (``"4,5"``, ``[4, 5]`` or ``(4, 5)``) as a tuple of checked items."""
    if isinstance(value, str):
        value = [v for v in value.replace(" ", "").split(",") if v]
    if not isinstance(value, (list, tuple)) or not value or (opt.length and len(value) != opt.length):
        raise bad
    each = dataclasses.replace(opt, kind=opt.item or "text", optional=False, length=None)
    try:
        return tuple(_coerce(each, v, what) for v in value)
    except OptionError:
        raise bad from None


def coerce_option(opt: Option, value: Any, what: str) -> Any:
    """One value of one declared option, coerced (``"4"`` -> 4) and checked against its declaration, or an
    :class:`OptionError` line naming the option and what it accepts (the dashboard reads links with it)."""
    return _coerce(opt, value, what)


def parse_pairs(pairs: list[str], what: str = "option") -> dict[str, Any]:
    """``["steps=100", "infiller=blur"]`` -> ``{"steps": 100, "infiller": "blur"}``: each value read as JSON when it
    is JSON (numbers, true, lists), else kept as text; the declared option coerces it further."""
    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise OptionError(f"{what}: '{pair}' must look like key=value")
        key, value = pair.split("=", 1)
        try:
            out[key.strip().replace("-", "_")] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip().replace("-", "_")] = value
    return out


def check_options(config: Any, what: str | None = None) -> None:
    """Validate (and coerce in place) every declared option of a config instance; call from ``__post_init__``."""
    what = what or type(config).__name__
    for opt in declared_options(type(config)):
        value = _coerce(opt, getattr(config, opt.name), what)
        object.__setattr__(config, opt.name, value)


def with_defaults(defaults: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """``defaults`` (a preset) overridden by the user's ``options``; a component's options follow the component.

    When the user picks another ``X`` (e.g. ``infiller=noise``) and gives no ``X_options``, the preset's
    ``X_options`` (e.g. blur's ``{"sigma": 10}``) belonged to the preset's ``X`` and are not carried over."""
    given = {(k.replace("-", "_") if isinstance(k, str) else k): v for k, v in options.items()}
    merged = {**defaults, **options}
    for name, value in given.items():
        companion = f"{name}_options"
        if companion in defaults and companion not in given and name in defaults and value != defaults[name]:
            merged.pop(companion, None)
    return merged


def build_config(cls: type, options: dict[str, Any], what: str = "") -> Any:
    """A validated ``cls`` from ``name=value`` options; aliases are accepted, an unknown name is refused."""
    what = what or cls.__name__
    known = {o.name: o for o in declared_options(cls)}
    alias = {a: o.name for o in known.values() for a in o.aliases}
    fields = {f.name for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, value in options.items():
        name = alias.get(key, key.replace("-", "_") if isinstance(key, str) else key)
        if name not in fields:
            names = sorted(n for n, o in known.items() if o.shown)
            raise OptionError(f"{what}: unknown option '{key}' (options: {', '.join(names) or 'none'})")
        values[name] = value
    try:
        return cls(**values)
    except RegistryError:
        raise
    except (TypeError, ValueError) as exc:
        raise OptionError(f"{what}: {exc}") from None


def config_to_dict(config: Any) -> dict[str, Any]:
    """JSON-ready option values of a config (values a UI cannot show are described, not dumped)."""
    out = {}
    for f in dataclasses.fields(config):
        v = getattr(config, f.name)
        if isinstance(v, (str, int, float, bool, type(None))):
            out[f.name] = v
        elif isinstance(v, dict):
            out[f.name] = {k: (x if isinstance(x, (str, int, float, bool, type(None))) else f"<{type(x).__name__}>")
                           for k, x in v.items()}
        elif isinstance(v, (list, tuple)):
            out[f.name] = list(v)
        else:
            out[f.name] = f"<{type(v).__name__}>"
    return out


def seed_option(what: str) -> Any:
    """The ``seed`` option of a random component: filled in from the explanation's seed, so not a widget of its own."""
    return option(0, shown=False, low=0, help=f"Random seed of {what}: the same seed gives the same result. "
                                              "The explanation's seed fills it in when it is not given.")
