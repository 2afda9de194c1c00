"""Fixtures of the training tests: a tiny random classifier's settings and a tiny image folder."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

TINY = dict(classifier="timm:test_efficientnet", classifier_random_init=True, num_classes=10, image_size=32,
            batch_size=4, val_fraction=0.25, tensorboard=False, resume=False, threads=1, val_batch_size=8)



@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    """16 small images of 4 classes (a coloured square per class on noise) and labels.csv."""
    d = tmp_path_factory.mktemp("tiny_data")
    rng = np.random.default_rng(0)
    rows = []
    for c in range(4):
        for i in range(4):
            a = (rng.random((40, 48, 3)) * 80).astype(np.uint8)
            a[8:28, 10:30, c % 3] = 200 + 10 * c
            Image.fromarray(a).save(d / f"c{c}_{i}.png")
            rows.append((f"c{c}_{i}.png", c))
    with (d / "labels.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "label"])
        w.writerows(rows)
    return d / "labels.csv"
