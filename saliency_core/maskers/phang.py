"""The masker of Phang et al. (2020): a small decoder over the classifier's hidden stages.

Each selected stage -> 1x1 conv (64 channels, no bias) -> BatchNorm -> ReLU -> bilinear upsample to
a common resolution (input / 4, the 56x56 of the paper at 224 px) -> concatenate -> 3x3 conv ->
sigmoid -> upsample to the input size. The activations are detached, so the masker learns only
through the masked images. An optional binary-Concrete (Gumbel-Softmax) output gives soft or
straight-through hard masks.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from saliency_core.maskers.base import MaskerKind, check_stages, mapping, register_masker_kind
from saliency_core.options import check_options, option
from saliency_core.vocabulary import GUMBEL_MODES, UPSAMPLE_MODES


@dataclass
class MaskerConfig:
    """Architecture of a Phang masker (stored in every checkpoint)."""

    stages: tuple[int, ...] = option((4, 5), help="the classifier stages it reads (1 = shallow .. n = deep)")
    hidden_channels: int = option(64, help="channels of each stage's 1x1 projection", low=1, high=1024)
    resolution_divisor: int = option(4, help="the mask is made at input/d and upsampled", choices=(1, 2, 4, 8, 16, 32))
    final_upsample: str = option("nearest", help="how the mask is upsampled to the input", choices=UPSAMPLE_MODES)
    gumbel: str = option("off", help="binary-Concrete output: off, soft or hard (straight-through)",
                         choices=GUMBEL_MODES)
    gumbel_temperature: float = option(0.1, help="temperature of the binary-Concrete output", low=0.0,
                                       low_open=True, high=10.0)
    stage_channels: list[int] = option(help="channels of each classifier stage (filled from the classifier)",
                                       default_factory=list)

    def __post_init__(self) -> None:
        check_options(self, "masker config")
        self.stages = check_stages(self.stages, self.stage_channels, "masker config")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["stages"] = list(self.stages)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "MaskerConfig":
        known = {k: v for k, v in mapping(d, "masker config").items() if k in cls.__dataclass_fields__}
        return cls(**known)


def binary_concrete(logits: torch.Tensor, temperature: float, hard: bool,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """Relaxed Bernoulli sample sigma((h + log u - log(1-u)) / tau), computed in logit space.

    ``hard`` returns a {0,1} sample with straight-through gradients of the soft sample.
    """
    u = torch.rand(logits.shape, generator=generator, device=logits.device, dtype=logits.dtype)
    u = u.clamp(1e-6, 1 - 1e-6)
    soft = torch.sigmoid((logits + torch.log(u) - torch.log1p(-u)) / temperature)
    if not hard:
        return soft
    return (soft > 0.5).to(soft.dtype) - soft.detach() + soft


class PhangMasker(nn.Module):
    """Maps classifier stage activations to a mask in [0, 1] at the input's size."""

    def __init__(self, config: MaskerConfig) -> None:
        super().__init__()
        if not config.stage_channels:
            raise ValueError("MaskerConfig.stage_channels must be set from the classifier")
        self.config = config
        c = config.hidden_channels
        self.reducers = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(config.stage_channels[s - 1], c, kernel_size=1, bias=False),
                nn.BatchNorm2d(c),
                nn.ReLU(inplace=True),
            )
            for s in config.stages
        )
        self.head = nn.Conv2d(c * len(config.stages), 1, kernel_size=3, padding=1)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / n))
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def mask_logits(self, stages: list[torch.Tensor], input_size: tuple[int, int]) -> torch.Tensor:
        """Logits at the common resolution (B x 1 x H/4 x W/4) from *all* classifier stages."""
        h, w = input_size
        size = (max(1, h // self.config.resolution_divisor), max(1, w // self.config.resolution_divisor))
        feats = []
        for reducer, s in zip(self.reducers, self.config.stages):
            a = reducer(stages[s - 1].detach())
            feats.append(F.interpolate(a, size=size, mode="bilinear", align_corners=False))
        return self.head(torch.cat(feats, dim=1))

    def forward(self, stages: list[torch.Tensor], input_size: tuple[int, int],
                generator: torch.Generator | None = None) -> torch.Tensor:
        """Mask in [0, 1], B x 1 x H x W, with 1 = salient (kept)."""
        logits = self.mask_logits(stages, input_size)
        cfg = self.config
        if cfg.gumbel == "off":
            small = torch.sigmoid(logits)
        elif self.training:
            small = binary_concrete(logits, cfg.gumbel_temperature, cfg.gumbel == "hard", generator)
        elif cfg.gumbel == "hard":
            small = (logits > 0).to(logits.dtype)
        else:
            small = torch.sigmoid(logits / cfg.gumbel_temperature)
        if cfg.final_upsample == "nearest":
            return F.interpolate(small, size=input_size, mode="nearest")
        return F.interpolate(small, size=input_size, mode="bilinear", align_corners=False)


@register_masker_kind("phang", summary="Phang et al.'s masker: one label-agnostic mask", config=MaskerConfig)
class PhangKind(MaskerKind):
    """Phang et al.'s masker: one mask for every label, read from all the classifier's stages."""

    def build(self, config: dict) -> PhangMasker:
        return PhangMasker(MaskerConfig.from_dict(config))

    def explain(self, masker: PhangMasker, classifier: nn.Module, stages: list[torch.Tensor],
                head: torch.Tensor | None, size: tuple[int, int], labels: list[int]) -> tuple[torch.Tensor, bool]:
        return masker(stages, size)[:, 0], False
