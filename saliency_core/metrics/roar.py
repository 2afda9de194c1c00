"""Remove-and-retrain (ROAR, Hooker et al. 2019; Phang et al. Fig. 4) at a scale a CPU can run.

The top t% of each image's pixels, ranked by a method's mask, are replaced by gray (0 in the
normalised space, the per-channel mean as in ROAR); a classifier is *retrained* on the degraded
training images and tested on the degraded test images. If the mask found the evidence, accuracy
falls faster than when the same share of pixels is removed at random. Here the retrained part is
a linear head (multinomial logistic regression, scikit-learn) on the frozen classifier's pooled
last-stage features: cheap enough to repeat for every t and method.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from saliency_core.classifiers import Classifier
from saliency_core.metrics.insertion import pixel_ranks
from saliency_core.progress import ProgressFn

DEFAULT_FRACTIONS = (0.0, 0.1, 0.3, 0.5, 0.7, 0.9)


def remove_top(x: torch.Tensor, masks: torch.Tensor, fraction: float, fill: torch.Tensor | None = None
               ) -> torch.Tensor:
    """Replace the top ``fraction`` of pixels of each image (ranked by its mask, ties by index)."""
    n, _, h, w = x.shape
    k = int(round(fraction * h * w))
    removed = (pixel_ranks(masks).view(n, 1, h, w) < k).to(x.dtype)
    fill = torch.zeros_like(x) if fill is None else fill
    return x * (1 - removed) + fill * removed


def random_masks(n: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    """Uniform random rankings (the ROAR baseline), seeded."""
    return torch.rand(n, h, w, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def pooled_features(classifier: Classifier | Callable, x: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
    """Global-average-pooled deepest stage of the classifier, N x D."""
    out = []
    for i in range(0, x.shape[0], batch_size):
        stages = classifier.forward_features(x[i:i + batch_size]).stages
        out.append(stages[-1].float().mean((2, 3)).cpu())
    return torch.cat(out)


def linear_probe_accuracy(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor,
                          test_y: torch.Tensor, c: float = 1.0, seed: int = 0) -> float:
    """Fit a multinomial logistic-regression head on standardised features, return test accuracy."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000, random_state=seed))
    model.fit(train_x.numpy(), train_y.numpy())
    return float(np.mean(model.predict(test_x.numpy()) == test_y.numpy()))


def roar_curve(classifier: Classifier, x_train: torch.Tensor, y_train: torch.Tensor, m_train: torch.Tensor,
               x_test: torch.Tensor, y_test: torch.Tensor, m_test: torch.Tensor,
               fractions: tuple[float, ...] = DEFAULT_FRACTIONS, c: float = 1.0, seed: int = 0,
               progress: ProgressFn | None = None) -> list[float]:
    """Test accuracy of a retrained linear head after removing the top t of pixels, for each t."""
    acc = []
    for i, t in enumerate(fractions):
        f_train = pooled_features(classifier, remove_top(x_train, m_train, t))
        f_test = pooled_features(classifier, remove_top(x_test, m_test, t))
        acc.append(linear_probe_accuracy(f_train, y_train, f_test, y_test, c=c, seed=seed))
        if progress is not None:
            progress((i + 1) / len(fractions), f"ROAR: removed {t:.0%}, accuracy {acc[-1]:.3f}")
    return acc
