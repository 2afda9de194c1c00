"""Insertion and deletion curves (Petsiuk et al., RISE) and their area under the curve.

Pixels are ranked by the mask, highest first; ties keep the pixel order (row-major index), so the
ranking is deterministic. At step ``j`` of ``S`` the top ``round(j / S * N)`` pixels of the image
(``N = h * w``) are *inserted* into the fill (insertion) or *removed* from the image and replaced by
the fill (deletion); the classifier's probability of each label is read at every step. The fill
defaults to 0 in the classifier's normalised space (gray, as Gupta et al. evaluate), but any
``1 x 3 x h x w`` tensor (a blurred image, any infiller's output) can be given.

All steps of all labels go through the classifier together, in batches of ``batch_size``, and
identical images are sent only once: step 0 and step ``S`` are the same for every label, and a
mask shared by all labels (a label-agnostic method) needs only ``S + 1`` forwards in all.

AUC is the trapezoidal area under probability vs fraction of pixels (in [0, 1]). Gupta et al.'s
script instead averages 28 points without the empty image (``k = 1792 j``, ``j = 1..28``); with
many steps the two agree closely.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from saliency_core.progress import ProgressFn

CURVE_MODES = ("insertion", "deletion")
ProbsFn = Callable[[torch.Tensor], torch.Tensor]


class CurveError(ValueError):
    """Inputs to a curve computation that do not fit together."""


@dataclass
class CurveResult:
    """Probabilities along an insertion (or deletion) curve, one row per label.

    ``fractions``: [S+1] fraction of pixels inserted (or removed), 0 .. 1.
    ``probs``: [K, S+1] probability of each label at each step. ``auc``: [K] trapezoidal area.
    ``clean_probs``: [C] full class probabilities of the unmasked image (a by-product: it is one of
    the curve's points), or None.
    """

    fractions: torch.Tensor
    probs: torch.Tensor
    auc: torch.Tensor
    mode: str = "insertion"
    clean_probs: torch.Tensor | None = None
    clean_logits: torch.Tensor | None = None  # [C] the classifier's raw output on the unmasked image
    fill_logits: torch.Tensor | None = None  # [C] ... on the fill alone (both: to pass to a later call)


def pixel_ranks(masks: torch.Tensor) -> torch.Tensor:
    """Rank of every pixel (0 = most salient) per mask, ``masks`` K x h x w -> K x (h*w) long.

    Ties are broken by the pixel's row-major index (the earlier pixel ranks first).
    """
    flat = masks.reshape(masks.shape[0], -1).float()
    order = torch.argsort(-flat, dim=1, stable=True)
    ranks = torch.empty_like(order)
    ar = torch.arange(flat.shape[1], device=flat.device).expand_as(order)
    ranks.scatter_(1, order, ar)
    return ranks


def step_counts(num_pixels: int, steps: int) -> torch.Tensor:
    """Number of pixels inserted at each of the ``steps + 1`` points: round(j / S * N), j = 0..S."""
    j = torch.arange(steps + 1, dtype=torch.float64)
    return torch.round(j * num_pixels / steps).long()


def curve_auc(fractions: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    """Trapezoidal area under ``probs`` (K x P) against ``fractions`` (P)."""
    return torch.trapezoid(probs, fractions.to(probs.dtype), dim=-1)


def softmax_probs(logits: torch.Tensor) -> torch.Tensor:
    """The default probabilities: softmax over all the classifier's classes."""
    return logits.float().softmax(-1)


def restricted_softmax(label_set: list[int] | torch.Tensor) -> ProbsFn:
    """Probabilities from a softmax over ``label_set`` only (Gupta et al.'s ImageNet runs); other
    classes get probability 0."""
    idx = torch.as_tensor(label_set, dtype=torch.long)
    if idx.numel() == 0:
        raise CurveError("the restricted label set is empty")

    def fn(logits: torch.Tensor) -> torch.Tensor:
        i = idx.to(logits.device)
        out = torch.zeros_like(logits, dtype=torch.float32)
        out[:, i] = logits[:, i].float().softmax(-1)
        return out

    return fn


def _group_identical(masks: torch.Tensor) -> list[int]:
    """Index of the first identical mask for each mask (label-agnostic repeats are computed once)."""
    first: list[int] = []
    for k in range(masks.shape[0]):
        match = next((first[j] for j in range(k) if first[j] == j and torch.equal(masks[j], masks[k])), k)
        first.append(match)
    return first


def _check(x: torch.Tensor, masks: torch.Tensor, labels: list[int], fill: torch.Tensor | None, steps: int,
           mode: str) -> None:
    if x.dim() != 4 or x.shape[0] != 1 or x.shape[1] != 3:
        raise CurveError(f"x must be 1 x 3 x h x w, got {tuple(x.shape)}")
    if masks.dim() == 4 and masks.shape[1] == 1:
        raise CurveError("masks must be K x h x w (squeeze the channel dimension)")
    if masks.dim() != 3 or tuple(masks.shape[-2:]) != tuple(x.shape[-2:]):
        raise CurveError(f"masks must be K x h x w at x's size {tuple(x.shape[-2:])}, got {tuple(masks.shape)}")
    if not labels:
        raise CurveError("no label given")
    if masks.shape[0] not in (1, len(labels)):
        raise CurveError(f"{masks.shape[0]} masks for {len(labels)} labels (give one per label, or one shared)")
    if fill is not None and tuple(fill.shape) != tuple(x.shape):
        raise CurveError(f"fill must have x's shape {tuple(x.shape)}, got {tuple(fill.shape)}")
    if steps < 1:
        raise CurveError(f"steps must be >= 1, got {steps}")
    if mode not in CURVE_MODES:
        raise CurveError(f"mode must be one of {CURVE_MODES}, got '{mode}'")


@torch.no_grad()
def insertion_curves(
    classifier: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    masks: torch.Tensor,
    labels: list[int],
    steps: int = 32,
    fill: torch.Tensor | None = None,
    mode: str = "insertion",
    batch_size: int = 64,
    probs_fn: ProbsFn | None = None,
    progress: ProgressFn | None = None,
    clean_logits: torch.Tensor | None = None,
    fill_logits: torch.Tensor | None = None,
) -> CurveResult:
    """Insertion (or deletion) curves of every label under its mask, all steps batched together.

    ``x``: 1 x 3 x h x w normalised; ``masks``: K x h x w (one per label) or 1 x h x w (shared);
    ``labels``: K class indices; ``fill``: 1 x 3 x h x w (default zeros = gray).
    ``clean_logits`` / ``fill_logits``: the classifier's output (C or 1 x C) on ``x`` / on ``fill``, when the
    caller has them (a curve's two end points do not depend on the mask): those images are not sent again, so a
    new mask of the same image costs ``S - 1`` images per distinct mask. The result carries both for next time.
    """
    labels = [int(v) for v in labels]
    _check(x, masks, labels, fill, steps, mode)
    probs_fn = probs_fn or softmax_probs
    h, w = x.shape[-2:]
    n_pix = h * w
    masks = masks.to(x.device)
    fill = torch.zeros_like(x) if fill is None else fill.to(x.device, x.dtype)
    counts = step_counts(n_pix, steps).to(x.device)
    fractions = counts.double().div(n_pix).float().cpu()

    shared = masks.shape[0] == 1
    first = [0] * len(labels) if shared else _group_identical(masks)
    groups = sorted(set(first))
    ranks = pixel_ranks(masks[groups]).view(len(groups), h, w)

    # unique images: (group, step); step 0 and S are the same image for every group
    jobs: list[tuple[int, int]] = [(-1, 0), (-1, steps)] + [(g, j) for g in range(len(groups))
                                                             for j in range(1, steps)]
    slot = {job: i for i, job in enumerate(jobs)}
    clean_step = steps if mode == "insertion" else 0
    fill_step = steps - clean_step
    known = {(-1, clean_step): clean_logits, (-1, fill_step): fill_logits}
    known = {job: v.detach().reshape(1, -1).float().cpu() for job, v in known.items() if v is not None}
    todo = [job for job in jobs if job not in known]
    raw: dict[tuple[int, int], torch.Tensor] = dict(known)
    outputs: list[torch.Tensor] = []
    for start in range(0, len(todo), batch_size):
        chunk = todo[start:start + batch_size]
        gi = torch.tensor([max(g, 0) for g, _ in chunk], device=x.device)
        cnt = counts[torch.tensor([j for _, j in chunk], device=x.device)]
        top = (ranks[gi] < cnt.view(-1, 1, 1)).unsqueeze(1).to(x.dtype)  # B x 1 x h x w, 1 = in the top
        keep = top if mode == "insertion" else 1.0 - top
        batch = x * keep + fill * (1.0 - keep)
        logits = classifier(batch)
        for i, job in enumerate(chunk):
            if job[0] == -1:
                raw[job] = logits[i:i + 1].detach().float().cpu()
        outputs.append(probs_fn(logits).float().cpu())
        if progress is not None:
            done = min(start + batch_size, len(todo))
            progress(done / len(todo), f"{mode} curves: {done}/{len(todo)} images")
    computed = torch.cat(outputs) if outputs else None
    rows_of = {job: i for i, job in enumerate(todo)}
    all_probs = torch.cat([computed[rows_of[job]:rows_of[job] + 1] if job in rows_of
                           else probs_fn(known[job]).float().cpu() for job in jobs])  # J x C, in ``jobs`` order

    group_of = {g: i for i, g in enumerate(groups)}
    probs = torch.empty(len(labels), steps + 1)
    for k, label in enumerate(labels):
        g = group_of[first[k]]
        rows = [slot[(-1, 0)]] + [slot[(g, j)] for j in range(1, steps)] + [slot[(-1, steps)]]
        probs[k] = all_probs[rows, label]
    clean = all_probs[slot[(-1, clean_step)]]
    return CurveResult(fractions=fractions, probs=probs, auc=curve_auc(fractions, probs), mode=mode,
                       clean_probs=clean, clean_logits=raw[(-1, clean_step)][0],
                       fill_logits=raw[(-1, fill_step)][0])


def deletion_curves(classifier: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, masks: torch.Tensor,
                    labels: list[int], **kwargs) -> CurveResult:
    """Deletion curves: the most salient pixels are removed first (lower AUC is better)."""
    return insertion_curves(classifier, x, masks, labels, mode="deletion", **kwargs)
