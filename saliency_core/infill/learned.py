"""A learned inpainting network as an infiller: ``ModuleInfiller(net, weights)``."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


class ModuleInfiller:
    """A network ``net(x, keep) -> fill`` whose weights come from a local file.

    The user builds the network (code), and the weights are read safely (safetensors or
    ``torch.load(weights_only=True)``): nothing in a weights file can run code. Register it with
    ``INFILLERS.add("my-inpainter", lambda: ModuleInfiller(net, "w.safetensors"))``.
    """

    def __init__(self, net: nn.Module, weights: str | Path | None = None) -> None:
        if weights is not None:
            from saliency_core.state_dict import read_state_dict

            net.load_state_dict(read_state_dict(Path(weights)))
        self.net = net.eval().requires_grad_(False)

    def __call__(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.net(x.detach(), keep.detach())
