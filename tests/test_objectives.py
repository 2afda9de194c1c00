"""Objective terms against values computed by hand on tiny tensors."""
import math

import pytest
import torch

from saliency_core import objectives as O


def test_masked_in_loss_is_cross_entropy_by_hand():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([0, 0])
    # CE_1 = -log(e^2/(e^2+1)), CE_2 = -log(1/(1+e))
    expected = (-math.log(math.exp(2) / (math.exp(2) + 1)) - math.log(1 / (1 + math.e))) / 2
    assert O.masked_in_loss(logits, labels).item() == pytest.approx(expected, rel=1e-6)


def test_masked_out_class_loss_negates_and_weights():
    logits = torch.tensor([[0.0, 0.0], [3.0, 0.0]])
    labels = torch.tensor([0, 0])
    ce = [math.log(2), -math.log(math.exp(3) / (math.exp(3) + 1))]
    assert O.masked_out_class_loss(logits, labels).item() == pytest.approx(-(ce[0] + ce[1]) / 2, rel=1e-6)
    w = torch.tensor([1.0, 0.0])
    assert O.masked_out_class_loss(logits, labels, w).item() == pytest.approx(-ce[0] / 2, rel=1e-6)


def test_entropy_uniform_and_peaked():
    uniform = torch.zeros(1, 4)
    assert O.entropy(uniform).item() == pytest.approx(math.log(4), rel=1e-6)
    p = torch.tensor([0.5, 0.25, 0.25])
    expected = -(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25))
    assert O.entropy(p.log()[None]).item() == pytest.approx(expected, rel=1e-6)
    # masked-out entropy loss is minus the (weighted) mean entropy
    both = torch.cat([uniform[:, :3], p.log()[None]])
    w = torch.tensor([0.0, 1.0])
    assert O.masked_out_entropy_loss(both, w).item() == pytest.approx(-expected / 2, rel=1e-6)


def test_conditional_area_counts_only_where_condition_holds():
    mask = torch.stack([torch.full((1, 2, 2), 0.5), torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])])
    assert O.mask_area(mask).tolist() == pytest.approx([0.5, 0.25])
    assert O.conditional_area(mask, torch.tensor([1.0, 0.0])).item() == pytest.approx(0.25)
    assert O.conditional_area(mask, torch.tensor([True, True])).item() == pytest.approx(0.375)


def test_total_variation_by_hand():
    m = torch.tensor([[[[0.0, 1.0], [1.0, 1.0]]]])
    # vertical diffs: (1-0)^2 + (1-1)^2 = 1; horizontal: (1-0)^2 + 0 = 1 -> 2
    assert O.total_variation(m).item() == pytest.approx(2.0)
    assert O.total_variation(m, power=1).item() == pytest.approx(2.0)
    # border term: every pixel of a 2x2 lies on the border lines; each line sums its values
    # top 1, bottom 2, left 1, right 2 -> 6 * 0.3
    assert O.total_variation(m, border_weight=0.3).item() == pytest.approx(2.0 + 0.3 * 6)
    assert O.total_variation(torch.ones(3, 1, 5, 5)).item() == 0.0


def test_masker_loss_combines_terms_with_lambdas():
    torch.manual_seed(0)
    mask = torch.rand(2, 1, 4, 4)
    labels = torch.tensor([0, 1])
    clean = torch.tensor([[5.0, 0.0], [5.0, 0.0]])  # image 0 right, image 1 wrong
    li = torch.tensor([[3.0, 0.0], [0.0, 3.0]])     # both masked-in right
    lo = torch.tensor([[0.0, 2.0], [1.0, 0.0]])     # image 0 masked-out wrong
    cfg = O.MaskerObjective("in+out-entropy", lambda_in=2.0, lambda_out=3.0, lambda_area_in=0.5,
                            lambda_area_out=7.0, lambda_tv=0.1)
    terms = O.masker_loss(cfg, mask, labels, clean, li, lo)
    area = O.mask_area(mask)
    assert terms["area_in"].item() == pytest.approx(area.mean().item(), rel=1e-6)
    assert terms["area_out"].item() == pytest.approx(area[0].item() / 2, rel=1e-6)
    assert terms["out_negentropy"].item() == pytest.approx(-O.entropy(lo[:1]).item() / 2, rel=1e-6)
    expected = (2.0 * O.masked_in_loss(li, labels) + 0.5 * terms["area_in"] + 3.0 * terms["out_negentropy"]
                + 7.0 * terms["area_out"] + 0.1 * O.total_variation(mask))
    assert terms["total"].item() == pytest.approx(expected.item(), rel=1e-6)
    only_in = O.masker_loss(O.MaskerObjective("in"), mask, labels, clean, li, None)
    assert "area_out" not in only_in and "in_ce" in only_in


