"""Plug-ins: methods, infillers, metrics (any registered component) from another installed package.

A package declares an entry point in the group :data:`PLUGIN_GROUP` (``saliency_core.plugins``); its value is a
module (importing it registers its components, as a built-in module does) or a callable (``module:function``,
called once with no arguments). The registries load every plug-in the first time one of them is used, after
their built-in modules, so a plug-in needs no edit of this repository::

    # the plug-in's pyproject.toml
    [project.entry-points."saliency_core.plugins"]
    band = "band_saliency.method"          # a module that calls register_method(...)

A plug-in that fails (an import error, a bad trait, a name already taken) is skipped with one warning line
naming it; what it registered before failing is removed, and the built-ins are untouched. Setting the
environment variable ``SALIENCY_CORE_PLUGINS=0`` skips every plug-in (a run that must see the built-ins only).
"""
from __future__ import annotations

import importlib.metadata
import logging
import os
import threading
import types
from typing import Any, Protocol


class Registry(Protocol):
    """What this module needs of a registry (it sits below :mod:`saliency_core.registry`, which imports it)."""

    def unregister(self, name: str) -> None: ...

#: The entry point group a plug-in package declares.
PLUGIN_GROUP = "saliency_core.plugins"
#: Set to ``0`` to load no plug-in.
PLUGINS_ENV = "SALIENCY_CORE_PLUGINS"

#: One re-entrant lock for loading built-ins and plug-ins (a registry's first use in any thread).
LOAD_LOCK = threading.RLock()
log = logging.getLogger("saliency_core.plugins")

_state = {"phase": "new"}  # new -> loading -> done
#: What each plug-in did: entry point name -> "loaded" or the one-line reason it was skipped.
_report: dict[str, str] = {}
_local = threading.local()  # .stack: (origin, registrations) of the plug-in this thread is loading now


def _stack() -> list[tuple[str, list[tuple[Registry, str]]]]:
    if not hasattr(_local, "stack"):
        _local.stack = []
    return _local.stack


def load_plugins() -> bool:
    """Load every plug-in once (later calls return at once); True when loading is finished (False while it runs,
    i.e. when a plug-in's own registration asked for a registry)."""
    with LOAD_LOCK:
        if _state["phase"] == "done":
            return True
        if _state["phase"] == "loading":
            return False
        _state["phase"] = "loading"
        try:
            if os.environ.get(PLUGINS_ENV, "1").strip() != "0":
                for ep in _entry_points():
                    load_entry_point(ep)
        finally:
            _state["phase"] = "done"
        return True


def _entry_points() -> list[importlib.metadata.EntryPoint]:
    """The group's entry points, once each (a package seen twice on sys.path counts once), in name order."""
    seen: dict[tuple[str, str], importlib.metadata.EntryPoint] = {}
    for ep in importlib.metadata.entry_points(group=PLUGIN_GROUP):
        seen.setdefault((ep.name, ep.value), ep)
    return [seen[k] for k in sorted(seen)]


def load_entry_point(ep: importlib.metadata.EntryPoint) -> bool:
    """Load one plug-in: import its module (or call its callable). On failure, remove what it registered and log
    one warning line naming it; True when it loaded."""
    origin = f"plug-in '{ep.name}'"
    registered: list[tuple[Registry, str]] = []
    _stack().append((origin, registered))
    try:
        obj: Any = ep.load()
        if callable(obj) and not isinstance(obj, types.ModuleType):
            obj()
    except Exception as exc:  # noqa: BLE001 - any failure of foreign code skips that plug-in, not the built-ins
        for registry, name in registered:
            registry.unregister(name)
        reason = (str(exc).strip().splitlines() or [""])[0]
        _report[ep.name] = f"{type(exc).__name__}: {reason}"
        log.warning("saliency_core: skipped %s (%s): %s", origin, ep.value, _report[ep.name])
        return False
    finally:
        _stack().pop()
    _report[ep.name] = "loaded"
    return True


def current_origin() -> str:
    """``"plug-in 'name'"`` while a plug-in loads (what its registrations record as their origin), else ``""``."""
    stack = _stack()
    return stack[-1][0] if stack else ""


def record(registry: Registry, name: str) -> None:
    """Note that the plug-in loading now registered ``name`` (removed again if the plug-in then fails)."""
    stack = _stack()
    if stack:
        stack[-1][1].append((registry, name))


def plugin_report() -> dict[str, str]:
    """Each plug-in that was found, with ``"loaded"`` or why it was skipped (after the registries' first use)."""
    load_plugins()
    return dict(_report)
