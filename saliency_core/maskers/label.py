"""A label-conditioned masker: sound per-label masks for any set of labels in one batched pass.

Same input as the Phang masker (the classifier's detached stage activations), plus the target label.
The label enters as the classifier's own output-layer weight vector for that class, w_a (so labels
never seen in training still get a meaningful code), projected to FiLM scales and shifts that modulate
the decoder: each selected stage -> 1x1 conv (64) -> BN -> ReLU -> upsample to input/4 -> concat ->
FiLM(w_a) -> ReLU -> 3x3 conv (64) -> ReLU -> 1x1 conv -> logits, upsampled bilinearly by 4 (the
"upsampling s = 4" of Gupta et al.).

``film_at="hidden"`` moves the FiLM after the 3x3 conv (concat -> 3x3 conv -> FiLM(w_a) -> ReLU -> 1x1
conv): the 3x3 conv then runs once per image instead of once per label, so k labels cost k 1x1 convs.

``label_map=True`` (``hidden`` layout only) also feeds the classifier's own class activation map of the
label, w_a . head(x) (centred; the classifier's pre-pool map, whose average is the label's logit), into
the FiLM'd hidden layer and straight onto the logits: a label-specific *spatial* signal, so that on an
image with two objects each label's mask can find its own. The skip starts at 1, so an untrained masker
ranks pixels as the CAM does.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from saliency_core.errors import OptionError
from saliency_core.maskers.base import MaskerKind, check_stages, mapping, register_masker_kind
from saliency_core.options import check_options, option
from saliency_core.vocabulary import FILM_POSITIONS


@dataclass
class LabelMaskerConfig:
    """Architecture of the label-conditioned masker (stored in its checkpoints)."""

    stages: tuple[int, ...] = option((4, 5), help="the classifier stages it reads (1 = shallow .. n = deep)")
    hidden_channels: int = option(64, help="channels of the decoder", low=1, high=1024)
    resolution_divisor: int = option(4, help="the mask is made at input/d and upsampled", choices=(1, 2, 4, 8, 16, 32))
    stage_channels: list[int] = option(help="channels of each classifier stage (filled from the classifier)",
                                       default_factory=list)
    label_dim: int = option(1280, help="length of the classifier's output-layer weight vectors", low=1, high=100_000)
    film_at: str = option("input", help="where the label modulates the decoder: before the 3x3 conv or after it",
                          choices=FILM_POSITIONS)
    label_map: bool = option(False, help="also read the label's class activation map (needs film_at=hidden)")

    def __post_init__(self) -> None:
        check_options(self, "label masker config")
        if self.label_map and self.film_at != "hidden":
            raise OptionError("label masker config: label_map needs film_at='hidden'")
        self.stages = check_stages(self.stages, self.stage_channels, "label masker config")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["stages"] = list(self.stages)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "LabelMaskerConfig":
        return cls(**{k: v for k, v in mapping(d, "label masker config").items() if k in cls.__dataclass_fields__})


def output_layer_weights(classifier: nn.Module) -> torch.Tensor:
    """num_classes x D weight matrix of the classifier's final linear layer (timm or torchvision)."""
    model = getattr(classifier, "model", classifier)
    head = model.get_classifier() if hasattr(model, "get_classifier") else getattr(model, "fc", None)
    if not isinstance(head, nn.Linear):
        raise ValueError("the label-conditioned masker needs a classifier whose last layer is nn.Linear")
    return head.weight.detach()


