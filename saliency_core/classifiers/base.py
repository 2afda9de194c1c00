"""The classifier contract: preprocessing that travels with the weights, logits, class names and the
activations of its stages (1 = shallow .. n = deep), computed in the same forward pass as the logits."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import torch
from torch import nn

from saliency_core.errors import ClassifierLoadError  # noqa: F401 - defined below every reader of weights
from saliency_core.images.preprocessing import Preprocessing


@lru_cache(maxsize=1)
def imagenet_class_names() -> tuple[str, ...]:
    """The 1000 ImageNet class names in the standard index order (shipped inside torchvision)."""
    from torchvision.models._meta import _IMAGENET_CATEGORIES

    return tuple(_IMAGENET_CATEGORIES)


@dataclass
class ClassifierOutput:
    """Logits plus the stage activations of the same forward pass (stage 1 first).

    ``head`` is the spatial map whose global average pool feeds the final linear layer (for class
    activation maps: w_a . head + b_a averages to the label's logit), or None where the model has none.
    """

    logits: torch.Tensor
    stages: list[torch.Tensor]
    head: torch.Tensor | None = None

    def select(self, stage_ids: tuple[int, ...]) -> list[torch.Tensor]:
        """Activations of the given 1-based stage numbers."""
        return [self.stages[i - 1] for i in stage_ids]


StageFn = Callable[[nn.Module, torch.Tensor], tuple[torch.Tensor, list[torch.Tensor], torch.Tensor | None]]


def state_dict_hash(state: dict[str, torch.Tensor]) -> str:
    """Short sha256 of a state dict's names and values (order independent)."""
    h = hashlib.sha256()
    for key in sorted(state):
        t = state[key]
        if not torch.is_tensor(t):
            continue
        h.update(key.encode())
        h.update(t.detach().to("cpu").contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]



class Classifier(nn.Module):
    """A frozen-by-default image classifier with the project's contract."""

    def __init__(
        self,
        name: str,
        model: nn.Module,
        preprocessing: Preprocessing,
        stage_fn: StageFn,
        stage_channels: list[int],
        class_names: tuple[str, ...] | None = None,
    ) -> None:
        super().__init__()
        self.name = name
        self.model = model
        self.preprocessing = preprocessing
        self._stage_fn = stage_fn
        self.stage_channels = list(stage_channels)
        self.class_names = class_names or imagenet_class_names()
        self._identity: str | None = None

    @property
    def num_stages(self) -> int:
        return len(self.stage_channels)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def identity(self) -> str:
        """``name@sha256-prefix`` of the weights: what a masker checkpoint records and checks."""
        if self._identity is None:
            self._identity = f"{self.name}@{state_dict_hash(self.model.state_dict())}"
        return self._identity

    def refresh_identity(self) -> None:
        """Forget the cached identity (call after the weights change, e.g. in CA training)."""
        self._identity = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def forward_features(self, x: torch.Tensor) -> ClassifierOutput:
        logits, stages, head = self._stage_fn(self.model, x)
        return ClassifierOutput(logits=logits, stages=stages, head=head)

    def label_name(self, index: int) -> str:
        return self.class_names[index]
