"""Validation of a masker during training, on the held-out (class-disjoint) images, after each epoch.

:func:`validate` scores a label-agnostic masker (Phang et al., conditional at its default setting) as its masks
are used: masked-in and masked-out images on gray. :func:`validate_label` scores a label-conditioned masker with
the insertion figures its objective estimates (completeness and soundness of Gupta et al.) for two labels per
image, the top-1 and the one at rank ``top_k``. Both are deterministic (no draws) and leave the modules' train /
eval modes as they found them.
"""
from __future__ import annotations

import contextlib
from typing import Any, Callable

import torch
from torch.utils.data import DataLoader

from saliency_core.classifiers import Classifier
from saliency_core.infill.composite import composite
from saliency_core.objectives import entropy

#: Shares of the pixels kept in :func:`validate_label`'s insertion estimate (midpoints of 4 equal steps).
VAL_FRACTIONS = (0.125, 0.375, 0.625, 0.875)


@torch.no_grad()
def validate(classifier: Classifier, masker: torch.nn.Module, loader: DataLoader,
             reference: Classifier | None = None, autocast: Callable[[], Any] = contextlib.nullcontext,
             channels_last: bool = False) -> dict[str, float]:
    """Validation figures of a masker on held-out images (gray fill, as the masks are used).

    ``clean_acc``, ``in_acc`` / ``out_acc`` (masked-in / masked-out top-1 accuracy), ``in_prob`` /
    ``out_prob`` (mean softmax probability of the true class), ``out_entropy`` (masked-out) and
    ``mask_mean``, all judged by ``classifier`` (whose activations the masker reads), and ``sm``, the
    saliency metric of Dabkowski & Gal computed on the masked-in image instead of a box crop,
    mean of log(max(area, 0.05)) - log p(y | x*m) (lower is better: small masks that keep the class). With a
    ``reference`` classifier (CA: the original, frozen one) the same figures judged by it are added
    with the prefix ``ref_``.
    """
    modes = (classifier.training, masker.training)
    classifier.eval()
    masker.eval()
    judges = {"": classifier, **({"ref_": reference} if reference is not None else {})}
    keys = ("clean_acc", "in_acc", "out_acc", "in_prob", "out_prob", "out_entropy", "sm")
    tot = {f"{p}{k}": 0.0 for p in judges for k in keys}
    tot["mask_mean"] = 0.0
    device = next(classifier.parameters()).device
    n = 0
    for x01, y in loader:
        x = classifier.preprocessing.normalize(x01.to(device))
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = y.to(device)
        with autocast():
            clean = classifier.forward_features(x)
            m = masker([s.float() for s in clean.stages], tuple(x.shape[-2:])).float()
        batch = torch.cat([x, composite(x, m), composite(x, 1 - m)])
        for prefix, judge in judges.items():
            with autocast():
                logits = judge(batch).float()
            lc, li, lo = logits.chunk(3)
            tot[f"{prefix}clean_acc"] += (lc.argmax(-1) == y).sum().item()
            tot[f"{prefix}in_acc"] += (li.argmax(-1) == y).sum().item()
            tot[f"{prefix}out_acc"] += (lo.argmax(-1) == y).sum().item()
            tot[f"{prefix}in_prob"] += li.softmax(-1).gather(1, y[:, None]).sum().item()
            tot[f"{prefix}out_prob"] += lo.softmax(-1).gather(1, y[:, None]).sum().item()
            tot[f"{prefix}out_entropy"] += entropy(lo).sum().item()
            area = m.flatten(1).mean(1).clamp(0.05, 1.0)
            tot[f"{prefix}sm"] += (area.log() - li.log_softmax(-1).gather(1, y[:, None])[:, 0]).sum().item()
        tot["mask_mean"] += m.flatten(1).mean(1).sum().item()
        n += x.shape[0]
    classifier.train(modes[0])
    masker.train(modes[1])
    return {k: v / max(n, 1) for k, v in tot.items()}


def keep_top(masks: torch.Tensor, fraction: float) -> torch.Tensor:
    """0/1 maps keeping the top ``fraction`` of each mask's pixels (K x 1 x H x W), as the insertion curve does."""
    flat = masks.flatten(1)
    k = max(1, min(flat.shape[1], round(fraction * flat.shape[1])))
    threshold = flat.topk(k, dim=1).values[:, -1:]
    return (flat >= threshold).float().view_as(masks)


