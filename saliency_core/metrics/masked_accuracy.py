"""Accuracy of masked-in, masked-out and infilled masked-out images under several classifiers.

CASM's multi-classifier check: a mask that really finds the object keeps it classifiable when
masked in and makes it unclassifiable when masked out, whichever classifier looks (not only the
one the masker was trained against). Views (gray = 0 in normalised space):
``clean`` x; ``masked_in`` x m; ``masked_out`` x (1 - m); ``infilled_out`` x (1 - m) + fill m.
"""
from __future__ import annotations

from typing import Callable

import torch

from saliency_core.infill.composite import composite

VIEWS = ("clean", "masked_in", "masked_out", "infilled_out")


def masked_views(x: torch.Tensor, masks: torch.Tensor, infiller: Callable | None = None) -> dict[str, torch.Tensor]:
    """The four views of N images (N x 3 x h x w) under N masks (N x h x w)."""
    m = masks.unsqueeze(1).to(x.dtype)
    views = {"clean": x, "masked_in": composite(x, m), "masked_out": composite(x, 1 - m)}
    if infiller is not None:
        views["infilled_out"] = composite(x, 1 - m, infiller(x, 1 - m))
    return views


@torch.no_grad()
def masked_correct(classifiers: dict[str, Callable[[torch.Tensor], torch.Tensor]], x: torch.Tensor,
                   masks: torch.Tensor, labels: torch.Tensor | list[int], infiller: Callable | None = None,
                   ) -> dict[str, dict[str, torch.Tensor]]:
    """``{classifier: {view: bool [N]}}``: top-1 == label for every view, each classifier in one batch."""
    views = masked_views(x, masks, infiller)
    names = list(views)
    batch = torch.cat([views[v] for v in names])
    lab = torch.as_tensor(labels, device=x.device).view(-1)
    out: dict[str, dict[str, torch.Tensor]] = {}
    for cname, clf in classifiers.items():
        pred = clf(batch).argmax(-1).view(len(names), -1)
        out[cname] = {v: (pred[i] == lab).cpu() for i, v in enumerate(names)}
    return out
