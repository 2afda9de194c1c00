"""A class-activation-map prior for the area-conditioned masker's scores (``score_prior: "cam"``).

At a fixed area Grad-CAM's top-a region is a strong baseline (issue 25), and for a network that average-pools a
spatial map into its last linear layer (EfficientNet, ResNet) Grad-CAM's map of the last layer *is* the class
activation map CAM_t = w_t . head (Zhou et al. 2016), free from the clean forward (no backward pass). With the
prior, the area masker's scores are

    s = exp(g_b) * standardise(bilinear(CAM_t)) + decoder(x, setting),

with g_b a learned log-scale per objective branch (starting at 0) and the decoder's last layer starting at zero:
at step 0 the mask at area a is exactly CAM's top-a region, and training moves it only where the objective gains.
t is the classifier's clean top-1 in training and the first explained label at use.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from saliency_core.errors import OptionError
from saliency_core.maskers.area import standardise


def _output_layer(classifier: nn.Module) -> nn.Linear:
    model = getattr(classifier, "model", classifier)
    layer = model.get_classifier() if hasattr(model, "get_classifier") else getattr(model, "fc", None)
    if not isinstance(layer, nn.Linear):
        raise OptionError("score_prior 'cam' needs a classifier whose last layer is linear (nn.Linear)")
    return layer


def head_channels(classifier: nn.Module) -> int:
    """Channels of the map the classifier's last linear layer pools (the CAM's terms)."""
    return _output_layer(classifier).in_features


def class_activation_maps(classifier: nn.Module, head: torch.Tensor | None, labels: torch.Tensor,
                          contributions: bool = False) -> torch.Tensor:
    """B x 1 x h x w maps w_t . head of each row's label t (``labels`` B), at the head's resolution (no gradient);
    with ``contributions`` the B x C x h x w terms w_t,c * head_c that the map sums (what each channel adds)."""
    layer = _output_layer(classifier)
    if head is None or head.dim() != 4 or head.shape[1] != layer.in_features:
        raise OptionError("score_prior 'cam' needs a classifier that exposes the map its last linear layer pools "
                          "(ClassifierOutput.head); this one has none")
    w = layer.weight.detach().float()[labels.to(layer.weight.device).long()]
    if contributions:
        return w[:, :, None, None] * head.detach().float()
    return torch.einsum("bc,bchw->bhw", w, head.detach().float())[:, None]


def prior_for(masker: nn.Module, classifier: nn.Module, head: torch.Tensor | None,
              labels: Sequence[int] | torch.Tensor | None, batch: int | None = None) -> torch.Tensor | None:
    """The prior ``masker`` takes (None when its config has ``score_prior`` "none"): the CAM of ``labels`` (one per
    row, or one for all ``batch`` rows; None or empty: each image's top-1 from the head), head rows repeated to
    ``batch`` when the head has one row (several settings of one image)."""
    if getattr(masker.config, "score_prior", "none") == "none":
        return None
    if head is None:
        return class_activation_maps(classifier, None, torch.zeros(1))  # the one-line refusal
    batch = batch or head.shape[0]
    if head.shape[0] != batch:
        head = head.expand(batch, *head.shape[1:])
    if labels is None or len(labels) == 0:
        layer = _output_layer(classifier)
        labels = layer(head.detach().float().mean(dim=(2, 3)).to(layer.weight.dtype)).argmax(-1)
    labels = torch.as_tensor(labels, device=head.device).view(-1)
    if labels.numel() != batch:
        labels = labels[:1].expand(batch)  # the conditional masker explains one class: the first requested
    return class_activation_maps(classifier, head, labels, getattr(masker.config, "prior_features", 0) > 0)


def training_prior(masker: nn.Module, classifier: nn.Module, clean: Any) -> torch.Tensor | None:
    """The prior of a training or validation batch: the CAM of each image's clean top-1 (``clean`` a
    ClassifierOutput), or None when the masker takes none."""
    return prior_for(masker, classifier, clean.head, clean.logits.argmax(-1))


def attach_prior(masker: nn.Module, heads: nn.ModuleList, branches: int) -> None:
    """Give ``masker`` the learned log-scales of the prior (one per branch, 0: scale 1) and zero the decoder's last
    layers, so that at step 0 the scores are the standardised CAM alone."""
    masker.prior_log_scale = nn.Parameter(torch.zeros(branches))
    for head in heads:
        nn.init.zeros_(head.weight)
        nn.init.zeros_(head.bias)


def add_prior(scores: torch.Tensor, prior: torch.Tensor | None, log_scale: torch.Tensor) -> torch.Tensor:
    """``scores`` (B x 1 x H x W, full resolution) plus exp(``log_scale``) (B) times the standardised ``prior``
    (B x 1 x h x w, or its B x C x h x w contributions, summed) bilinearly upsampled to H x W; one line if the prior
    is missing."""
    if prior is None:
        raise OptionError("this masker starts from a class activation map (score_prior 'cam'): pass prior= (see "
                          "saliency_core.maskers.area_prior.prior_for)")
    if prior.dim() == 3:
        prior = prior[:, None]
    if prior.shape[1] > 1:
        prior = prior.sum(1, keepdim=True)
    cam = F.interpolate(prior.to(scores.dtype), size=scores.shape[-2:], mode="bilinear", align_corners=False)
    return scores + log_scale.exp().view(-1, 1, 1, 1) * standardise(cam)
