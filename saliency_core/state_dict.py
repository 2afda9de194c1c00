"""Reading a weights file safely (safetensors or ``torch.load(weights_only=True)``): nothing in it can run code.

On the ground floor, so that every package reading weights (classifiers, learned infillers) reaches it without
importing another package.
"""
from __future__ import annotations

from pathlib import Path

import torch

from saliency_core.errors import ClassifierLoadError


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
