"""Insertion / deletion curves and completeness / soundness against values computed by hand."""
import math

import pytest
import torch
from torch import nn

from saliency_core.metrics.completeness import LabelScores, completeness, label_scores, soundness
from saliency_core.metrics.insertion import (
    CurveError,
    curve_auc,
    insertion_curves,
    pixel_ranks,
    restricted_softmax,
    step_counts,
)


class SumModel(nn.Module):
    """logits = [sum of channel 0, 0, -sum of channel 0]: probabilities computable by hand."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.images = 0
        self.class_names = ("a", "b", "c")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.images += x.shape[0]
        s = x[:, 0].flatten(1).sum(1)
        return torch.stack([s, torch.zeros_like(s), -s], 1)


def softmax3(s: float) -> list[float]:
    z = [math.exp(s), 1.0, math.exp(-s)]
    return [v / sum(z) for v in z]


def image() -> torch.Tensor:
    x = torch.zeros(1, 3, 2, 2)
    x[0, 0] = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    return x


MASK = torch.tensor([[[0.1, 0.9], [0.5, 0.5]]])  # order: pixel 1, then 2 and 3 (tie, by index), then 0


def test_ranks_break_ties_by_pixel_index():
    ranks = pixel_ranks(MASK)
    assert ranks.tolist() == [[3, 0, 1, 2]]
    assert step_counts(4, 4).tolist() == [0, 1, 2, 3, 4]
    assert step_counts(10, 4).tolist() == [0, 2, 5, 8, 10]  # round(2.5) -> 2 (half to even), round(7.5) -> 8


def test_insertion_curve_by_hand():
    model = SumModel()
    res = insertion_curves(model, image(), MASK, [0, 2], steps=4)
    sums = [0.0, 2.0, 5.0, 9.0, 10.0]  # pixels inserted in the order 1 (2), 2 (3), 3 (4), 0 (1)
    expected0 = [softmax3(s)[0] for s in sums]
    expected2 = [softmax3(s)[2] for s in sums]
    assert res.fractions.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert res.probs[0].tolist() == pytest.approx(expected0, abs=1e-6)
    assert res.probs[1].tolist() == pytest.approx(expected2, abs=1e-6)
    trap = sum((expected0[i] + expected0[i + 1]) / 2 * 0.25 for i in range(4))
    assert res.auc[0].item() == pytest.approx(trap, abs=1e-6)
    assert res.clean_probs.tolist() == pytest.approx(softmax3(10.0), abs=1e-6)
    # one shared mask: only S + 1 = 5 images for both labels
    assert model.images == 5


def test_deletion_curve_and_fill_by_hand():
    model = SumModel()
    fill = torch.zeros(1, 3, 2, 2)
    fill[0, 0] = 0.5
    res = insertion_curves(model, image(), MASK, [0], steps=4, fill=fill, mode="deletion")
    # remaining image pixels 10, 8, 5, 1, 0 plus 0.5 for each removed pixel
    sums = [10.0, 8.5, 6.0, 2.5, 2.0]
    assert res.probs[0].tolist() == pytest.approx([softmax3(s)[0] for s in sums], abs=1e-6)
    assert res.clean_probs.tolist() == pytest.approx(softmax3(10.0), abs=1e-6)


def test_per_label_masks_batched_and_deduplicated():
    model = SumModel()
    masks = torch.stack([MASK[0], MASK[0].flip(-1), MASK[0]])  # labels 0 and 2 share a mask
    res = insertion_curves(model, image(), masks, [0, 1, 2], steps=4, batch_size=3)
    # unique images: step 0 and S once + (S - 1) per distinct mask (2) = 2 + 3 * 2 = 8
    assert model.images == 8 and model.calls == 3
    # label 1 under the flipped mask [[0.9, 0.1], [0.5, 0.5]]: pixel 0 (1), 2 (3), 3 (4), 1 (2)
    sums = [0.0, 1.0, 4.0, 8.0, 10.0]
    assert res.probs[1].tolist() == pytest.approx([softmax3(s)[1] for s in sums], abs=1e-6)
    # same values as one label at a time
    alone = insertion_curves(SumModel(), image(), MASK, [2], steps=4)
    assert torch.allclose(res.probs[2], alone.probs[0], atol=1e-6)


def test_progress_and_errors():
    seen = []
    insertion_curves(SumModel(), image(), MASK, [0], steps=4, batch_size=2, progress=lambda f, m: seen.append(f))
    assert seen[-1] == 1.0 and seen == sorted(seen)
    with pytest.raises(CurveError, match="masks for"):
        insertion_curves(SumModel(), image(), MASK.repeat(2, 1, 1), [0, 1, 2])
    with pytest.raises(CurveError, match="x's size"):
        insertion_curves(SumModel(), image(), torch.rand(1, 3, 3), [0])
    with pytest.raises(CurveError, match="mode"):
        insertion_curves(SumModel(), image(), MASK, [0], mode="sideways")


def test_auc_is_trapezoid():
    fr = torch.tensor([0.0, 0.5, 1.0])
    assert curve_auc(fr, torch.tensor([[0.0, 1.0, 1.0]])).item() == pytest.approx(0.75)


def test_completeness_and_soundness_by_hand():
    auc = torch.tensor([0.3, 0.005, 0.9, 0.0])
    f = torch.tensor([0.6, 0.1, 0.6, 0.2])
    assert completeness(auc, f).tolist() == pytest.approx([0.5, 0.1, 1.0, 0.05])  # 0.01 / 0.2 for g = 0
    assert completeness(auc, f, eps1=0.1).tolist() == pytest.approx([0.5, 1.0, 1.0, 0.5])
    auc2 = torch.tensor([0.6, 0.5, 0.1, 0.0])
    f2 = torch.tensor([0.3, 0.0001, 0.2, 0.0])
    assert soundness(auc2, f2).tolist() == pytest.approx([0.5, 0.002, 1.0, 1.0])


def test_label_scores_full_and_restricted_softmax():
    model = SumModel()
    s = label_scores(model, image(), MASK, [0, 1], steps=4)
    f = softmax3(10.0)
    assert s.f.tolist() == pytest.approx([f[0], f[1]], abs=1e-6)
    assert s.predicted == 0 and s.second_prob == pytest.approx(f[1], abs=1e-7)
    assert s.shared_mask
    exp_alpha = completeness(s.auc, s.f)
    assert torch.allclose(s.completeness, exp_alpha) and s.worst_completeness == pytest.approx(float(exp_alpha.min()))
    frame = s.to_frame()
    assert list(frame["label"]) == [0, 1] and list(frame["name"]) == ["a", "b"]
    # restricted to labels {1, 2}: softmax over [0, -s]
    r = label_scores(model, image(), MASK, [1, 2], steps=4, restrict_to=[1, 2])
    p1 = 1 / (1 + math.exp(-10.0))
    assert r.f.tolist() == pytest.approx([p1, 1 - p1], abs=1e-6)
    assert r.predicted == 1 and "restricted to 2" in r.prob_space
    fn = restricted_softmax([1, 2])
    assert fn(torch.tensor([[5.0, 0.0, 0.0]]))[0].tolist() == pytest.approx([0.0, 0.5, 0.5])
    with pytest.raises(CurveError, match="not in the restricted"):
        label_scores(model, image(), MASK, [0], steps=4, restrict_to=[1, 2])


def _scores(labels, comp, f, predicted, second):
    t = torch.tensor
    return LabelScores(labels=labels, names=[str(v) for v in labels], f=t(f), auc=t(f), completeness=t(comp),
                       soundness=t([1.0] * len(labels)), curves=None, shared_mask=False, predicted=predicted,
                       second_prob=second)


def test_best_effort_and_worst_subsets():
    s = _scores([5, 7, 9], [0.2, 0.6, 0.4], [0.7, 0.2, 0.05], predicted=5, second=0.2)
    assert s.best_effort == pytest.approx(0.4)  # min over labels 7 and 9
    assert s.worst_completeness == pytest.approx(0.2)
    assert s.worst("completeness", top_k=2) == pytest.approx(0.2)
    assert s.worst("completeness", min_prob=0.1) == pytest.approx(0.2)
    assert s.worst("completeness", top_k=3, min_prob=0.1) == pytest.approx(0.2)
    assert _scores([5, 7], [0.2, 0.6], [0.7, 0.2], 7, 0.2).worst("completeness", min_prob=0.5) == pytest.approx(0.2)
    assert _scores([5, 7], [0.2, 0.6], [0.995, 0.005], 5, 0.005).best_effort is None  # 2nd label < 0.01
    assert _scores([5], [0.2], [0.9], 5, 0.05).best_effort is None  # no other label explained


def test_label_scores_on_tiny_timm_classifier(tiny_classifier):
    torch.manual_seed(0)
    x = torch.randn(1, 3, 32, 32)
    masks = torch.rand(3, 32, 32)
    s = label_scores(tiny_classifier, x, masks, [1, 4, 7], steps=8)
    with torch.no_grad():
        clean = tiny_classifier(x).softmax(-1)[0]
    assert torch.allclose(s.f, clean[[1, 4, 7]], atol=1e-5)
    assert s.curves.probs.shape == (3, 9) and s.names == ["1", "4", "7"]
    assert ((s.completeness > 0) & (s.completeness <= 1)).all() and ((s.soundness > 0) & (s.soundness <= 1)).all()


def test_known_end_points_are_not_classified_again_and_give_the_same_curves():
    """A curve's two end points (the unmasked image, the fill) do not depend on the mask: given their logits, the
    curves are the same (to 1e-5) from S - 1 images per distinct mask, in one forward when the batch holds them."""
    torch.manual_seed(0)
    x = torch.randn(1, 3, 6, 5)
    masks = torch.rand(3, 6, 5)
    for mode in ("insertion", "deletion"):
        for restrict in (None, [0, 2]):
            probs_fn = restricted_softmax(restrict) if restrict else None
            ref_model, model = SumModel(), SumModel()
            ref = insertion_curves(ref_model, x, masks, [0, 1, 2], steps=8, mode=mode, batch_size=4,
                                   probs_fn=probs_fn)  # unbatched-ish: 4 images a forward
            assert ref_model.images == 3 * 7 + 2 and ref.clean_logits is not None and ref.fill_logits is not None
            out = insertion_curves(model, x, masks, [0, 1, 2], steps=8, mode=mode, batch_size=64,
                                   probs_fn=probs_fn, clean_logits=ref.clean_logits, fill_logits=ref.fill_logits)
            assert model.calls == 1 and model.images == 3 * 7  # one forward, no end point sent again
            assert torch.allclose(out.probs, ref.probs, atol=1e-5)
            assert torch.allclose(out.auc, ref.auc, atol=1e-5)
            assert torch.allclose(out.clean_probs, ref.clean_probs, atol=1e-5)
            direct = SumModel()(x)[0]  # the clean logits are the classifier's output on x
            assert torch.allclose(ref.clean_logits, direct, atol=1e-5)


def test_label_scores_passes_known_end_points_through():
    torch.manual_seed(1)
    x = torch.randn(1, 3, 6, 5)
    masks = torch.rand(2, 6, 5)
    ref = label_scores(SumModel(), x, masks, [0, 2], steps=4)
    model = SumModel()
    out = label_scores(model, x, masks, [0, 2], steps=4, clean_logits=ref.curves.clean_logits,
                       fill_logits=ref.curves.fill_logits)
    assert model.images == 2 * 3 and model.calls == 1
    assert torch.allclose(out.completeness, ref.completeness, atol=1e-5)
    assert torch.allclose(out.soundness, ref.soundness, atol=1e-5) and torch.allclose(out.f, ref.f, atol=1e-5)
