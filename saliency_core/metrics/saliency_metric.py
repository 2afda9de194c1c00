"""The Saliency Metric of Dabkowski & Gal (2017): a small box that still classifies well is good.

For each mask: take its WSOL box (binarise at the mean, largest component, tightest box), crop the
normalised image to the box, resize it back to the input size (bicubic) and classify it:
SM = log(max(a, 0.05)) - log p(label), a = box area / image area. Lower is better.
Phang et al. scored the crops with the *original* classifier; pass any classifier here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from saliency_core.metrics.wsol import box_area

MIN_AREA = 0.05


@dataclass
class SaliencyMetricResult:
    score: torch.Tensor  # [N] log(max(area, 0.05)) - log p
    area: torch.Tensor  # [N] box area / image area
    prob: torch.Tensor  # [N] probability of the label on the crop


def crop_and_resize(x: torch.Tensor, boxes: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
    """Crops of ``x`` (1 or N x 3 x h x w) to inclusive ``boxes`` (N x 4), each resized to ``size``
    (default x's size) with bicubic interpolation -> N x 3 x H x W."""
    n = boxes.shape[0]
    h, w = x.shape[-2:]
    size = size or (h, w)
    crops = []
    for i in range(n):
        img = x[i if x.shape[0] > 1 else 0]
        x0, y0, x1, y1 = (int(v) for v in boxes[i])
        x0, y0 = max(0, x0), max(0, y0)
        x1, y1 = min(w - 1, x1), min(h - 1, y1)
        if x1 < x0 or y1 < y0:
            crops.append(torch.zeros(1, 3, *size, dtype=x.dtype, device=x.device))
            continue
        crop = img[:, y0:y1 + 1, x0:x1 + 1].unsqueeze(0)
        crops.append(F.interpolate(crop, size=size, mode="bicubic", align_corners=False))
    return torch.cat(crops)


def saliency_metric_from_probs(area: torch.Tensor, prob: torch.Tensor, min_area: float = MIN_AREA) -> torch.Tensor:
    """log(max(area, min_area)) - log(p), with p clamped away from 0."""
    area = torch.as_tensor(area, dtype=torch.float64).clamp(min_area, 1.0)
    prob = torch.as_tensor(prob, dtype=torch.float64).clamp_min(1e-30)
    return (area.log() - prob.log()).float()


@torch.no_grad()
def saliency_metric(classifier: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, boxes: torch.Tensor,
                    labels: list[int], min_area: float = MIN_AREA,
                    probs_fn: Callable[[torch.Tensor], torch.Tensor] | None = None) -> SaliencyMetricResult:
    """Saliency Metric of each (box, label) pair on image(s) ``x`` in one batched forward.

    One box for several labels (a label-agnostic mask) is cropped and classified once.
    """
    h, w = x.shape[-2:]
    if boxes.shape[0] not in (1, len(labels)):
        raise ValueError(f"{boxes.shape[0]} boxes for {len(labels)} labels (give one per label, or one)")
    crops = crop_and_resize(x, boxes)
    logits = classifier(crops)
    probs = probs_fn(logits) if probs_fn else logits.float().softmax(-1)
    lab = torch.as_tensor([int(v) for v in labels], device=probs.device)
    if boxes.shape[0] == 1:
        p = probs[0, lab].cpu()
        boxes = boxes.expand(len(labels), 4)
    else:
        p = probs.gather(1, lab.view(-1, 1))[:, 0].cpu()
    area = box_area(boxes.cpu()).double() / (h * w)
    return SaliencyMetricResult(score=saliency_metric_from_probs(area, p, min_area), area=area.float(), prob=p)
