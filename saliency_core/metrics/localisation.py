"""A localisation check that needs no annotation: objects pasted at random positions.

Each object image is shrunk to a square patch (``scale`` x the shorter side) and pasted at a
random position on a strongly blurred *other* image, so the pasted square is the only sharp object
and is a known ground-truth box. A good saliency map for the object's class puts its energy
inside that box. Scores per image:

- ``energy``: sum of the mask inside the box / sum of the mask (1 = all inside);
- ``pointing``: the mask's maximum (first pixel in row-major order on ties) lies in the box,
  grown by ``tolerance`` pixels (Zhang et al.'s pointing game uses 15 px at 224);
- ``iou``: IoU of the WSOL box of the mask with the pasted square, and ``hit`` = IoU >= 0.5.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from saliency_core.infill.blur import gaussian_blur
from saliency_core.metrics.wsol import IOU_THRESHOLD, box_iou, box_masks, mask_boxes


def paste_objects(objects01: torch.Tensor, backgrounds01: torch.Tensor, scale: float = 0.5,
                  blur_sigma: float = 8.0, generator: torch.Generator | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Paste each object (N x 3 x H x W in [0, 1]) as a square patch onto its blurred background.

    Returns the composites (N x 3 x H x W, [0, 1]) and the inclusive boxes (N x 4) of the patches.
    """
    if objects01.shape != backgrounds01.shape:
        raise ValueError("objects and backgrounds must have the same shape")
    if not 0 < scale <= 1:
        raise ValueError(f"scale must be in (0, 1], got {scale}")
    n, _, h, w = objects01.shape
    side = max(1, int(round(scale * min(h, w))))
    out = gaussian_blur(backgrounds01, blur_sigma).clamp(0, 1).clone()
    patches = F.interpolate(objects01, size=(side, side), mode="bilinear", align_corners=False, antialias=True)
    ys = torch.randint(0, h - side + 1, (n,), generator=generator)
    xs = torch.randint(0, w - side + 1, (n,), generator=generator)
    boxes = torch.zeros(n, 4, dtype=torch.long)
    for i in range(n):
        y, x = int(ys[i]), int(xs[i])
        out[i, :, y:y + side, x:x + side] = patches[i].clamp(0, 1)
        boxes[i] = torch.tensor([x, y, x + side - 1, y + side - 1])
    return out, boxes


def energy_in_box(masks: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Share of each mask's total inside its box: N x h x w, N x 4 -> [N] (0 for an all-zero mask)."""
    h, w = masks.shape[-2:]
    inside = box_masks(boxes.cpu(), h, w).to(masks.device, masks.dtype)
    tot = masks.flatten(1).sum(1)
    return torch.where(tot > 0, (masks * inside).flatten(1).sum(1) / tot.clamp_min(1e-12), torch.zeros_like(tot))


def pointing_game(masks: torch.Tensor, boxes: torch.Tensor, tolerance: int = 0) -> torch.Tensor:
    """Whether each mask's arg-max (first in row-major order) falls in its box grown by ``tolerance``."""
    h, w = masks.shape[-2:]
    idx = masks.flatten(1).argmax(1).cpu()  # torch returns the first maximal index
    ys, xs = idx // w, idx % w
    b = boxes.cpu().long()
    return ((xs >= b[:, 0] - tolerance) & (xs <= b[:, 2] + tolerance)
            & (ys >= b[:, 1] - tolerance) & (ys <= b[:, 3] + tolerance))


def localisation_scores(masks: torch.Tensor, boxes: torch.Tensor, tolerance: int = 0) -> dict[str, torch.Tensor]:
    """Energy in box, pointing game, WSOL-box IoU and hit (IoU >= 0.5) per mask."""
    pred = mask_boxes(masks.detach().cpu())
    iou = box_iou(pred, boxes.cpu()).diagonal().float()
    return {"energy": energy_in_box(masks.detach(), boxes).cpu(),
            "pointing": pointing_game(masks.detach(), boxes, tolerance).float(),
            "iou": iou, "hit": (iou >= IOU_THRESHOLD).float()}
