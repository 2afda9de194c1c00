"""Parsing which labels to explain: ``top1``, ``top5`` (any ``topK``) or explicit ``ID,ID,...``."""
from __future__ import annotations

import re

import torch


class LabelSpecError(ValueError):
    """A label specification that cannot be satisfied."""


def resolve_labels(spec: str | int | list[int], probs: torch.Tensor) -> list[int]:
    """Class indices to explain for one image, given its class probabilities (1-D)."""
    n = probs.shape[-1]
    if isinstance(spec, int):
        spec = [spec]
    if isinstance(spec, (list, tuple)):
        ids = [int(i) for i in spec]
    else:
        text = str(spec).strip().lower()
        m = re.fullmatch(r"top(\d+)", text)
        if m:
            k = int(m.group(1))
            if not 1 <= k <= n:
                raise LabelSpecError(f"'{spec}': k must be between 1 and {n}")
            return probs.topk(k).indices.tolist()
        try:
            ids = [int(t) for t in text.split(",") if t.strip()]
        except ValueError:
            raise LabelSpecError(f"labels '{spec}' must be top1, topK or comma-separated class indices") from None
    if not ids:
        raise LabelSpecError("no label given")
    bad = [i for i in ids if not 0 <= i < n]
    if bad:
        raise LabelSpecError(f"label {bad[0]} is out of range (the classifier has classes 0..{n - 1})")
    return list(dict.fromkeys(ids))
