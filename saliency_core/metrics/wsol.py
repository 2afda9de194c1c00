"""Weakly-supervised object localisation (WSOL) scores of masks against ground-truth boxes.

Protocol of Phang et al. (``score_bboxes.py``) with its bugs fixed: binarise each mask at alpha x its
mean (``mask > mean``), keep the largest 4-connected component, take its tightest box. Boxes are
``(x0, y0, x1, y1)`` pixel indices, *inclusive* on both ends (Phang's script used the last index as
an exclusive end: an off-by-one); an all-zero binary mask gives the whole image (Phang's gave
uninitialised memory). IoU uses inclusive areas and clipped ground truth (Phang's union used the
unclipped ground-truth area). A box counts as localised when IoU >= 0.5 (the ILSVRC rule; Phang's
script used > 0.5).

- LE (localisation error) = 1 - max over GT boxes of 1[IoU >= 0.5].
- OM (official metric) = 1 - max 1[IoU >= 0.5] * 1[top-1 classification correct].
- Continuous F1 (soft mask m, GT box G): P = sum(mG) / (sum m + 1e-6), R = sum(mG) / |G|,
  F1 = 2PR / (P + R + 1e-6); F1 = max over boxes, F1a = mean over boxes.
"""
from __future__ import annotations

import math

import numpy as np
import torch

IOU_THRESHOLD = 0.5


def binarize(masks: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """N x h x w masks -> bool, mask > alpha * (per-mask mean)."""
    mean = masks.flatten(1).mean(1).view(-1, 1, 1)
    return masks > alpha * mean


def largest_component(binary: torch.Tensor) -> torch.Tensor:
    """Keep the largest 4-connected component of each N x h x w bool mask (ties: the first found)."""
    from skimage.measure import label

    out = torch.zeros_like(binary, dtype=torch.bool)
    arr = binary.cpu().numpy()
    for i in range(arr.shape[0]):
        lab = label(arr[i], connectivity=1)
        if lab.max() == 0:
            continue
        counts = np.bincount(lab.ravel())
        counts[0] = 0
        out[i] = torch.from_numpy(lab == int(counts.argmax()))
    return out


def tight_boxes(binary: torch.Tensor) -> torch.Tensor:
    """N x h x w bool -> N x 4 long inclusive boxes (x0, y0, x1, y1); empty masks give the whole image."""
    n, h, w = binary.shape
    boxes = torch.tensor([[0, 0, w - 1, h - 1]] * n, dtype=torch.long)
    for i in range(n):
        ys, xs = torch.nonzero(binary[i].cpu(), as_tuple=True)
        if ys.numel():
            boxes[i] = torch.stack([xs.min(), ys.min(), xs.max(), ys.max()])
    return boxes


def mask_boxes(masks: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """The WSOL box of each mask: binarise at alpha x mean, largest component, tightest box."""
    return tight_boxes(largest_component(binarize(masks, alpha)))


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """Inclusive pixel area of N x 4 boxes (0 for degenerate boxes)."""
    b = boxes.long()
    return ((b[:, 2] - b[:, 0] + 1).clamp_min(0) * (b[:, 3] - b[:, 1] + 1).clamp_min(0))


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of inclusive boxes: N x 4 and M x 4 -> N x M."""
    a, b = a.long(), b.long()
    x0 = torch.maximum(a[:, None, 0], b[None, :, 0])
    y0 = torch.maximum(a[:, None, 1], b[None, :, 1])
    x1 = torch.minimum(a[:, None, 2], b[None, :, 2])
    y1 = torch.minimum(a[:, None, 3], b[None, :, 3])
    inter = (x1 - x0 + 1).clamp_min(0) * (y1 - y0 + 1).clamp_min(0)
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return inter.double() / union.clamp_min(1).double()


def clip_boxes(boxes: torch.Tensor, h: int, w: int) -> torch.Tensor:
    b = boxes.long().clone()
    b[:, 0::2] = b[:, 0::2].clamp(0, w - 1)
    b[:, 1::2] = b[:, 1::2].clamp(0, h - 1)
    return b


def box_masks(boxes: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """N x 4 inclusive boxes -> N x h x w float indicator masks."""
    ys = torch.arange(h).view(1, h, 1)
    xs = torch.arange(w).view(1, 1, w)
    b = boxes.long().view(-1, 4, 1, 1)
    return ((xs >= b[:, 0]) & (xs <= b[:, 2]) & (ys >= b[:, 1]) & (ys <= b[:, 3])).float()


def continuous_f1(mask: torch.Tensor, gt_boxes: torch.Tensor) -> torch.Tensor:
    """Continuous F1 of one soft h x w mask against each of G boxes -> [G]."""
    h, w = mask.shape
    g = box_masks(clip_boxes(gt_boxes, h, w), h, w).to(mask.dtype)
    m = mask.cpu().view(1, h, w).double()
    inter = (m * g.double()).flatten(1).sum(1)
    precision = inter / (m.sum() + 1e-6)
    recall = inter / g.double().flatten(1).sum(1).clamp_min(1)
    return 2 * precision * recall / (precision + recall + 1e-6)


def centre_box(h: int, w: int, area: float = 0.5) -> torch.Tensor:
    """The centred box covering ``area`` of the image (sides scaled by sqrt(area)), 1 x 4."""
    s = math.sqrt(area)
    bh, bw = max(1, round(h * s)), max(1, round(w * s))
    y0, x0 = (h - bh) // 2, (w - bw) // 2
    return torch.tensor([[x0, y0, x0 + bw - 1, y0 + bh - 1]])


def whole_box(h: int, w: int) -> torch.Tensor:
    return torch.tensor([[0, 0, w - 1, h - 1]])


def wsol_scores(pred_box: torch.Tensor, mask: torch.Tensor | None, gt_boxes: torch.Tensor, correct: bool,
                iou_threshold: float = IOU_THRESHOLD) -> dict[str, float]:
    """OM, LE, best IoU (and F1, F1a when a soft mask is given) for one image.

    ``pred_box``: 1 x 4 (or 4) inclusive; ``gt_boxes``: G x 4 inclusive, in the mask's pixels.
    """
    if gt_boxes.numel() == 0:
        raise ValueError("an image with no ground-truth box cannot be scored")
    pred_box = pred_box.view(1, 4)
    if mask is not None:
        h, w = mask.shape
        gt = clip_boxes(gt_boxes, h, w)
    else:
        gt = gt_boxes
    iou = box_iou(pred_box, gt)[0]
    hit = bool((iou >= iou_threshold).any())
    out = {"iou": float(iou.max()), "le": float(not hit), "om": float(not (hit and correct))}
    if mask is not None:
        f1 = continuous_f1(mask, gt)
        out.update(f1=float(f1.max()), f1a=float(f1.mean()))
    return out


def scale_boxes(boxes: torch.Tensor, src_size: tuple[int, int], dst_size: tuple[int, int]) -> torch.Tensor:
    """Map inclusive boxes from a (width, height) image to another (width, height) one (whole-image
    resize, as the ``fit`` preprocessing does): pixel edges are scaled, then made inclusive again."""
    sw, sh = src_size
    dw, dh = dst_size
    b = boxes.double()
    x0 = torch.floor(b[:, 0] * dw / sw)
    y0 = torch.floor(b[:, 1] * dh / sh)
    x1 = torch.ceil((b[:, 2] + 1) * dw / sw) - 1
    y1 = torch.ceil((b[:, 3] + 1) * dh / sh) - 1
    out = torch.stack([x0, y0, x1, y1], 1).long()
    return clip_boxes(out, dh, dw)
