"""What can be explained with here: the registered methods and infillers as the dashboard shows them, and the
masker checkpoints each method offers (everything from what the core declares; no method's name is special).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

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

    @property
    def title(self) -> str:
        return f"{self.name} ({self.group.lower()})"

    def fits(self, checkpoint: CheckpointInfo) -> bool:
        """Whether this method can read the checkpoint (unreadable ones are offered: loading says why)."""
        return self.checkpoint_kinds is None or checkpoint.kind in self.checkpoint_kinds or checkpoint.kind == "?"


def _entry(entry: Entry) -> MethodEntry:
    options = tuple(o for o in entry.options() if o.shown)
    ckpt = next((o for o in options if o.kind == "checkpoint"), None)
    return MethodEntry(name=entry.name, summary=entry.summary, per_label=bool(entry.attrs.get("per_label")),
                       group=entry.attrs.get("group", "Other"), options=options,
                       on_request=bool(entry.attrs.get("on_request")),
                       in_comparison=bool(entry.attrs.get("in_comparison")), paper=entry.attrs.get("paper", ""),
                       own_infiller=any(o.kind == "infiller" for o in options),
                       checkpoint_kinds=ckpt.checkpoint_kinds if ckpt else None, takes_checkpoint=ckpt is not None)


def method_catalog() -> dict[str, MethodEntry]:
    """The methods that can run here, in the core's display order (by group)."""
    return {name: _entry(e) for name, e in method_entries(available_only=True).items()}


def build_method(name: str, options: dict[str, Any]) -> Method:
    """A method object (its own caches, e.g. a loaded checkpoint, live inside it)."""
    return create_method(name, **options)


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
    return bool(infiller_entry(name).attrs.get("reference_pool"))




def find_checkpoints(extra_dirs: list[Path] | None = None) -> list[CheckpointInfo]:
    """Masker checkpoints in the shipped folder and ``extra_dirs`` (the core's catalogue)."""
    return saliency_core.find_checkpoints(extra_dirs)
