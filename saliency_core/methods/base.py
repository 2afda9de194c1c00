"""The method contract and registry: every way of making a saliency map is a registered method.

A method is built with ``create_method(name, **options)`` (options validated against the dataclass
it declares) and called as ``method(classifier, x, labels, clean, progress)``: ``x`` is the
normalised 1 x 3 x h x w input, ``labels`` the class indices to explain and ``clean`` the
classifier's output on ``x`` (logits and stage activations, so maskers reuse the forward pass). It
returns a :class:`MethodResult` with one mask per label (or one mask for label-agnostic methods).

What a method declares when it registers (read by the CLI, ``saliency evaluate`` and the dashboard,
so none of them branches on a method's name): ``summary``, ``config`` (its options), ``defaults``
(a preset), ``per_label``, ``group`` (one of :data:`GROUPS`), ``on_request`` (slow: a UI runs it only
when asked), ``in_comparison`` (a UI compares it by default), ``available`` (a callable: can it run here),
``cost`` (``cost(config, n_labels)``: the classifier image passes it needs, forward = 1, forward + backward =
3; a UI turns it into an estimated time).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import torch

from saliency_core.classifiers.base import Classifier, ClassifierOutput
from saliency_core.progress import ProgressFn  # noqa: E402 - re-exported for methods
from saliency_core.registry import Entry, Registry, RegistryError, trait

#: Method groups, in the order a UI lists them.
#: RISE and other black-box methods that only look at the classifier's answers on perturbed copies of the image
#: are "Perturbation baseline" (no gradient is taken).
GROUPS = ("Trained masker", "Per-image optimisation", "Gradient baseline", "Perturbation baseline", "Control")


@dataclass
class MethodResult:
    """Masks K x h x w in [0, 1] (1 = salient) at the working resolution, K = labels or 1."""

    masks: torch.Tensor
    per_label: bool
    info: dict[str, Any] = field(default_factory=dict)
    #: Extra areas computed in the same pass by an area-aware (``takes_area``) method; empty for others.
    areas: tuple[float, ...] = ()
    #: One mask per extra area and label, A x K x h x w (A = len(areas)); None for other methods.
    area_masks: torch.Tensor | None = None


class Method(Protocol):
    name: str

    def __call__(self, classifier: Classifier, x: torch.Tensor, labels: list[int], clean: ClassifierOutput,
                 progress: ProgressFn | None = None) -> MethodResult: ...


class MethodError(RegistryError):
    """Unknown method or bad method option."""


@dataclass(frozen=True)
class MethodTraits:
    """What a method declares when it registers (``register`` refuses any other name or a wrong type)."""

    group: str = trait("Other", help="its group in a UI's menu, one of GROUPS (others are listed last)")
    per_label: bool = trait(False, help="one mask per label (else one mask for every label)")
    on_request: bool = trait(False, help="slow: a UI runs it only when asked")
    in_comparison: bool = trait(False, help="a UI compares it by default")
    paper: str = trait("", help="the paper it comes from, as cited in the help")
    available: Callable[[], bool] | None = trait(None, help="can it run here (e.g. its shipped file exists)")
    cost: Callable[[Any, int], float] | None = trait(
        None, help="cost(config, n_labels): classifier image passes (forward 1, forward + backward 3)")
    takes_area: bool = trait(False, help="takes the options area and areas (the region's fraction of the image)")
    option_space: Callable[[dict], dict] | None = trait(
        None, help="option_space(options) -> {name: Option}: the loaded checkpoint's ranges of some options")


#: Every method, by name. Add one with ``@METHODS.register("name", config=Options, group=..., per_label=...)``.
METHODS: Registry[Method] = Registry("method", error=MethodError, traits=MethodTraits, builtin_modules=(
    "saliency_core.methods.trained", "saliency_core.methods.optimize.method",
    "saliency_core.methods.optimize.extremal", "saliency_core.methods.gradients",
    "saliency_core.methods.rise", "saliency_core.methods.controls",
))

register_method = METHODS.register


def _order(item: tuple[str, Entry]) -> int:
    group = item[1].traits.group
    return GROUPS.index(group) if group in GROUPS else len(GROUPS)


def method_entries(available_only: bool = False) -> dict[str, Entry]:
    """Registered methods in display order (by group, then registration order)."""
    items = sorted(METHODS.entries().items(), key=_order)
    return {n: e for n, e in items if not available_only or e.available}


def list_methods() -> list[str]:
    return list(method_entries())


method_entry = METHODS.get


def create_method(name: str, **options: Any) -> Method:
    """Build a registered method with its options (unknown or bad options give one clear error)."""
    method = METHODS.create(name, **options)
    method.name = name
    return method


def estimated_passes(name: str, n_labels: int, **options: Any) -> float | None:
    """The classifier image passes a method needs for ``n_labels`` labels with these options (None: undeclared)."""
    entry = METHODS.get(name)
    cost = entry.traits.cost
    if cost is None:
        return None
    config = entry.make_config(**options) if entry.config is not None else None
    return float(cost(config, n_labels))
