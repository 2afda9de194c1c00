"""Fixed-area scoring on tiny hand-computed inputs: exact region sizes and tie order, kept / removed probabilities in
one forward, the area curve and its 80 % point, the bootstrap interval."""
import math

import pytest
import torch

from saliency_core.metrics.fixed_area import (
    CURVE_AREAS,
    FIXED_AREAS,
    FixedAreaError,
    area_curve,
    area_pixels,
    bootstrap_ci,
    kept_and_removed,
    region_iou,
    top_area_regions,
)


class SumClassifier(torch.nn.Module):
    """logits = [sum of channel 0, 0]: class 0's probability is sigmoid(sum); counts its forwards and batch sizes."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(x.shape[0])
        s = x[:, 0].flatten(1).sum(1)
        return torch.stack([s, torch.zeros_like(s)], 1)


class ShareClassifier(torch.nn.Module):
    """p(class 0) = the share of channel 0's total that is present (logits log k, log(total - k))."""

    def __init__(self, total: float) -> None:
        super().__init__()
        self.total = total

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = x[:, 0].flatten(1).sum(1)
        return torch.stack([torch.log(k + 1e-12), torch.log(self.total - k + 1e-12)], 1)


def test_protocol_areas():
    assert FIXED_AREAS == (0.05, 0.1, 0.2, 0.4)
    assert len(CURVE_AREAS) == 8 and CURVE_AREAS[0] == 0.05 and CURVE_AREAS[-1] == pytest.approx(0.6)
    steps = [b - a for a, b in zip(CURVE_AREAS, CURVE_AREAS[1:])]
    assert max(steps) - min(steps) < 1e-5  # equally spaced


def test_top_area_regions_by_hand():
    m = torch.tensor([[0.1, 0.9], [0.5, 0.5]])
    # 1 pixel: the 0.9; 2: the 0.9 and the first 0.5 in reading order (the tie); 3: all but the 0.1
    assert top_area_regions(m, 0.25).tolist() == [[0, 1], [0, 0]]
    assert top_area_regions(m, 0.5).tolist() == [[0, 1], [1, 0]]
    assert top_area_regions(m, 0.75).tolist() == [[0, 1], [1, 1]]
    assert top_area_regions(m, 0.0).sum() == 0 and top_area_regions(m, 1.0).sum() == 4
    # a constant 3 x 3 map at a = 0.5: round(4.5) = 4 (half to even, as objectives.area_step) -> first 4 pixels
    flat = top_area_regions(torch.full((3, 3), 0.3), 0.5).flatten().tolist()
    assert flat == [1, 1, 1, 1, 0, 0, 0, 0, 0] and area_pixels(0.5, 9) == 4 and area_pixels(0.5, 11) == 6


def test_top_area_regions_exact_counts_for_many_areas_and_shapes():
    g = torch.Generator().manual_seed(0)
    maps = torch.rand(2, 3, 17, 23, generator=g)
    maps[0, 0, :5] = 0.5  # ties
    regions = top_area_regions(maps, CURVE_AREAS)
    assert regions.shape == (8, 2, 3, 17, 23)
    assert set(regions.unique().tolist()) <= {0.0, 1.0}
    for i, a in enumerate(CURVE_AREAS):
        assert (regions[i].flatten(2).sum(-1) == round(a * 17 * 23)).all()
        # every pixel inside ranks at least as high as every pixel outside
        inside = torch.where(regions[i] > 0, maps, torch.inf).flatten(2).amin(-1)
        outside = torch.where(regions[i] > 0, -torch.inf, maps).flatten(2).amax(-1)
        assert (inside >= outside).all()
    # growing the area only adds pixels
    assert (regions[1:] >= regions[:-1]).all()


def test_top_area_regions_refuses_bad_input():
    with pytest.raises(FixedAreaError, match="area must be in"):
        top_area_regions(torch.rand(4, 4), 1.5)
    with pytest.raises(FixedAreaError, match="NaN"):
        top_area_regions(torch.tensor([[0.1, float("nan")]]), 0.5)
    with pytest.raises(FixedAreaError, match="h x w"):
        top_area_regions(torch.rand(4), 0.5)


def _image() -> torch.Tensor:
    x = torch.zeros(1, 3, 2, 2)
    x[0, 0] = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    return x


