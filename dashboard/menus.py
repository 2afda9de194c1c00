"""What can be explained with here: the registered methods and infillers as the dashboard shows them, and the
masker checkpoints each method offers (everything from what the core declares; no method's name is special).
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import saliency_core
from saliency_core import (
    CheckpointInfo,
    Entry,
    Method,
    Option,
    checkpoint_fixed_options,
    create_method,
    infiller_entry,
    list_infillers,
    method_entries,
)

#: An area-aware method's option of extra areas: the dashboard fills it in (the area curve), it draws no widget.
AREAS_OPTION = "areas"


@dataclass(frozen=True)
class MethodEntry:
    """A registered method as the dashboard shows it: everything comes from what the method declares."""

    name: str
    summary: str
    per_label: bool
    group: str
    options: tuple[Option, ...]  # the declared options a widget can show
    on_request: bool  # slow: runs when the user presses Run, can be cancelled
    in_comparison: bool = False  # compared by default on the Compare page
    paper: str = ""
    own_infiller: bool = False  # has an infiller option of its own (its options go into ``infiller_options``)
    checkpoint_kinds: tuple[str, ...] | None = None  # masker checkpoint kinds it reads (None: any)
    takes_checkpoint: bool = False
    takes_area: bool = False  # makes a region of a given area itself (options ``area`` and ``areas``)
    #: ``option_space(options) -> {name: Option}``: the ranges of what is loaded (e.g. a checkpoint's), or None
    option_space: Callable[[dict], dict] | None = field(default=None, compare=False)

    @property
    def title(self) -> str:
        return f"{self.name} ({self.group.lower()})"

    def fits(self, checkpoint: CheckpointInfo) -> bool:
        """Whether this method can read the checkpoint (unreadable ones are offered: loading says why)."""
        return self.checkpoint_kinds is None or checkpoint.kind in self.checkpoint_kinds or checkpoint.kind == "?"


def _entry(entry: Entry) -> MethodEntry:
    traits = entry.traits  # typed, checked at ``register``
    takes_area = bool(getattr(traits, "takes_area", False))
    options = tuple(o for o in entry.options() if o.shown and not (takes_area and o.name == AREAS_OPTION))
    ckpt = next((o for o in options if o.kind == "checkpoint"), None)
    return MethodEntry(name=entry.name, summary=entry.summary, per_label=bool(traits.per_label),
                       group=traits.group, options=options, on_request=bool(traits.on_request),
                       in_comparison=bool(traits.in_comparison), paper=traits.paper,
                       own_infiller=any(o.kind == "infiller" for o in options),
                       checkpoint_kinds=ckpt.checkpoint_kinds if ckpt else None, takes_checkpoint=ckpt is not None,
                       takes_area=takes_area, option_space=getattr(traits, "option_space", None))


def method_catalog() -> dict[str, MethodEntry]:
    """The methods that can run here, in the core's display order (by group)."""
    return {name: _entry(e) for name, e in method_entries(available_only=True).items()}


def build_method(name: str, options: dict[str, Any]) -> Method:
    """A method object (its own caches, e.g. a loaded checkpoint, live inside it)."""
    return create_method(name, **options)


@functools.lru_cache(maxsize=64)
def _space(fn: Callable[[dict], dict], options_json: str) -> tuple[tuple[str, Option], ...]:
    return tuple(fn(json.loads(options_json)).items())


def option_space(entry: MethodEntry, options: dict[str, Any]) -> dict[str, Option]:
    """The method's options as what is loaded allows them (``option_space``: e.g. the ranges a checkpoint was trained
    over, read from its header), for the options it names; empty when the method declares none. Kept per options."""
    if entry.option_space is None:
        return {}
    return dict(_space(entry.option_space, json.dumps(options, sort_keys=True, default=str)))


def fixed_options(checkpoint: str | None) -> dict[str, Any]:
    """The options the chosen checkpoint was trained at one value only, with that value (the core reads its header):
    not drawn, since no other value would be accepted."""
    return checkpoint_fixed_options(checkpoint) if checkpoint else {}


def checkpoints_for(entry: MethodEntry, checkpoints: list[CheckpointInfo],
                    catalog: dict[str, MethodEntry]) -> list[CheckpointInfo]:
    """The checkpoints a method should offer: those it can read, less the kinds that another method
    declares as its own (a per-label checkpoint belongs to the per-label masker's menu)."""
    claimed = {k for e in catalog.values() if e is not entry and e.checkpoint_kinds for k in e.checkpoint_kinds}
    if entry.checkpoint_kinds is None:
        return [c for c in checkpoints if c.kind not in claimed]
    return [c for c in checkpoints if entry.fits(c)]


def comparison_choices(catalog: dict[str, MethodEntry], checkpoints: list[CheckpointInfo]
                       ) -> tuple[dict[str, tuple[str, dict[str, Any]]], list[str]]:
    """What the Compare page offers: one choice per method, or per checkpoint for a method that reads one,
    as ``{label: (method, options)}``, and the choices compared by default (what the methods declare)."""
    choices: dict[str, tuple[str, dict[str, Any]]] = {}
    preferred: list[str] = []
    for entry in catalog.values():
        if entry.takes_checkpoint:
            own = checkpoints_for(entry, checkpoints, catalog)
            for i, ckpt in enumerate(own):
                label = f"{entry.name}: {ckpt.label}" if len(own) > 1 or entry.checkpoint_kinds is None else entry.name
                choices[label] = (entry.name, {"checkpoint": str(ckpt.path)})
                if entry.in_comparison and i < 2:
                    preferred.append(label)
        else:
            choices[entry.name] = (entry.name, {})
            if entry.in_comparison:
                preferred.append(entry.name)
    return choices, preferred


def infiller_catalog() -> dict[str, Entry]:
    """Registered infillers, each once (an alias such as ``none`` for ``gray`` is not listed)."""
    return {name: infiller_entry(name) for name in list_infillers(include_aliases=False)}


def infiller_options(name: str) -> tuple[Option, ...]:
    """The options of an infiller that a widget can show (e.g. blur ``sigma``)."""
    return tuple(o for o in infiller_entry(name).options() if o.shown)


def uses_reference_pool(name: str) -> bool:
    return bool(infiller_entry(name).traits.reference_pool)




def find_checkpoints(extra_dirs: list[Path] | None = None) -> list[CheckpointInfo]:
    """Masker checkpoints in the shipped folder and ``extra_dirs`` (the core's catalogue)."""
    return saliency_core.find_checkpoints(extra_dirs)
