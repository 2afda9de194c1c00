"""Mask statistics, similarity, the pasted-object localisation check, masked-view accuracy and ROAR."""
import math

import pytest
import torch
from torch import nn

from saliency_core.metrics.localisation import energy_in_box, localisation_scores, paste_objects, pointing_game
from saliency_core.metrics.mask_stats import mask_histogram, mask_stats
from saliency_core.metrics.masked_accuracy import masked_correct
from saliency_core.metrics.roar import linear_probe_accuracy, random_masks, remove_top, roar_curve
from saliency_core.metrics.similarity import hog_correlation, similarity, spearman, ssim


def test_mask_stats_by_hand():
    m = torch.tensor([[[0.0, 1.0], [1.0, 0.0]], [[0.5, 0.5], [0.5, 0.5]]])
    s = mask_stats(m)
    assert s["mean"].tolist() == pytest.approx([0.5, 0.5])
    assert s["std"].tolist() == pytest.approx([0.5, 0.0])
    assert s["tv"].tolist() == pytest.approx([1.0, 0.0])  # (2 + 2) / 4 and 0
    assert s["bimodal"].tolist() == pytest.approx([1.0, 0.0])
    assert mask_histogram(m, bins=2).tolist() == pytest.approx([0.25, 0.75])  # 0.5 falls in the upper bin


def test_similarity_measures():
    a = torch.tensor([[0.25, 0.75], [0.5, 0.625]])  # exact in binary: |m - .5| ties stay ties
    assert spearman(a, 2 * a + 1) == pytest.approx(1.0)
    assert spearman(a, 1 - a) == pytest.approx(-1.0)
    assert spearman(a, 1 - a, absolute=True, centre=0.5) == pytest.approx(1.0)  # |m - .5| is the same
    # ties get average ranks: [1, 1, 2] ranks [1.5, 1.5, 3]
    assert spearman(torch.tensor([1.0, 1.0, 2.0]), torch.tensor([1.0, 2.0, 3.0])) == pytest.approx(
        math.sqrt(3) / 2, abs=1e-9)
    g = torch.rand(48, 48, generator=torch.Generator().manual_seed(0))
    assert hog_correlation(g, g) == pytest.approx(1.0)
    assert ssim(g, g) == pytest.approx(1.0)
    assert ssim(g, 1 - g) < 0.5
    assert set(similarity(g, g)) == {"spearman", "spearman_abs", "hog", "ssim"}
    assert math.isnan(spearman(torch.ones(4), torch.rand(4)))


def test_localisation_scores_by_hand():
    m = torch.zeros(2, 4, 4)
    m[0, 0, 0] = 3.0
    m[0, 3, 3] = 1.0
    m[1] = 1.0  # flat: the arg-max is the first pixel (0, 0)
    boxes = torch.tensor([[0, 0, 1, 1], [2, 2, 3, 3]])
    assert energy_in_box(m, boxes).tolist() == pytest.approx([0.75, 0.25])
    assert pointing_game(m, boxes).tolist() == [True, False]
    assert pointing_game(m, boxes, tolerance=2).tolist() == [True, True]
    s = localisation_scores(m, boxes)
    # mask 0: > mean keeps both pixels (two components of 1): the first, (0, 0) -> box [0,0,0,0], IoU 1/4
    assert s["iou"].tolist() == pytest.approx([0.25, 4 / 16]) and s["hit"].tolist() == [0.0, 0.0]


def test_paste_objects_places_the_patch_in_its_box():
    import torch.nn.functional as F

    from saliency_core.infill.blur import gaussian_blur

    gen = torch.Generator().manual_seed(0)
    obj = torch.rand(3, 3, 40, 40, generator=gen)
    bg = torch.rand(3, 3, 40, 40, generator=gen)
    out, boxes = paste_objects(obj, bg, scale=0.5, blur_sigma=4, generator=gen)
    assert out.shape == obj.shape and boxes.shape == (3, 4)
    patches = F.interpolate(obj, size=(20, 20), mode="bilinear", align_corners=False, antialias=True)
    blurred = gaussian_blur(bg, 4)
    for i in range(3):
        x0, y0, x1, y1 = boxes[i].tolist()
        assert x1 - x0 + 1 == 20 and y1 - y0 + 1 == 20 and 0 <= x0 and x1 < 40 and 0 <= y0 and y1 < 40
        assert torch.allclose(out[i, :, y0:y1 + 1, x0:x1 + 1], patches[i].clamp(0, 1))
        outside = torch.ones(40, 40, dtype=torch.bool)
        outside[y0:y1 + 1, x0:x1 + 1] = False
        assert torch.allclose(out[i][:, outside], blurred[i][:, outside].clamp(0, 1))
    with pytest.raises(ValueError):
        paste_objects(obj, bg[:2])


class ThresholdModel(nn.Module):
    """logits = [sum(channel 0) - 0.5, 0]: class 0 when anything of channel 0 survives."""

    def forward(self, x):
        s = x[:, 0].flatten(1).sum(1) - 0.5
        return torch.stack([s, torch.zeros_like(s)], 1)


def test_masked_correct_views():
    x = torch.ones(1, 3, 2, 2)
    mask = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])
    res = masked_correct({"a": ThresholdModel()}, x, mask, [0], infiller=lambda x, keep: torch.ones_like(x))
    assert {k: bool(v[0]) for k, v in res["a"].items()} == {"clean": True, "masked_in": True, "masked_out": True,
                                                           "infilled_out": True}
    full = torch.ones(1, 2, 2)
    res = masked_correct({"a": ThresholdModel()}, x, full, [0])
    assert bool(res["a"]["masked_out"][0]) is False and "infilled_out" not in res["a"]


def test_remove_top_and_probe():
    x = torch.ones(1, 3, 2, 2)
    m = torch.tensor([[[0.1, 0.9], [0.5, 0.5]]])
    out = remove_top(x, m, 0.5)  # the two top pixels: (0, 1) then (1, 0) (tie broken by index)
    assert out[0, 0].tolist() == [[1.0, 0.0], [0.0, 1.0]]
    assert torch.equal(remove_top(x, m, 0.0), x)
    r = random_masks(2, 3, 3, seed=1)
    assert torch.equal(r, random_masks(2, 3, 3, seed=1)) and not torch.equal(r, random_masks(2, 3, 3, seed=2))
    feats = torch.tensor([[0.0], [0.1], [1.0], [1.1]])
    y = torch.tensor([0, 0, 1, 1])
    assert linear_probe_accuracy(feats, y, feats, y) == 1.0


def test_roar_curve_runs_on_tiny_classifier(tiny_classifier):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(12, 3, 32, 32, generator=gen)
    y = torch.arange(12) % 2
    x[y == 1, 0] += 2.0  # class 1 is redder
    m = torch.rand(12, 32, 32, generator=gen)
    acc = roar_curve(tiny_classifier, x[:8], y[:8], m[:8], x[8:], y[8:], m[8:], fractions=(0.0, 0.9))
    assert len(acc) == 2 and all(0.0 <= a <= 1.0 for a in acc)
