"""Model parameter randomisation test: units, re-initialisation, cascading vs independent, MPRT rows."""
import math

import pytest
import torch
from torch import nn

from saliency_core.evaluate.sanity import (
    method_mask_fn,
    mprt,
    randomization_units,
    randomize_module_,
    randomized_classifiers,
)
from saliency_core.methods.base import create_method


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3)
        self.bn1 = nn.BatchNorm2d(4)
        self.relu = nn.ReLU()
        self.layer = nn.Sequential(nn.Conv2d(4, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 1))
        self.fc = nn.Linear(4, 2)


def test_units_are_top_down_and_replace_parents_by_children():
    assert randomization_units(Net()) == ["fc", "layer.2", "layer.0", "bn1", "conv1"]
    assert randomization_units(Net(), depth=1) == ["fc", "layer", "bn1", "conv1"]


def test_randomize_module_follows_phang_scheme_and_is_seeded():
    net = Net()
    net.bn1.running_mean.fill_(3.0)
    randomize_module_(net.bn1, torch.Generator().manual_seed(0))
    assert (net.bn1.weight.abs() <= 1 / math.sqrt(4)).all() and (net.bn1.running_mean == 3.0).all()
    big = nn.Conv2d(64, 64, 3)
    randomize_module_(big, torch.Generator().manual_seed(0))
    assert big.weight.std().item() == pytest.approx(math.sqrt(2 / (64 * 64 * 3)), rel=0.05)
    lin = nn.Linear(400, 300)
    randomize_module_(lin, torch.Generator().manual_seed(0))
    assert lin.weight.abs().max().item() <= 1 / math.sqrt(400) + 1e-7
    a, b = nn.Linear(5, 5), nn.Linear(5, 5)
    randomize_module_(a, torch.Generator().manual_seed(1))
    randomize_module_(b, torch.Generator().manual_seed(1))
    assert torch.equal(a.weight, b.weight)


def _changed(orig: dict, clf) -> set[str]:
    now = clf.model.state_dict()
    return {k.rsplit(".", 1)[0] for k in orig if orig[k].dtype.is_floating_point and not torch.equal(orig[k], now[k])}


def test_cascading_and_independent_on_tiny_classifier(tiny_classifier):
    orig = {k: v.clone() for k, v in tiny_classifier.model.state_dict().items()}
    units = randomization_units(tiny_classifier.model)
    assert units[0] == "classifier" and units[-1] == "conv_stem" and "blocks.4" in units
    seen = []
    for unit, clf in randomized_classifiers(tiny_classifier, "cascading", units=units[:3]):
        seen.append(unit)
        changed = {c.split(".")[0] if not c.startswith("blocks") else ".".join(c.split(".")[:2])
                   for c in _changed(orig, clf)}
        assert changed == set(seen)  # every unit so far stays randomised
        assert clf.identity != tiny_classifier.identity
    for unit, clf in randomized_classifiers(tiny_classifier, "independent", units=units[:3]):
        changed = {c.split(".")[0] if not c.startswith("blocks") else ".".join(c.split(".")[:2])
                   for c in _changed(orig, clf)}
        assert changed == {unit}  # only this unit
    now = tiny_classifier.model.state_dict()
    assert all(torch.equal(orig[k], now[k]) for k in orig)  # the shared classifier is untouched
    with pytest.raises(ValueError):
        next(randomized_classifiers(tiny_classifier, "sideways"))


def test_mprt_model_independent_map_stays_identical(tiny_classifier):
    x = torch.randn(2, 3, 48, 48, generator=torch.Generator().manual_seed(0))
    fn = method_mask_fn(create_method("center-gaussian"), tiny_classifier)
    df = mprt(tiny_classifier, fn, x, [1, 2], mode="cascading", units=["classifier", "bn2"])
    assert len(df) == 2 * 3 and set(df["unit"]) == {"original", "classifier", "bn2"}
    assert df["spearman"].tolist() == pytest.approx([1.0] * 6) and df["ssim"].tolist() == pytest.approx([1.0] * 6)
    grad = method_mask_fn(create_method("gradient-x-input"), tiny_classifier)
    df2 = mprt(tiny_classifier, grad, x, [1, 2], mode="independent", units=["conv_stem"])
    assert (df2[df2.step == 1]["spearman"] < 0.99).all()  # the gradient map depends on the weights
