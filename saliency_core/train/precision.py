"""Precision and devices of a training run: mixed precision (autocast, the fp16 gradient scaler), channels-last
memory, cuDNN autotuning, and the peak memory a run reports."""
from __future__ import annotations

import contextlib
import resource
import sys
from dataclasses import dataclass
from typing import Any

import torch

from saliency_core.train.config import ConfigError


@dataclass
class Precision:
    """The resolved precision settings of a run on ``device``."""

    amp: str                                 # off, bf16 or fp16 ("auto" resolved)
    amp_dtype: torch.dtype | None
    scaler: Any                              # torch.amp.GradScaler with fp16, else None
    channels_last: bool

    @classmethod
    def resolve(cls, amp: str, channels_last: bool | None, device: torch.device) -> "Precision":
        """``amp`` auto is bf16 on CUDA and off elsewhere; fp16 needs CUDA; channels-last defaults to on CUDA."""
        if amp == "auto":
            amp = "bf16" if device.type == "cuda" else "off"
        if amp == "fp16" and device.type != "cuda":
            raise ConfigError("amp fp16 needs a CUDA device (use bf16 or off on the CPU)")
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        return cls(amp=amp, amp_dtype={"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp),
                   scaler=torch.amp.GradScaler("cuda") if amp == "fp16" else None,
                   channels_last=device.type == "cuda" if channels_last is None else bool(channels_last))

    def autocast(self, device: torch.device):
        """The autocast context of the forward passes (a no-op without mixed precision)."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=self.amp_dtype)


def peak_memory_mb(device: torch.device) -> float:
    """Peak GPU memory allocated (CUDA) or peak resident memory of this process (CPU), in MiB."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss_kb / 1024 if sys.platform != "darwin" else rss_kb / 2**20


def device_name(device: torch.device) -> str:
    """The device as a run's figures name it (the GPU's model on CUDA)."""
    return str(device) if device.type != "cuda" else torch.cuda.get_device_name(device)