def test_kept_and_removed_by_hand_in_one_forward():
    clf, x = SumClassifier(), _image()
    regions = torch.tensor([[[0, 0], [0, 1]], [[1, 1], [0, 0]], [[0, 0], [0, 0]]], dtype=torch.float32)
    s = kept_and_removed(clf, x, 0, regions)
    assert clf.calls == [6]  # 3 regions x (kept, removed) in one forward
    sig = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    # gray fill (0): kept sums 4, 3, 0; removed sums 6, 7, 10
    assert s.kept.tolist() == pytest.approx([sig(4), sig(3), sig(0)], abs=1e-6)
    assert s.removed.tolist() == pytest.approx([sig(6), sig(7), sig(10)], abs=1e-6)
    assert s.kept_top1.tolist() == [True, True, True]  # logit 0 >= 0: argmax is class 0 (ties -> first)
    # per-region labels; class 1 is top-1 nowhere the sum is positive
    s1 = kept_and_removed(clf, x, [1, 0, 1], regions)
    assert s1.kept.tolist() == pytest.approx([1 - sig(4), sig(3), 1 - sig(0)], abs=1e-6)
    assert s1.removed_top1.tolist() == [False, True, False]
    # a fill tensor of 0.5 on channel 0: kept 4 + 3 * 0.5, removed 6 + 0.5
    fill = torch.zeros_like(x)
    fill[0, 0] = 0.5
    s2 = kept_and_removed(clf, x, 0, regions[:1], fill=fill)
    assert (s2.kept.item(), s2.removed.item()) == pytest.approx((sig(5.5), sig(6.5)), abs=1e-6)
    # an infiller is called once on the whole batch with each view's keep mask
    seen = []

    def infiller(xs, keep):
        seen.append((tuple(xs.shape), keep[:, 0].clone()))
        return torch.full_like(xs, -1.0)

    clf.calls.clear()
    s3 = kept_and_removed(clf, x, 0, regions[:2], fill=infiller)
    assert clf.calls == [4] and len(seen) == 1 and seen[0][0] == (4, 3, 2, 2)
    assert torch.equal(seen[0][1], torch.cat([regions[:2], 1 - regions[:2]]))
    # kept region {4}: 4 - 3 = 1; removed {1, 2, 3}: 6 - 1 = 5
    assert s3.kept[0].item() == pytest.approx(sig(1), abs=1e-6) and s3.removed[0].item() == pytest.approx(sig(5))
    # chunks when asked
    clf.calls.clear()
    kept_and_removed(clf, x, 0, regions, batch_size=4)
    assert clf.calls == [4, 2]


def test_kept_and_removed_refuses_mismatches():
    clf, x = SumClassifier(), _image()
    with pytest.raises(FixedAreaError, match="regions must be"):
        kept_and_removed(clf, x, 0, torch.ones(1, 3, 3))
    with pytest.raises(FixedAreaError, match="2 labels for 3 regions"):
        kept_and_removed(clf, x, [0, 1], torch.ones(3, 2, 2))
    with pytest.raises(FixedAreaError, match="x must be"):
        kept_and_removed(clf, x[0], 0, torch.ones(1, 2, 2))


def test_area_curve_and_its_80_percent_point():
    # channel 0 is 1 everywhere on 10 x 10: p(class 0) of a view = the share of pixels kept
    x = torch.zeros(1, 3, 10, 10)
    x[0, 0] = 1.0
    clf = ShareClassifier(100.0)
    curve = area_curve(clf, x, 0, torch.rand(10, 10, generator=torch.Generator().manual_seed(1)))
    frame = curve.frame
    kept_counts = [5, 13, 21, 29, 36, 44, 52, 60]  # round(a * 100) for the 8 curve areas
    assert frame["area"].tolist() == list(CURVE_AREAS)
    assert frame["kept"].tolist() == pytest.approx([k / 100 for k in kept_counts], abs=1e-6)
    assert frame["removed"].tolist() == pytest.approx([1 - k / 100 for k in kept_counts], abs=1e-6)
    assert frame.attrs["clean"] == pytest.approx(1.0, abs=1e-6)  # from the same forward
    assert curve.smallest_area is None  # 0.6 keeps 60 % < 80 % of the clean probability
    assert area_curve(clf, x, 0, torch.rand(10, 10), keep_fraction=0.3).smallest_area == pytest.approx(CURVE_AREAS[4])
    assert area_curve(clf, x, 0, torch.rand(10, 10), clean_prob=0.5).smallest_area == pytest.approx(CURVE_AREAS[5])


