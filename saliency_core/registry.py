"""One plug-in mechanism for every kind of component: methods, infillers, masker kinds, classifiers, metrics.

A :class:`Registry` maps a name to a factory and what the factory declares about itself: a one-line
summary, the dataclass of its options (see :mod:`saliency_core.options`), option defaults (presets)
and kind-specific attributes (``per_label``, ``on_request``, ...). Registering a name twice raises,
so a plug-in can never silently replace another; tests unregister what they register.

Built-in entries register themselves when their module is imported; a registry imports its
``builtin_modules`` the first time it is asked for its entries, so ``list()`` always sees them.
"""
from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Iterator, TypeVar

from saliency_core.errors import RegistryError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry:
    """A registered component: its name, factory, summary, options dataclass and declared attributes."""

    name: str
    factory: Callable[..., Any]
    summary: str = ""
    config: type | None = None  # dataclass of the options (None: the factory takes no options)
    defaults: dict[str, Any] = field(default_factory=dict)  # option values that differ from the dataclass's
    attrs: dict[str, Any] = field(default_factory=dict)  # kind-specific: per_label, on_request, group, ...

    def __getattr__(self, item: str) -> Any:
        try:
            return self.__dict__["attrs"][item]
        except KeyError:
            raise AttributeError(item) from None

    @property
    def available(self) -> bool:
        """Whether the entry can run here (an ``available`` callable may say no, e.g. a missing file)."""
        check = self.attrs.get("available")
        return bool(check()) if callable(check) else True

    def options(self) -> tuple:
        """The declared options, with this entry's defaults (empty when it takes none)."""
        from saliency_core.options import declared_options

        return declared_options(self.config, self.defaults) if self.config is not None else ()

    def make_config(self, **options: Any) -> Any:
        """The options dataclass from this entry's defaults and ``options`` (validated)."""
        from saliency_core.options import build_config, with_defaults

        return build_config(self.config, with_defaults(self.defaults, options), what=f"{self.kind_name} '{self.name}'")

    @property
    def kind_name(self) -> str:
        return self.attrs.get("_kind", "entry")


class Registry(Generic[T]):
    """Named factories of one kind (``Registry("method")``) with declared options.

    ``create(name, **options)`` validates the options against the entry's dataclass and calls
    ``factory(config)``; an entry without a dataclass is called as ``factory(**options)``.
    """

    def __init__(self, kind: str, builtin_modules: tuple[str, ...] = (),
                 error: type[RegistryError] = RegistryError) -> None:
        self.kind = kind
        self.error = error  # what get() and create() raise (MethodError for methods, ...)
        self._entries: dict[str, Entry] = {}
        self._builtin_modules = builtin_modules
        self._loaded = not builtin_modules
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ registering
    def register(self, name: str, *, summary: str = "", config: type | None = None,
                 defaults: dict[str, Any] | None = None,
                 **attrs: Any) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator: register ``factory`` under ``name``; a name already taken raises RegistryError."""

        def wrap(factory: Callable[..., T]) -> Callable[..., T]:
            self.add(name, factory, summary=summary, config=config, defaults=defaults, **attrs)
            return factory

        return wrap

    def add(self, name: str, factory: Callable[..., T], *, summary: str = "", config: type | None = None,
            defaults: dict[str, Any] | None = None, **attrs: Any) -> Entry:
        """Register ``factory`` under ``name`` (the non-decorator form)."""
        if not isinstance(name, str) or not name.strip():
            raise RegistryError(f"a {self.kind} needs a non-empty name, got {name!r}")
        with self._lock:
            if name in self._entries:
                raise RegistryError(f"{self.kind} '{name}' is already registered "
                                    f"(by {_where(self._entries[name].factory)}); unregister it first")
            entry = Entry(name, factory, summary or _first_line(factory), config, dict(defaults or {}),
                          {"_kind": self.kind, **attrs})
            if config is not None and defaults:
                entry.make_config()  # a preset that its own dataclass refuses is a bug: fail at import
            self._entries[name] = entry
            return entry

    def unregister(self, name: str) -> None:
        """Remove an entry (tests and plug-ins that clean up after themselves)."""
        with self._lock:
            self._entries.pop(name, None)

    # ------------------------------------------------------------------ reading
    def _load_builtins(self) -> None:
        if self._loaded:
            return
        with self._lock:
            if self._loaded:
                return
            self._loaded = True
            for module in self._builtin_modules:
                importlib.import_module(module)

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


def _first_line(obj: Any) -> str:
    doc = getattr(obj, "__doc__", None) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def _where(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', getattr(obj, '__name__', '?'))}"