@pytest.mark.parametrize("kwargs", [{"objective": "both"}, {"lambda_tv": -1.0}, {"lambda_area_out": -0.1}])
def test_bad_objective_options_are_refused(kwargs):
    with pytest.raises(ValueError):
        O.MaskerObjective(**kwargs)


# ---------------------------------------------------------------- loss-conditional training
def _batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(4, 1, 8, 8, generator=g)
    labels = torch.tensor([0, 1, 2, 1])
    clean = torch.randn(4, 5, generator=g)
    clean[torch.arange(4), labels] += 5  # the classifier is right on the clean images
    return mask, labels, clean, torch.randn(4, 5, generator=g), torch.randn(4, 5, generator=g)


@pytest.mark.parametrize("out_term, objective", [("out-entropy", "in+out-entropy"), ("out-class", "in+out-class")])
def test_conditional_loss_with_one_setting_is_the_masker_loss(out_term, objective):
    from saliency_core.objectives import MaskerObjective, conditional_masker_loss, masker_loss

    mask, labels, clean, li, lo = _batch()
    cfg = MaskerObjective(objective, 1.0, 0.7, 1.5, 15.0, 2e-3)
    want = masker_loss(cfg, mask, labels, clean, li, lo)
    rows = torch.arange(4)
    got = conditional_masker_loss(mask, labels, clean, li, rows, lo, rows, torch.full((4,), 2e-3), 1.0, 0.7, 1.5, 15.0,
                                  out_term)
    for k in want:
        assert got[k] == pytest.approx(float(want[k]), rel=1e-6), k


@pytest.mark.parametrize("sdr_term, area_w", [("out-entropy", None), ("out-class", None),
                                              ("out-class", [0.5, 2.0, 1.0, 4.0])])
def test_conditional_loss_is_the_mean_of_each_images_own_objective(sdr_term, area_w):
    """Image 0 ssr (TV 0), image 1 sdr (TV 0.1) with MaxEnt or MinClass, images 2-3 both (TV 0.01) with MaxEnt,
    each with its own area weight (a factor on both area lambdas) or none: by hand, image by image."""
    from saliency_core.objectives import (
        conditional_area,
        conditional_masker_loss,
        masked_in_loss,
        masked_out_entropy_loss,
        total_variation_per_mask,
    )

    mask, labels, clean, li, lo = _batch(1)
    in_rows, out_rows = torch.tensor([0, 2, 3]), torch.tensor([1, 2, 3])
    tv_w = torch.tensor([0.0, 0.1, 0.01, 0.01])
    got = conditional_masker_loss(mask, labels, clean, li[in_rows], in_rows, lo[out_rows], out_rows, tv_w,
                                  1.0, 1.0, 1.5, 15.0, [sdr_term, "out-entropy", "out-entropy"],
                                  area_weight=None if area_w is None else torch.tensor(area_w))
    a = [1.0] * 4 if area_w is None else area_w
    tv = total_variation_per_mask(mask)
    per_image = []
    for i in range(4):
        one = slice(i, i + 1)
        loss = tv_w[i] * tv[i]
        if i in (0, 2, 3):
            right_in = (li[one].argmax(-1) == labels[one])
            loss = loss + masked_in_loss(li[one], labels[one]) + 1.5 * a[i] * conditional_area(mask[one], right_in)
        if i in (1, 2, 3):
            right = (clean[one].argmax(-1) == labels[one]).float()
            wrong_out = (lo[one].argmax(-1) != labels[one]).float()
            area_out = conditional_area(mask[one], right * wrong_out)
            if i == 1 and sdr_term == "out-class":
                out = -right * torch.nn.functional.cross_entropy(lo[one], labels[one], reduction="none")
            else:
                out = masked_out_entropy_loss(lo[one], right)
            loss = loss + out.mean() + 15.0 * a[i] * area_out
        per_image.append(loss)
    assert float(got["total"]) == pytest.approx(float(torch.stack(per_image).mean()), rel=1e-6)
    assert float(got["in_ce"]) == pytest.approx(float(masked_in_loss(li[in_rows], labels[in_rows])), rel=1e-6)
    assert set(got) >= {"in_ce", "area_in", "out_negentropy", "area_out", "tv", "total"}
    assert ("out_negce" in got) == (sdr_term == "out-class")


