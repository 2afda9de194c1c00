"""The infiller contract and registry: what replaces the pixels a mask removes.

An infiller maps ``(x, keep)`` -> ``fill`` (same shape as ``x``, normalised space, detached); the
composite is ``x * keep + fill * (1 - keep)`` (:mod:`saliency_core.infill.composite`). Each
infiller lives in a file of its own and registers itself with what it can do, so no caller keeps
name lists: ``static`` (the fill depends on the image only, so it can be computed once),
``deterministic`` (the same mask gives the same fill), ``reference_pool`` (it fills from other
photos and needs a pool of them), ``alias_of`` (another name for the same infiller).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from saliency_core.registry import Registry, RegistryError, trait


class Infiller(Protocol):
    def __call__(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor: ...


class InfillerError(RegistryError):
    """Unknown infiller or bad infiller option."""


@dataclass(frozen=True)
class InfillerTraits:
    """What an infiller declares when it registers (``register`` refuses any other name or a wrong type)."""

    static: bool = trait(False, help="the fill depends on the image only: computed once per image")
    deterministic: bool = trait(False, help="the same image and mask give the same fill")
    reference_pool: bool = trait(False, help="fills from other photos: needs a pool of them")
    alias_of: str | None = trait(None, help="another name of this infiller (listed once)")
    slow: bool = trait(False, help="runs on the CPU in seconds per image (a UI may warn)")


#: Every infiller, by name. Add one with ``@INFILLERS.register("name", config=Options, ...)``.
INFILLERS: Registry[Infiller] = Registry("infiller", error=InfillerError, traits=InfillerTraits, builtin_modules=(
    "saliency_core.infill.constant", "saliency_core.infill.blur", "saliency_core.infill.noise",
    "saliency_core.infill.random_image", "saliency_core.infill.local_mean", "saliency_core.infill.inpaint",
))

register_infiller = INFILLERS.register
infiller_entry = INFILLERS.get
create_infiller = INFILLERS.create


def list_infillers(include_aliases: bool = True) -> list[str]:
    """Registered infiller names (``include_aliases=False`` lists each infiller once)."""
    return [n for n, e in INFILLERS.entries().items() if include_aliases or not e.traits.alias_of]
