"""Which labels to explain: ``top1``, ``top5`` (any ``topK``) or explicit ``ID,ID,...``, parsed in one place.

:func:`parse_labels` reads a choice into a :class:`LabelSpec` without any tensor (the CLI, the configs and the
dashboard's links check a choice with it before work starts); :func:`resolve_labels` turns it into class indices
for one image from its class probabilities. Nothing here imports torch.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

#: What a labels choice may look like, in words (for help texts and errors).
LABELS_HELP = "top1, topK (e.g. top5) or comma-separated class indices ID,ID,..."


class LabelSpecError(ValueError):
    """A label specification that cannot be satisfied."""


@dataclass(frozen=True)
class LabelSpec:
    """A parsed labels choice: the ``top`` K labels of the image, or the explicit class ``ids`` (in the order
    given, each once)."""

    top: int | None = None
    ids: tuple[int, ...] = ()

    @property
    def count(self) -> int:
        """How many labels it explains (``top5`` -> 5, ``3,7`` -> 2)."""
        return self.top if self.top is not None else len(self.ids)

    def __str__(self) -> str:
        return f"top{self.top}" if self.top is not None else ",".join(map(str, self.ids))


def parse_labels(spec: str | int | Sequence[int] | LabelSpec, n_classes: int | None = None) -> LabelSpec:
    """``spec`` as a :class:`LabelSpec`, or a one-line :class:`LabelSpecError`; with ``n_classes``, K and the
    class indices are also checked against the classifier's classes."""
    if isinstance(spec, LabelSpec):
        parsed = spec
    elif isinstance(spec, bool):
        raise LabelSpecError(f"labels {spec!r} must be {LABELS_HELP}")
    elif isinstance(spec, int):
        parsed = LabelSpec(ids=(spec,))
    elif isinstance(spec, (list, tuple)):
        try:
            parsed = LabelSpec(ids=tuple(dict.fromkeys(int(i) for i in spec)))
        except (TypeError, ValueError):
            raise LabelSpecError(f"labels {list(spec)!r} must be class indices") from None
    else:
        text = str(spec).strip().lower()
        m = re.fullmatch(r"top(\d+)", text)
        if m:
            parsed = LabelSpec(top=int(m.group(1)))
        else:
            try:
                parsed = LabelSpec(ids=tuple(dict.fromkeys(int(t) for t in text.split(",") if t.strip())))
            except ValueError:
                raise LabelSpecError(f"labels '{spec}' must be top1, topK or comma-separated class indices") from None
    if parsed.top is not None:
        if parsed.top < 1 or (n_classes is not None and parsed.top > n_classes):
            raise LabelSpecError(f"'{spec}': k must be between 1 and {n_classes or 'the number of classes'}")
        return parsed
    if not parsed.ids:
        raise LabelSpecError("no label given")
    if n_classes is not None:
        bad = [i for i in parsed.ids if not 0 <= i < n_classes]
        if bad:
            raise LabelSpecError(f"label {bad[0]} is out of range (the classifier has classes 0..{n_classes - 1})")
    elif any(i < 0 for i in parsed.ids):
        raise LabelSpecError(f"label {min(parsed.ids)} is out of range (class indices start at 0)")
    return parsed


def resolve_labels(spec: str | int | Sequence[int] | LabelSpec, probs: torch.Tensor,
                   within: Sequence[int] | None = None) -> list[int]:
    """Class indices to explain for one image, given its class probabilities (1-D). ``within``: a topK choice
    ranks only these classes (Gupta et al.'s restricted label set) and gives at most as many."""
    parsed = parse_labels(spec, probs.shape[-1])
    if parsed.top is None:
        return list(parsed.ids)
    if within:
        scores = probs.new_zeros(probs.shape)
        idx = probs.new_tensor(list(within), dtype=_long(probs))
        scores[idx] = probs[idx]
        return scores.topk(min(parsed.top, len(within))).indices.tolist()
    return probs.topk(parsed.top).indices.tolist()


def _long(probs: torch.Tensor) -> torch.dtype:
    """The integer index dtype, read off a tensor so that this module needs no torch import of its own."""
    return probs.argmax().dtype
