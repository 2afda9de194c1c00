"""The registry of masker kinds: how a checkpoint's network is built and how it turns activations into masks.

A kind is a :class:`MaskerKind` subclass registered with ``@register_masker_kind("name", config=...)``: its
``build(masker_config_dict) -> nn.Module`` makes the network, ``explain(masker, classifier, stages, head, size,
labels) -> (K x h x w masks, per_label)`` uses it, and ``fixed_options(masker_config_dict)`` names the options a
checkpoint was trained at one value only. So a checkpoint of any kind is loaded and used without a caller
knowing which kind it is. A kind that takes a setting (the conditional masker) sets ``takes_setting = True`` and
its ``explain`` accepts ``setting=``. The registry's factory is the kind itself (calling it builds the network);
its traits repeat ``explain``, ``fixed_options`` and ``takes_setting`` for callers that read traits.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, ClassVar

from saliency_core.errors import RegistryError
from saliency_core.registry import Registry, trait

if TYPE_CHECKING:  # annotations only: declaring a masker kind (and importing saliency_core.maskers) needs no torch
    import torch
    from torch import nn

#: ``explain(masker, classifier, stages, head, size, labels, **setting) -> (masks, per_label)``: masker an
#: ``nn.Module``, stages a list of tensors, head a tensor or None, size (h, w), labels class indices; masks a tensor.
ExplainFn = Callable[..., Any]


class MaskerKind:
    """One kind of masker network: subclass it, define ``build`` and ``explain`` (and ``fixed_options`` when some
    option may be fixed by training), and register the class."""

    #: Its masks depend on a setting chosen at use (``explain(..., setting=...)``).
    takes_setting: ClassVar[bool] = False

    def build(self, config: dict[str, Any]) -> nn.Module:
        """The (untrained) network from a checkpoint's stored masker config."""
        raise NotImplementedError

    def explain(self, masker: nn.Module, classifier: Any, stages: list[torch.Tensor], head: torch.Tensor | None,
                size: tuple[int, int], labels: list[int], **setting: Any) -> tuple[torch.Tensor, bool]:
        """K x h x w masks in [0, 1] for ``labels`` (K = 1 for a label-agnostic kind) and whether they are per label."""
        raise NotImplementedError

    def fixed_options(self, config: dict[str, Any]) -> dict[str, Any]:
        """The options a checkpoint was trained at one value only, with that value (none by default)."""
        return {}

    def __call__(self, config: dict[str, Any]) -> nn.Module:  # the registry's factory
        return self.build(config)


class _FunctionKind(MaskerKind):
    """A kind registered in the older function form: a builder plus loose ``explain`` / ``fixed_options``."""

    def __init__(self, builder: Callable[[dict[str, Any]], nn.Module], explain: ExplainFn,
                 fixed_options: Callable[[dict[str, Any]], dict[str, Any]] | None, takes_setting: bool) -> None:
        self._builder, self._explain, self._fixed = builder, explain, fixed_options
        self.takes_setting = takes_setting  # type: ignore[misc] - per instance here
        self.__doc__ = builder.__doc__

    def build(self, config: dict[str, Any]) -> nn.Module:
        return self._builder(config)

    def explain(self, *args: Any, **setting: Any) -> tuple[torch.Tensor, bool]:
        return self._explain(*args, **setting)

    def fixed_options(self, config: dict[str, Any]) -> dict[str, Any]:
        return dict(self._fixed(config)) if self._fixed else {}


@dataclass(frozen=True)
class MaskerKindTraits:
    """What a masker kind declares (filled from its class by :func:`register_masker_kind`)."""

    explain: ExplainFn | None = trait(None, help="explain(masker, classifier, stages, head, size, labels) -> "
                                                 "(masks, per_label)")
    fixed_options: Callable[[dict], dict] | None = trait(
        None, help="fixed_options(masker_config) -> the options trained at one value only")
    takes_setting: bool = trait(False, help="its masks depend on a setting chosen at use (explain(..., setting=))")


#: Masker kinds by the name a checkpoint records (``"phang"``, ``"label"``, ``"conditional"``).
MASKER_KINDS: Registry[nn.Module] = Registry("masker kind", traits=MaskerKindTraits, builtin_modules=(
    "saliency_core.maskers.phang", "saliency_core.maskers.label", "saliency_core.maskers.conditional"))


def register_masker_kind(name: str, *, summary: str = "", config: type | None = None,
                         explain: ExplainFn | None = None, fixed_options: Callable[[dict], dict] | None = None,
                         takes_setting: bool | None = None) -> Callable[[Any], Any]:
    """Decorator: register a :class:`MaskerKind` subclass (an instance of it is the registry's factory).

    The older function form, ``register_masker_kind(name, explain=fn, fixed_options=fn,
    takes_setting=...)(builder)``, still works: the builder and functions are wrapped into a kind.
    """

    def wrap(obj: Any) -> Any:
        if isinstance(obj, type) and issubclass(obj, MaskerKind):
            if explain is not None or fixed_options is not None or takes_setting is not None:
                raise RegistryError(f"masker kind '{name}': a MaskerKind class defines explain, fixed_options and "
                                    "takes_setting itself; do not pass them")
            kind: MaskerKind = obj()
        elif callable(obj) and explain is not None:
            kind = _FunctionKind(obj, explain, fixed_options, bool(takes_setting))
        else:
            raise RegistryError(f"masker kind '{name}': register a MaskerKind subclass (or a builder with explain=)")
        MASKER_KINDS.add(name, kind, summary=summary or _doc(obj), config=config, explain=kind.explain,
                         fixed_options=kind.fixed_options, takes_setting=bool(kind.takes_setting))
        return obj

    return wrap


def masker_kind(name: str) -> MaskerKind:
    """The registered kind ``name`` (unknown: RegistryError listing the known ones)."""
    return MASKER_KINDS.get(name).factory  # type: ignore[return-value]


def _doc(obj: Any) -> str:
    doc = (getattr(obj, "__doc__", None) or "").strip()
    return doc.splitlines()[0] if doc else ""


def check_stages(stages: Any, stage_channels: Any, what: str) -> tuple[int, ...]:
    """Validate the stages a masker reads and the classifier's channel counts (checkpoint metadata is untrusted)."""
    from saliency_core.errors import OptionError

    if not isinstance(stages, (list, tuple)) or not stages or not all(
            isinstance(s, int) and not isinstance(s, bool) and 1 <= s <= 64 for s in stages):
        raise OptionError(f"{what}: option 'stages' must be a non-empty list of stage numbers (1..64), got {stages!r}")
    if len(set(stages)) != len(stages):
        raise OptionError(f"{what}: option 'stages' must be distinct, got {list(stages)}")
    if not isinstance(stage_channels, (list, tuple)) or not all(
            isinstance(c, int) and not isinstance(c, bool) and 0 < c <= 65536 for c in stage_channels):
        raise OptionError(f"{what}: option 'stage_channels' must be a list of channel counts (1..65536)")
    if stage_channels and max(stages) > len(stage_channels):
        raise OptionError(f"{what}: stage {max(stages)} requested but the classifier has {len(stage_channels)} stages")
    return tuple(int(s) for s in stages)


def mapping(d: Any, what: str) -> dict:
    """The config as a dict, or one clear error (a checkpoint may hold anything)."""
    from saliency_core.errors import OptionError

    if not isinstance(d, dict):
        raise OptionError(f"{what} must be a mapping of options, got {type(d).__name__}")
    return d