def test_area_curve_in_chunks_gives_the_same_curve():
    x = torch.zeros(1, 3, 10, 10)
    x[0, 0] = 1.0
    clf = ShareClassifier(100.0)
    seen: list[tuple[int, bool]] = []
    clf.register_forward_pre_hook(lambda _m, args: seen.append(
        (args[0].shape[0], args[0].is_contiguous(memory_format=torch.channels_last))))
    m = torch.rand(10, 10, generator=torch.Generator().manual_seed(2))
    whole = area_curve(clf, x, 0, m).frame
    assert [n for n, _ in seen] == [18]  # 8 kept + 8 removed, the whole image kept and (unused) removed
    seen.clear()
    chunked = area_curve(clf, x, 0, m, batch_size=5).frame
    assert [n for n, _ in seen] == [5, 5, 5, 3] and all(cl for _, cl in seen)  # channels-last chunks
    assert chunked["kept"].tolist() == pytest.approx(whole["kept"].tolist(), abs=1e-6)
    assert chunked["removed"].tolist() == pytest.approx(whole["removed"].tolist(), abs=1e-6)


def test_area_curve_takes_one_map_per_area():
    # the object (channel 0 = 1) is the left half; maps alternate between preferring left and right
    x = torch.zeros(1, 3, 10, 10)
    x[0, 0, :, :5] = 1.0
    clf = ShareClassifier(50.0)
    left = torch.zeros(10, 10)
    left[:, :5] = 1.0
    areas = (0.1, 0.2, 0.3, 0.4)
    maps = torch.stack([left, 1 - left, left, 1 - left])
    curve = area_curve(clf, x, 0, maps, areas=areas)
    # kept: on the object (10, -, 30, -) of its 50 pixels, or none of it
    assert curve.frame["kept"].tolist() == pytest.approx([0.2, 0.0, 0.6, 0.0], abs=1e-6)
    with pytest.raises(FixedAreaError, match="one per area"):
        area_curve(clf, x, 0, maps[:3], areas=areas)


def test_bootstrap_ci():
    assert bootstrap_ci([0.3] * 10) == pytest.approx((0.3, 0.3, 0.3))
    assert bootstrap_ci([0.7]) == (0.7, 0.7, 0.7)
    assert all(math.isnan(v) for v in bootstrap_ci([float("nan")]))
    v = torch.randn(400, generator=torch.Generator().manual_seed(0)) + 2.0
    mean, lo, hi = bootstrap_ci(v)
    assert mean == pytest.approx(float(v.mean())) and lo < mean < hi
    half = 1.96 * float(v.std()) / 20  # the normal interval's half width
    assert (hi - lo) / 2 == pytest.approx(half, rel=0.15)
    # seeded: the same generator seed gives the same interval; NaNs are left out
    assert bootstrap_ci(v) == bootstrap_ci(torch.cat([v, torch.tensor([float("nan")])]))
    assert bootstrap_ci(v, generator=torch.Generator().manual_seed(5)) != bootstrap_ci(v)


def test_region_iou_by_hand():
    a = torch.zeros(2, 3, 4)
    b = torch.zeros(2, 3, 4)
    a[0, 0, :2] = 1  # 2 pixels
    b[0, 0, 1:4] = 1  # 3 pixels, 1 shared: 1 / 4
    a[1, 2, :] = 1  # 4 pixels against the same 4: 1
    b[1, 2, :] = 1
    assert torch.allclose(region_iou(a, b), torch.tensor([0.25, 1.0]))
    assert float(region_iou(torch.zeros(3, 3), torch.zeros(3, 3))) == 1.0  # two empty regions: the same region
    assert float(region_iou(torch.eye(3), 1 - torch.eye(3))) == 0.0  # disjoint
    with pytest.raises(FixedAreaError, match="share one"):
        region_iou(torch.zeros(3, 3), torch.zeros(3, 4))
