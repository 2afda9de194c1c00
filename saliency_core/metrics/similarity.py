"""Similarity between two saliency maps (sanity checks of Adebayo et al., as Phang et al. ran them).

- Spearman rank correlation, on the values or on their distance from a centre (``absolute=True``:
  |m - centre|; centre 0 for signed attributions, 0.5 for masks as in Phang et al.).
- Pearson correlation of HOG features (scikit-image, 16 x 16 pixel cells).
- SSIM (scikit-image ``structural_similarity``, window 5, data range 1).
All take h x w maps (tensors or arrays) and return a float; NaN when a map is constant.
"""
from __future__ import annotations

import math

import numpy as np
import torch


def _np(a) -> np.ndarray:
    if torch.is_tensor(a):
        a = a.detach().float().cpu().numpy()
    return np.asarray(a, dtype=np.float64)


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
    den = math.sqrt(float((a * a).sum()) * float((b * b).sum()))
    return float((a * b).sum() / den) if den > 0 else float("nan")


def spearman(a, b, absolute: bool = False, centre: float = 0.0) -> float:
    """Spearman rank correlation (ties get their average rank)."""
    from scipy.stats import rankdata

    a, b = _np(a), _np(b)
    if absolute:
        a, b = np.abs(a - centre), np.abs(b - centre)
    return _pearson(rankdata(a.ravel()), rankdata(b.ravel()))


def hog_correlation(a, b, pixels_per_cell: int = 16) -> float:
    """Pearson correlation of the two maps' HOG descriptors."""
    from skimage.feature import hog

    opts = dict(pixels_per_cell=(pixels_per_cell, pixels_per_cell), feature_vector=True)  # 3 x 3 cell blocks
    return _pearson(hog(_np(a), **opts), hog(_np(b), **opts))


def ssim(a, b, win_size: int = 5, data_range: float = 1.0) -> float:
    from skimage.metrics import structural_similarity

    return float(structural_similarity(_np(a), _np(b), win_size=win_size, data_range=data_range))


def similarity(a, b, centre: float = 0.5) -> dict[str, float]:
    """All four measures of one pair of maps."""
    return {"spearman": spearman(a, b), "spearman_abs": spearman(a, b, absolute=True, centre=centre),
            "hog": hog_correlation(a, b), "ssim": ssim(a, b)}
