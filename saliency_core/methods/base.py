"""Saliency methods in a registry keyed by name, so the CLI and dashboard never special-case one.

A method is built with ``make_method(name, **options)`` and called as
``method(classifier, x, labels, clean, progress)`` where ``x`` is the normalised 1 x 3 x h x w
input, ``labels`` the class indices to explain and ``clean`` the classifier's output on ``x``
(logits and stage activations, so maskers reuse the forward pass). It returns a
:class:`MethodResult` with one mask per label (or a single mask for label-agnostic methods).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import torch

from saliency_core.classifiers.builders import Classifier, ClassifierOutput

ProgressFn = Callable[[float, str], None]


@dataclass
class MethodResult:
    """Masks K x h x w in [0, 1] (1 = salient) at the working resolution, K = labels or 1."""

    masks: torch.Tensor
    per_label: bool
    info: dict[str, Any] = field(default_factory=dict)


class Method(Protocol):
    name: str

    def __call__(self, classifier: Classifier, x: torch.Tensor, labels: list[int], clean: ClassifierOutput,
                 progress: ProgressFn | None = None) -> MethodResult: ...


class MethodError(ValueError):
    """Unknown method or bad method option."""


@dataclass
class MethodSpec:
    name: str
    factory: Callable[..., Method]
    summary: str
    per_label: bool


_REGISTRY: dict[str, MethodSpec] = {}


def register_method(name: str, summary: str, per_label: bool = False) -> Callable:
    """Decorator: register ``factory(**options) -> Method`` under ``name``."""

    def wrap(factory: Callable[..., Method]) -> Callable[..., Method]:
        _REGISTRY[name] = MethodSpec(name, factory, summary, per_label)
        return factory

    return wrap


def _load_builtin_methods() -> None:
    """Import the modules whose methods register themselves (kept lazy: some need heavy imports)."""
    import importlib

    for module in ("saliency_core.methods.trained", "saliency_core.methods.optimize.engine", "saliency_core.methods.gradients"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise


def available_methods() -> dict[str, MethodSpec]:
    _load_builtin_methods()
    return dict(sorted(_REGISTRY.items()))


def make_method(name: str, **options: Any) -> Method:
    """Build a registered method with its options (unknown options give a clear error)."""
    methods = available_methods()
    if name not in methods:
        raise MethodError(f"unknown method '{name}' (choose from {', '.join(methods)})")
    try:
        method = methods[name].factory(**options)
    except TypeError as exc:
        raise MethodError(f"bad option for method '{name}': {exc}") from None
    method.name = name
    return method


def checkpoints_dir() -> Path:
    """Folder of the shipped masker checkpoints (the repository's ``checkpoints/``)."""
    return Path(__file__).resolve().parents[2] / "checkpoints"
