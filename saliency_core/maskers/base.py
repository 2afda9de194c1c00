"""The registry of masker kinds: how a checkpoint's network is built and how it turns activations into masks.

A kind registers ``builder(masker_config_dict) -> nn.Module`` with an ``explain`` attribute,
``explain(masker, classifier, stages, head, size, labels) -> (K x h x w masks, per_label)``, so a
checkpoint of any kind is loaded and used without a caller knowing which kind it is.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from saliency_core.registry import Registry

ExplainFn = Callable[[nn.Module, Any, list[torch.Tensor], "torch.Tensor | None", tuple[int, int], list[int]],
                     tuple[torch.Tensor, bool]]

#: Masker kinds by the name a checkpoint records (``"phang"``, ``"label"``).
MASKER_KINDS: Registry[nn.Module] = Registry("masker kind", builtin_modules=(
    "saliency_core.maskers.phang", "saliency_core.maskers.label"))

register_masker_kind = MASKER_KINDS.register
