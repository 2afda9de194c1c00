"""The infiller contract and registry: what replaces the pixels a mask removes.

An infiller maps ``(x, keep)`` -> ``fill`` (same shape as ``x``, normalised space, detached); the
composite is ``x * keep + fill * (1 - keep)`` (:mod:`saliency_core.infill.composite`). Each
infiller lives in a file of its own and registers itself with what it can do, so no caller keeps
name lists: ``static`` (the fill depends on the image only, so it can be computed once),
``deterministic`` (the same mask gives the same fill), ``reference_pool`` (it fills from other
photos and needs a pool of them), ``alias_of`` (another name for the same infiller).
"""
from __future__ import annotations

from typing import Protocol

import torch

from saliency_core.registry import Registry, RegistryError


class Infiller(Protocol):
    def __call__(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor: ...


class InfillerError(RegistryError):
    """Unknown infiller or bad infiller option."""


#: Every infiller, by name. Add one with ``@INFILLERS.register("name", config=Options, ...)``.
INFILLERS: Registry[Infiller] = Registry("infiller", error=InfillerError, builtin_modules=(
    "saliency_core.infill.constant", "saliency_core.infill.blur", "saliency_core.infill.noise",
    "saliency_core.infill.random_image", "saliency_core.infill.local_mean", "saliency_core.infill.inpaint",
))

register_infiller = INFILLERS.register
infiller_entry = INFILLERS.get
create_infiller = INFILLERS.create


def list_infillers(include_aliases: bool = True) -> list[str]:
    """Registered infiller names (``include_aliases=False`` lists each infiller once)."""
    return [n for n, e in INFILLERS.entries().items() if include_aliases or not e.attrs.get("alias_of")]
