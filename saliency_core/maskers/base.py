"""The registry of masker kinds: how a checkpoint's network is built and how it turns activations into masks.

A kind registers ``builder(masker_config_dict) -> nn.Module`` with an ``explain`` attribute,
``explain(masker, classifier, stages, head, size, labels) -> (K x h x w masks, per_label)``, so a
checkpoint of any kind is loaded and used without a caller knowing which kind it is. A kind that takes a
setting (the conditional masker) declares ``takes_setting=True`` and its ``explain`` accepts ``setting=``.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from saliency_core.registry import Registry

ExplainFn = Callable[[nn.Module, Any, list[torch.Tensor], "torch.Tensor | None", tuple[int, int], list[int]],
                     tuple[torch.Tensor, bool]]

#: Masker kinds by the name a checkpoint records (``"phang"``, ``"label"``, ``"conditional"``).
MASKER_KINDS: Registry[nn.Module] = Registry("masker kind", builtin_modules=(
    "saliency_core.maskers.phang", "saliency_core.maskers.label", "saliency_core.maskers.conditional"))

register_masker_kind = MASKER_KINDS.register


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
