"""Shared fixtures: the real default classifier (loaded once) and a tiny random one."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image


@pytest.fixture(scope="session")
def lite0():
    """The real embedded EfficientNet-Lite0 (ImageNet)."""
    from saliency_core.classifiers import load_classifier

    return load_classifier("efficientnet_lite0")


@pytest.fixture(scope="session")
def tiny_classifier():
    """A 356k-parameter random timm EfficientNet with 10 classes and 5 stages."""
    from saliency_core.classifiers import load_classifier

    torch.manual_seed(0)
    return load_classifier("timm:test_efficientnet", random_init=True, num_classes=10)


@pytest.fixture(scope="session")
def chelsea() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.chelsea())


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def one_torch_thread():
    """Tiny models on a shared CPU: one thread is faster and keeps results deterministic."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def registered():
    """``registered(REGISTRY, name, **declared)(factory)``: register for this test only (unregistered after),
    so the suite gives the same result in any order."""
    added = []

    def register(registry, name: str, **declared):
        def wrap(factory):
            registry.add(name, factory, **declared)
            added.append((registry, name))
            return factory

        return wrap

    yield register
    for registry, name in added:
        registry.unregister(name)
