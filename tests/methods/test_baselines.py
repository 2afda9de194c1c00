"""Baseline methods: registry entries, hand-computed maps on linear models, seeding and hook safety."""
import math
import threading

import pytest
import torch
from torch import nn

from saliency_core.methods.base import MethodError, create_method, method_entries
from saliency_core.methods.controls import center_gaussian
from saliency_core.methods.gradients import default_cam_layer
from saliency_core.methods.rise import rise_masks

NAMES = {"grad-cam": True, "gradient-x-input": True, "integrated-gradients": True, "rise": True,
         "center-gaussian": False, "random": False}


class Linear(nn.Module):
    """logits_c = sum(W_c * x): gradient x input is W_c * x exactly."""

    def __init__(self, h=4, w=4, classes=3):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.weight = nn.Parameter(torch.randn(classes, 3, h, w, generator=g), requires_grad=False)

    def forward(self, x):
        return torch.einsum("bchw,kchw->bk", x, self.weight)


class QuadrantModel(nn.Module):
    """Class 0 is evidenced only by the top-left quadrant."""

    def forward(self, x):
        h, w = x.shape[-2:]
        s = 4 * x[:, 0, : h // 2, : w // 2].mean((1, 2)) - 2
        return torch.stack([s, torch.zeros_like(s)], 1)


def _call(name, clf, x, labels, **opts):
    return create_method(name, **opts)(clf, x, labels, None)


def test_registry_has_every_baseline_with_its_label_dependence():
    methods = method_entries()
    for name, per_label in NAMES.items():
        assert name in methods and methods[name].per_label is per_label
    with pytest.raises(MethodError):
        create_method("rise", num_masks=0)
    with pytest.raises(MethodError):
        create_method("center-gaussian", sigma=-1)


def test_gradient_x_input_and_integrated_gradients_by_hand():
    model = Linear()
    x = torch.randn(1, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    expected = (model.weight[[2, 0]] * x).abs().sum(1)
    expected = expected / expected.flatten(1).amax(1).view(-1, 1, 1)
    gxi = _call("gradient-x-input", model, x, [2, 0])
    assert gxi.per_label and torch.allclose(gxi.masks, expected, atol=1e-5)
    # IG of a linear model from the zero baseline equals gradient x input
    ig = _call("integrated-gradients", model, x, [2, 0], steps=8)
    assert torch.allclose(ig.masks, expected, atol=1e-4)
    with torch.no_grad():  # still works when the caller disabled gradients
        assert torch.allclose(_call("gradient-x-input", model, x, [2, 0]).masks, expected, atol=1e-5)


def test_rise_masks_and_map():
    gen = torch.Generator().manual_seed(0)
    m = rise_masks(6, (20, 30), grid=4, p=0.5, generator=gen)
    assert m.shape == (6, 1, 20, 30) and m.min() >= 0 and m.max() <= 1
    assert torch.equal(m, rise_masks(6, (20, 30), 4, 0.5, torch.Generator().manual_seed(0)))
    x = torch.ones(1, 3, 16, 16)
    res = _call("rise", QuadrantModel(), x, [0, 1], num_masks=200, grid=4, batch_size=64)
    assert res.masks.shape == (2, 16, 16) and res.masks.min() >= 0 and res.masks.max() <= 1
    tl, br = res.masks[0, :8, :8].mean(), res.masks[0, 8:, 8:].mean()
    assert tl > br + 0.2  # label 0's evidence is the top-left quadrant
    assert res.masks[1, :8, :8].mean() < res.masks[1, 8:, 8:].mean()  # label 1 is the opposite
    again = _call("rise", QuadrantModel(), x, [0, 1], num_masks=200, grid=4, batch_size=32)
    assert torch.allclose(res.masks, again.masks, atol=1e-5)  # seeded, independent of the batch size


def test_center_gaussian_and_random_by_hand():
    g = center_gaussian(3, 3, sigma=0.5)
    assert g[1, 1] == 1.0 and g[0, 0].item() == pytest.approx(math.exp(-2 * 1 / (2 * 1.5 ** 2)), rel=1e-6)
    res = _call("center-gaussian", None, torch.zeros(1, 3, 5, 7), [3, 4])
    assert res.masks.shape == (1, 5, 7) and not res.per_label
    r1 = _call("random", None, torch.zeros(1, 3, 8, 8), [0], seed=3, cell=4)
    r2 = _call("random", None, torch.zeros(1, 3, 8, 8), [0], seed=3, cell=4)
    r3 = _call("random", None, torch.zeros(1, 3, 8, 8), [0], seed=4, cell=4)
    assert torch.equal(r1.masks, r2.masks) and not torch.equal(r1.masks, r3.masks)
    assert r1.masks.shape == (1, 8, 8) and len(r1.masks[0, :4, :4].unique()) == 1  # 4 x 4 cells


def _hook_count(model):
    return sum(len(m._forward_hooks) + len(m._backward_hooks) + len(getattr(m, "_forward_pre_hooks", {}))
               for m in model.modules())


def test_grad_cam_per_label_on_a_private_copy(tiny_classifier):
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    assert default_cam_layer(tiny_classifier.model) == "bn2"
    method = create_method("grad-cam")
    before = _hook_count(tiny_classifier.model)
    res = method(tiny_classifier, x, [1, 5], None)
    assert res.masks.shape == (2, 64, 64) and res.per_label and res.masks.min() >= 0 and res.masks.max() <= 1
    assert _hook_count(tiny_classifier.model) == before  # the shared model never carries hooks
    serial = [method(tiny_classifier, x, [k], None).masks for k in (1, 5)]
    assert torch.allclose(res.masks[0], serial[0][0], atol=1e-4) and torch.allclose(res.masks[1], serial[1][0],
                                                                                      atol=1e-4)
    out = {}

    def work(k):
        out[k] = method(tiny_classifier, x, [k], None).masks

    threads = [threading.Thread(target=work, args=(k,)) for k in (1, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert torch.allclose(out[1], serial[0], atol=1e-4) and torch.allclose(out[5], serial[1], atol=1e-4)
    with pytest.raises(MethodError, match="no layer"):
        create_method("grad-cam", layer="nope")(tiny_classifier, x, [1], None)


def test_baselines_work_through_explain(tiny_classifier, chelsea):
    from saliency_core.explanation import ExplainConfig, explain

    expl = explain(chelsea.resize((64, 48)), ExplainConfig(method="gradient-x-input", labels="top2", infiller="gray"),
                   classifier=tiny_classifier)
    assert expl.per_label and expl.masks.shape == (2, 48, 64)
