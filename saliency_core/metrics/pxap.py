"""Pixel average precision (PxAP, Choe et al. 2020, "Evaluating WSOL right") against pixel masks.

As clovaai's ``wsoleval.MaskEvaluator``: mask scores are histogrammed over the thresholds
0, 0.01, ..., 0.99 (plus the bins [1, 2) and [2, 3) so a score of exactly 1 is counted), separately
for ground-truth foreground and background pixels, accumulated over the whole data set; pixels
marked "ignore" are left out. Precision and recall at each threshold come from the reversed
cumulative sums and PxAP = 100 * sum_i precision_i (recall_i - recall_{i-1}). Masks are used as they
are (Phang et al. used raw sigmoid masks; wsoleval min-max normalises CAMs first).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch


def thresholds(step: float = 0.01) -> np.ndarray:
    """Right-closed bin edges: 0, step, ..., 1 - step, then 1, 2, 3 (wsoleval's layout)."""
    n = int(round(1.0 / step))
    return np.append(np.arange(n) * step, [1.0, 2.0, 3.0])


@dataclass
class PxAPAccumulator:
    """Streaming PxAP: add (mask, ground truth) pairs, then read ``pxap()`` or the curves."""

    step: float = 0.01
    fg_hist: np.ndarray = field(default=None)  # type: ignore[assignment]
    bg_hist: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        edges = thresholds(self.step)
        self.edges = edges
        if self.fg_hist is None:
            self.fg_hist = np.zeros(len(edges) - 1, dtype=np.float64)
        if self.bg_hist is None:
            self.bg_hist = np.zeros(len(edges) - 1, dtype=np.float64)

    def add(self, masks: torch.Tensor, gt: torch.Tensor, ignore: torch.Tensor | None = None) -> None:
        """``masks`` N x h x w in [0, 1]; ``gt`` N x h x w bool (foreground); ``ignore`` optional bool."""
        m = masks.detach().float().cpu().numpy()
        g = gt.bool().cpu().numpy()
        valid = np.ones_like(g) if ignore is None else ~ignore.bool().cpu().numpy()
        self.fg_hist += np.histogram(m[g & valid], bins=self.edges)[0]
        self.bg_hist += np.histogram(m[~g & valid], bins=self.edges)[0]

    def curves(self) -> tuple[np.ndarray, np.ndarray]:
        """(precision, recall) over thresholds from high to low."""
        tp = self.fg_hist[::-1].cumsum()
        fp = self.bg_hist[::-1].cumsum()
        fn = self.fg_hist.sum() - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1e-300), 0.0)
            recall = np.where(tp + fn > 0, tp / np.maximum(tp + fn, 1e-300), 0.0)
        return precision, recall

    def pxap(self) -> float:
        precision, recall = self.curves()
        return float(100.0 * (precision[1:] * np.diff(recall)).sum())

    def merge(self, other: "PxAPAccumulator") -> None:
        self.fg_hist += other.fg_hist
        self.bg_hist += other.bg_hist


def pxap(masks: torch.Tensor, gt: torch.Tensor, ignore: torch.Tensor | None = None, step: float = 0.01) -> float:
    """PxAP of N masks against N ground-truth pixel masks (all pixels pooled)."""
    acc = PxAPAccumulator(step)
    acc.add(masks, gt, ignore)
    return acc.pxap()