class LabelMasker(nn.Module):
    """``masker(stages, input_size, label_codes, image_index) -> K x 1 x H x W`` masks in [0, 1].

    ``label_codes`` (K x D) are the output-layer weight rows of the K requested labels and
    ``image_index`` (K) says which image of the batch each label belongs to, so the top-k labels of
    many images run in one pass while the stage activations are computed once per image.
    """

    def __init__(self, config: LabelMaskerConfig) -> None:
        super().__init__()
        if not config.stage_channels:
            raise ValueError("LabelMaskerConfig.stage_channels must be set from the classifier")
        self.config = config
        c = config.hidden_channels
        self.reducers = nn.ModuleList(
            nn.Sequential(nn.Conv2d(config.stage_channels[s - 1], c, 1, bias=False), nn.BatchNorm2d(c),
                          nn.ReLU(inplace=True))
            for s in config.stages
        )
        width = c * len(config.stages)
        film_width = c if config.film_at == "hidden" else width
        self.code = nn.Sequential(nn.LayerNorm(config.label_dim), nn.Linear(config.label_dim, 2 * film_width))
        nn.init.zeros_(self.code[1].weight)
        nn.init.zeros_(self.code[1].bias)
        if config.film_at == "hidden":
            self.shared = nn.Conv2d(width, c, 3, padding=1)
            self.decoder = nn.Conv2d(c, 1, 1)
        else:
            self.decoder = nn.Sequential(nn.Conv2d(width, c, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(c, 1, 1))
        if config.label_map:
            self.map_in = nn.Parameter(torch.zeros(c))      # CAM -> hidden channels
            self.map_skip = nn.Parameter(torch.ones(1))     # CAM -> logits

    def features(self, stages: list[torch.Tensor], input_size: tuple[int, int]) -> torch.Tensor:
        """Label-independent features at input/4, computed once per image."""
        h, w = input_size
        size = (max(1, h // self.config.resolution_divisor), max(1, w // self.config.resolution_divisor))
        feats = [F.interpolate(r(stages[s - 1].detach()), size=size, mode="bilinear", align_corners=False)
                 for r, s in zip(self.reducers, self.config.stages)]
        return torch.cat(feats, dim=1)

    def label_maps(self, head: torch.Tensor | None, label_codes: torch.Tensor, image_index: torch.Tensor,
                   size: tuple[int, int]) -> torch.Tensor:
        """K x 1 x h x w class activation maps w_a . head (centred over space), at the decoder's resolution."""
        if head is None or head.dim() != 4 or head.shape[1] != label_codes.shape[1]:
            raise ValueError("this label masker reads class activation maps: the classifier must expose a "
                             f"{label_codes.shape[1]}-channel pre-pool map (ClassifierOutput.head)")
        cam = torch.einsum("kd,kdhw->khw", label_codes.float(), head.detach().float()[image_index])[:, None]
        cam = cam - cam.mean(dim=(2, 3), keepdim=True)
        return F.interpolate(cam, size=size, mode="bilinear", align_corners=False)

    def mask_logits(self, feats: torch.Tensor, label_codes: torch.Tensor, image_index: torch.Tensor,
                    head: torch.Tensor | None = None) -> torch.Tensor:
        gamma, beta = self.code(label_codes).chunk(2, dim=1)
        if self.config.film_at == "hidden":
            feats = self.shared(feats)  # once per image, shared by its labels
        f = feats[image_index] * (1 + gamma[..., None, None]) + beta[..., None, None]
        if not self.config.label_map:
            return self.decoder(F.relu(f))
        cam = self.label_maps(head, label_codes, image_index, tuple(feats.shape[-2:]))
        return self.decoder(F.relu(f + self.map_in[:, None, None] * cam)) + self.map_skip * cam

    def forward(self, stages: list[torch.Tensor], input_size: tuple[int, int], label_codes: torch.Tensor,
                image_index: torch.Tensor | None = None, head: torch.Tensor | None = None) -> torch.Tensor:
        if image_index is None:
            image_index = torch.zeros(label_codes.shape[0], dtype=torch.long, device=label_codes.device)
        logits = self.mask_logits(self.features(stages, input_size), label_codes, image_index, head)
        return torch.sigmoid(F.interpolate(logits, size=input_size, mode="bilinear", align_corners=False))


@register_masker_kind("label", summary="label-conditioned masker: one mask per label", config=LabelMaskerConfig)
class LabelKind(MaskerKind):
    """Gupta et al.'s label-conditioned masker: one mask per label, the label given as its output-layer weights."""

    def build(self, config: dict) -> LabelMasker:
        return LabelMasker(LabelMaskerConfig.from_dict(config))

    def explain(self, masker: LabelMasker, classifier: nn.Module, stages: list[torch.Tensor],
                head: torch.Tensor | None, size: tuple[int, int], labels: list[int]) -> tuple[torch.Tensor, bool]:
        codes = output_layer_weights(classifier)[torch.as_tensor(labels, device=stages[0].device)]
        return masker(stages, size, codes, head=head)[:, 0], True