@torch.no_grad()
def validate_label(classifier: Classifier, masker: torch.nn.Module, loader: DataLoader, top_k: int,
                   eps1: float = 0.01, eps2: float = 0.001, autocast: Callable[[], Any] = contextlib.nullcontext,
                   channels_last: bool = False) -> dict[str, float]:
    """Validation figures of a label-conditioned masker on held-out images, for the labels of rank 1 and ``top_k``.

    Per label a: f = p(a|x); g = mean of p(a | top-t pixels kept, the rest gray) over t in :data:`VAL_FRACTIONS`
    (the insertion AUC the training objective estimates); ``completeness`` = min(max(g, eps1) / f, 1) and
    ``soundness`` = min(max(f, eps2) / g, 1), as means and for the top-1 label alone (``top1_*``); ``top1_in_prob``
    / ``top1_out_prob``: p(a) with the soft mask applied / removed on gray; ``mask_mean`` and ``mask_std`` (a flat
    mask says nothing); ``top1_clean_acc``: the classifier's own top-1 accuracy on these images.
    """
    from saliency_core.maskers.label import output_layer_weights

    modes = (classifier.training, masker.training)
    classifier.eval()
    masker.eval()
    device = next(classifier.parameters()).device
    codes_all = output_layer_weights(classifier)
    keys = ("completeness", "soundness", "top1_completeness", "top1_soundness", "top1_in_prob", "top1_out_prob",
            "mask_mean", "mask_std", "top1_clean_acc")
    tot = dict.fromkeys(keys, 0.0)
    n = 0
    for x01, y in loader:
        x = classifier.preprocessing.normalize(x01.to(device))
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        b, size = x.shape[0], tuple(x.shape[-2:])
        with autocast():
            clean = classifier.forward_features(x)
        probs = clean.logits.float().softmax(-1)
        ranks = probs.topk(min(top_k, probs.shape[1]), dim=1).indices
        labels = torch.stack([ranks[:, 0], ranks[:, -1]], dim=1).flatten()             # 2B: (top-1, rank k) per image
        idx = torch.arange(b, device=device).repeat_interleave(2)
        with autocast():
            m = masker([s.float() for s in clean.stages], size, codes_all[labels], idx,
                       head=clean.head.float() if clean.head is not None else None).float()   # 2B x 1 x H x W
        keeps = torch.cat([keep_top(m, t) for t in VAL_FRACTIONS])                     # T*2B x 1 x H x W
        xs = x[idx]
        batch = torch.cat([composite(xs.repeat(len(VAL_FRACTIONS), 1, 1, 1), keeps), composite(xs, m),
                           composite(xs, 1 - m)])
        with autocast():
            p_all = classifier(batch).float().softmax(-1)
        lab = labels.repeat(len(VAL_FRACTIONS) + 2)
        p = p_all.gather(1, lab[:, None])[:, 0].view(len(VAL_FRACTIONS) + 2, 2 * b)
        g, p_in, p_out = p[:-2].mean(0), p[-2], p[-1]
        f = probs[idx, labels].clamp_min(1e-12)
        comp = torch.clamp(torch.clamp(g, min=eps1) / f, max=1.0)
        sound = torch.clamp(torch.clamp(f, min=eps2) / g.clamp_min(1e-12), max=1.0)
        top1 = torch.arange(0, 2 * b, 2, device=device)
        tot["completeness"] += comp.view(b, 2).mean(1).sum().item()
        tot["soundness"] += sound.view(b, 2).mean(1).sum().item()
        tot["top1_completeness"] += comp[top1].sum().item()
        tot["top1_soundness"] += sound[top1].sum().item()
        tot["top1_in_prob"] += p_in[top1].sum().item()
        tot["top1_out_prob"] += p_out[top1].sum().item()
        tot["mask_mean"] += m.flatten(1).mean(1).view(b, 2).mean(1).sum().item()
        tot["mask_std"] += m.flatten(1).std(1).view(b, 2).mean(1).sum().item()
        tot["top1_clean_acc"] += (ranks[:, 0] == y.to(device)).sum().item()
        n += b
    classifier.train(modes[0])
    masker.train(modes[1])
    return {k: v / max(n, 1) for k, v in tot.items()}
