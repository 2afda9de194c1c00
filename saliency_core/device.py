"""Device and dtype resolution: the one place that decides where tensors live."""
from __future__ import annotations

import torch


class DeviceError(ValueError):
    """Raised when a requested device cannot be used."""


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """Return a usable torch.device.

    ``None`` or ``"auto"`` picks CUDA when available, else the CPU. An explicit ``"cuda"`` on a
    machine without one raises a clear error instead of failing deep inside a forward pass.
    """
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"device '{device}' was requested but no CUDA GPU is available; use --device cpu")
    if dev.type not in {"cpu", "cuda", "mps"}:
        raise DeviceError(f"unsupported device '{device}' (use cpu, cuda or cuda:N)")
    return dev

