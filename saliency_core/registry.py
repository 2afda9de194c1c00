"""One plug-in mechanism for every kind of component: methods, infillers, masker kinds, classifiers, metrics.

A :class:`Registry` maps a name to a factory and what the factory declares about itself: a one-line
summary, the dataclass of its options (see :mod:`saliency_core.options`), option defaults (presets)
and its *traits* (``per_label``, ``on_request``, ...). Each registry declares its traits once, as a frozen
dataclass whose fields are made with :func:`trait` (name, type, default, help); ``register`` checks every
trait it is given against that declaration, so a misspelt or mistyped trait fails at import with one line
naming it instead of registering silently. Registering a name twice raises, so a plug-in can never
silently replace another; tests unregister what they register.

Built-in entries register themselves when their module is imported; a registry imports its
``builtin_modules`` the first time it is asked for its entries, then loads the plug-ins of other installed
packages (the entry point group :data:`PLUGIN_GROUP`, see :mod:`saliency_core.plugins`), so ``list()``
always sees both.
"""
from __future__ import annotations

import dataclasses
import difflib
import importlib
import threading
import types
import typing
from collections.abc import Callable as AbcCallable
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Iterator, TypeVar

from saliency_core import plugins
from saliency_core.errors import RegistryError

T = TypeVar("T")

_importing = [0]  # how many registries are importing their built-in modules now (under plugins.LOAD_LOCK)

_TRAIT_HELP = "saliency_core.trait_help"


def trait(default: Any = None, *, help: str) -> Any:
    """A field of a registry's traits dataclass: its default (what an entry that does not declare it gets)
    and a help line. The field's annotation is the type ``register`` checks."""
    if isinstance(default, (dict, list, set)):
        return field(default_factory=lambda: type(default)(default), metadata={_TRAIT_HELP: help})
    return field(default=default, metadata={_TRAIT_HELP: help})


@dataclass(frozen=True)
class NoTraits:
    """The traits of a registry that declares none: any trait given to ``register`` is refused."""


@dataclass(frozen=True)
class TraitInfo:
    """One declared trait, as a listing or a document shows it."""

    name: str
    type: str
    default: Any
    help: str


def declared_traits(traits: type) -> tuple[TraitInfo, ...]:
    """The traits a traits dataclass declares: name, type (as written), default, help."""
    out = []
    for f in dataclasses.fields(traits):
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        hint = f.type if isinstance(f.type, str) else _describe(f.type)
        out.append(TraitInfo(f.name, hint, default, f.metadata.get(_TRAIT_HELP, "")))
    return tuple(out)


@dataclass(frozen=True)
class Entry:
    """A registered component: its name, factory, summary, options dataclass and declared traits."""

    name: str
    factory: Callable[..., Any]
    summary: str = ""
    config: type | None = None  # dataclass of the options (None: the factory takes no options)
    defaults: dict[str, Any] = field(default_factory=dict)  # option values that differ from the dataclass's
    traits: Any = field(default_factory=NoTraits)  # an instance of the registry's traits dataclass
    kind: str = "entry"  # the registry's kind ("method", "infiller", ...)
    given: frozenset[str] = frozenset()  # the traits the registration named (the others are defaults)
    origin: str = ""  # "" for the package and in-process code; "plug-in 'name'" for an entry point's

    @property
    def attrs(self) -> dict[str, Any]:
        """The traits as a dict (every declared one, defaults included): the older, untyped way to read them;
        prefer ``entry.traits.<name>``."""
        traits = self.__dict__["traits"]
        return {f.name: getattr(traits, f.name) for f in dataclasses.fields(traits)}

    def __getattr__(self, item: str) -> Any:
        traits = self.__dict__.get("traits")
        if traits is not None and item in {f.name for f in dataclasses.fields(traits)}:
            return getattr(traits, item)
        raise AttributeError(item)

    @property
    def available(self) -> bool:
        """Whether the entry can run here (an ``available`` callable may say no, e.g. a missing file)."""
        check = getattr(self.traits, "available", None)
        return bool(check()) if callable(check) else True

    def options(self) -> tuple:
        """The declared options, with this entry's defaults (empty when it takes none)."""
        from saliency_core.options import declared_options

        return declared_options(self.config, self.defaults) if self.config is not None else ()

    def make_config(self, **options: Any) -> Any:
        """The options dataclass from this entry's defaults and ``options`` (validated)."""
        from saliency_core.options import build_config, with_defaults

        return build_config(self.config, with_defaults(self.defaults, options), what=f"{self.kind} '{self.name}'")

    @property
    def kind_name(self) -> str:
        return self.kind