def test_conditional_loss_with_no_out_rows_has_no_out_terms():
    from saliency_core.objectives import conditional_masker_loss

    mask, labels, clean, li, _ = _batch(2)
    got = conditional_masker_loss(mask, labels, clean, li, torch.arange(4), None, torch.tensor([], dtype=torch.long),
                                  torch.zeros(4))
    assert "area_out" not in got and "in_ce" in got
    with pytest.raises(ValueError, match="out_term"):
        conditional_masker_loss(mask, labels, clean, li, torch.arange(4), None, torch.tensor([], dtype=torch.long),
                                torch.zeros(4), out_term="maxent")


def test_conditional_loss_image_weights_scale_each_image_s_whole_loss():
    from saliency_core.objectives import conditional_masker_loss

    mask, labels, clean, li, lo = _batch(3)
    rows = torch.arange(4)
    tv_w = torch.tensor([0.0, 1e-3, 1e-2, 0.1])
    args = (mask, labels, clean, li, rows, lo, rows, tv_w)
    per_image = [float(conditional_masker_loss(mask[i:i + 1], labels[i:i + 1], clean[i:i + 1], li[i:i + 1],
                                               torch.arange(1), lo[i:i + 1], torch.arange(1), tv_w[i:i + 1])["total"])
                 for i in range(4)]
    w = 1 / (1 + 400 * tv_w)
    got = float(conditional_masker_loss(*args, image_weight=w)["total"])
    assert got == pytest.approx(float((torch.tensor(per_image) * w).mean()), rel=1e-6)


def test_area_step_has_round_a_times_pixels_ones_at_the_end():
    from saliency_core.objectives import area_step
    ref = area_step(torch.tensor([0.25, 0.0, 1.0, 0.3]), 8)
    assert ref.tolist() == [[0, 0, 0, 0, 0, 0, 1, 1], [0] * 8, [1] * 8, [0, 0, 0, 0, 0, 0, 1, 1]]


def test_sorted_area_loss_is_zero_for_a_perfect_step_and_hand_computed_otherwise():
    from saliency_core.objectives import sorted_area_loss
    step = torch.tensor([[0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0]])  # a binary mask with 2 of 8 pixels on
    assert sorted_area_loss(step, 0.25).item() == 0.0
    # a flat gray mask of the right mean: sorted 0.25 everywhere against (0,0,0,0,0,0,1,1): 6*0.0625 + 2*0.5625, /8
    gray = torch.full((1, 1, 2, 4), 0.25)
    assert sorted_area_loss(gray, 0.25).item() == pytest.approx((6 * 0.0625 + 2 * 0.5625) / 8)
    # the right shape at the wrong area: 2 ones against a step of 4 -> 2 pixels off by 1, /8
    assert sorted_area_loss(step, 0.5).item() == pytest.approx(2 / 8)
    # per-row areas
    both = sorted_area_loss(torch.cat([step, step]), torch.tensor([0.25, 0.5]))
    assert both.tolist() == pytest.approx([0.0, 0.25])