class Registry(Generic[T]):
    """Named factories of one kind (``Registry("method", traits=MethodTraits)``) with declared options and traits.

    ``create(name, **options)`` validates the options against the entry's dataclass and calls
    ``factory(config)``; an entry without a dataclass is called as ``factory(**options)``.
    """

    def __init__(self, kind: str, builtin_modules: tuple[str, ...] = (),
                 error: type[RegistryError] = RegistryError, traits: type | None = None) -> None:
        self.kind = kind
        self.error = error  # what get() and create() raise (MethodError for methods, ...)
        self.traits: type = traits or NoTraits
        if not (dataclasses.is_dataclass(self.traits) and isinstance(self.traits, type)):
            raise TypeError(f"the traits of {kind} must be a dataclass, got {self.traits!r}")
        self._hints = typing.get_type_hints(self.traits)
        self._entries: dict[str, Entry] = {}
        self._builtin_modules = builtin_modules
        self._loaded = not builtin_modules  # the built-in modules are imported
        self._ready = False  # ... and the plug-ins are loaded
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ registering
    def register(self, name: str, *, summary: str = "", config: type | None = None,
                 defaults: dict[str, Any] | None = None,
                 **traits: Any) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator: register ``factory`` under ``name``; a name already taken, or a trait this registry does not
        declare (or of the wrong type), raises RegistryError."""
        self.check_traits(name, traits)  # at the decorator's line, before the class body is even used

        def wrap(factory: Callable[..., T]) -> Callable[..., T]:
            self.add(name, factory, summary=summary, config=config, defaults=defaults, **traits)
            return factory

        return wrap

    def add(self, name: str, factory: Callable[..., T], *, summary: str = "", config: type | None = None,
            defaults: dict[str, Any] | None = None, **traits: Any) -> Entry:
        """Register ``factory`` under ``name`` (the non-decorator form)."""
        if not isinstance(name, str) or not name.strip():
            raise RegistryError(f"a {self.kind} needs a non-empty name, got {name!r}")
        declared = self.make_traits(name, traits)
        origin = plugins.current_origin()
        if origin:  # a plug-in registers: the built-ins come first, so it cannot take one of their names
            self._load_builtins()
        with self._lock:
            if name in self._entries:
                raise RegistryError(f"{self.kind} '{name}' is already registered "
                                    f"(by {_where(self._entries[name])}); unregister it first")
            entry = Entry(name, factory, summary or _first_line(factory), config, dict(defaults or {}),
                          declared, self.kind, frozenset(traits), origin)
            if config is not None and defaults:
                entry.make_config()  # a preset that its own dataclass refuses is a bug: fail at import
            self._entries[name] = entry
        plugins.record(self, name)
        return entry

    def check_traits(self, name: str, traits: dict[str, Any]) -> None:
        """Raise RegistryError naming the first trait that is not declared or not of its declared type."""
        known = list(self._hints)
        for key, value in traits.items():
            if key not in self._hints:
                close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                raise RegistryError(f"unknown trait '{key}' for {self.kind} '{name}'{hint} "
                                    f"declared: {', '.join(known) or 'none'}")
            if not conforms(value, self._hints[key]):
                raise RegistryError(f"{self.kind} '{name}': trait '{key}' must be {_describe(self._hints[key])}, "
                                    f"got {_short(value)} ({type(value).__name__})")

    def make_traits(self, name: str, traits: dict[str, Any]) -> Any:
        """The traits dataclass of one entry from the traits its registration names (checked)."""
        self.check_traits(name, traits)
        try:
            return self.traits(**traits)
        except TypeError as exc:  # a trait without a default that the registration left out
            raise RegistryError(f"{self.kind} '{name}': {exc}") from None

    def declared_traits(self) -> tuple[TraitInfo, ...]:
        """What an entry of this registry may declare (name, type, default, help)."""
        return declared_traits(self.traits)

    def unregister(self, name: str) -> None:
        """Remove an entry (tests and plug-ins that clean up after themselves)."""
        with self._lock:
            self._entries.pop(name, None)

    # ------------------------------------------------------------------ reading
    def _load_builtins(self) -> None:
        """Import the built-in modules (once), then the plug-ins of other installed packages (once for all)."""
        if self._ready:
            return
        with plugins.LOAD_LOCK:  # one re-entrant lock for every loader: no lock-order deadlock between threads
            if not self._loaded:
                self._loaded = True
                _importing[0] += 1
                try:
                    for module in self._builtin_modules:
                        importlib.import_module(module)
                finally:
                    _importing[0] -= 1
            # plug-ins only once no built-in module is half imported (one may use another registry at import):
            # every built-in name is then taken before a plug-in could claim it
            if _importing[0] == 0 and plugins.load_plugins():
                self._ready = True

    def get(self, name: str) -> Entry:
        """The entry of ``name``; an unknown name raises RegistryError listing the known ones."""
        self._load_builtins()
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise self.error(f"unknown {self.kind} '{name}' (choose from {', '.join(self.list())})") from None

    def list(self) -> list[str]:
        """Registered names, in registration order."""
        self._load_builtins()
        return list(self._entries)

    def entries(self) -> dict[str, Entry]:
        self._load_builtins()
        return dict(self._entries)

    def __contains__(self, name: object) -> bool:
        self._load_builtins()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.list())

    def __len__(self) -> int:
        return len(self.list())

    # ------------------------------------------------------------------ building
    def create(self, name: str, **options: Any) -> T:
        """Build ``name`` with ``options``; unknown or out-of-range options raise one clear error."""
        entry = self.get(name)
        if entry.config is None:
            if options:
                raise self.error(f"{self.kind} '{name}' takes no options (got {', '.join(sorted(options))})")
            return entry.factory()
        try:
            config = entry.make_config(**options)
        except self.error:
            raise
        except RegistryError as exc:  # an OptionError: raised as this registry's error, same message
            raise self.error(str(exc)) from None
        return entry.factory(config)


# ---------------------------------------------------------------------------------------------- trait types
def conforms(value: Any, hint: Any) -> bool:
    """Whether ``value`` fits a type hint: classes, ``X | None``, ``Literal``, ``Callable``, ``tuple[X, ...]``,
    ``dict[K, V]`` and ``Any`` (what trait declarations use). A bool is not a number here."""
    if hint is Any or hint is object:
        return True
    if hint is None or hint is type(None):
        return value is None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union or origin is types.UnionType:
        return any(conforms(value, a) for a in args)
    if origin is typing.Literal:
        return any(value == a and type(value) is type(a) for a in args)
    if origin is AbcCallable or hint is AbcCallable or hint is Callable:
        return callable(value)
    if origin is tuple:
        if not isinstance(value, tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(conforms(v, args[0]) for v in value)
        return not args or (len(args) == len(value) and all(conforms(v, a) for v, a in zip(value, args)))
    if origin in (dict, Mapping):
        return isinstance(value, Mapping) and (not args or all(
            conforms(k, args[0]) and conforms(v, args[1]) for k, v in value.items()))
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True  # a hint this checker does not read (a TypeVar...): accepted


def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is None or hint is type(None):
        return "None"
    if origin is typing.Union or origin is types.UnionType:
        return " or ".join(_describe(a) for a in args)
    if origin is typing.Literal:
        return " or ".join(repr(a) for a in args)
    if origin is AbcCallable or hint is AbcCallable or hint is Callable:
        return "a callable"
    if origin is tuple:
        return f"a tuple of {_describe(args[0])}" if len(args) == 2 and args[1] is Ellipsis else "a tuple"
    if origin in (dict, Mapping):
        return f"a dict of {_describe(args[0])} to {_describe(args[1])}" if args else "a dict"
    return getattr(hint, "__name__", str(hint).replace("typing.", ""))


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _first_line(obj: Any) -> str:
    doc = getattr(obj, "__doc__", None) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def _where(entry: Entry) -> str:
    obj = entry.factory
    where = f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', getattr(obj, '__name__', '?'))}"
    return f"{where}, {entry.origin}" if entry.origin else where
