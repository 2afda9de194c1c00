"""The per-image ``extremal`` method (Fong, Patrick & Vedaldi 2019): area hit, games, options, batching, seeds.

``AndNet`` needs two patches at once (class 0's logit is a gain times the smaller of the kept fractions of patch A
and patch B, both centred left-right so the paper's flip jitter changes nothing). At the area of one patch the two
games must disagree: keeping one whole patch keeps nothing (the other is gone), so the preservation game splits its
area between the patches; deleting one whole patch kills the class, so the deletion game takes one patch.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from saliency_core.labels import LabelSpecError
from saliency_core.methods.base import MethodError, create_method, method_entry
from saliency_core.methods.optimize.config import OptimizeError
from saliency_core.methods.optimize.extremal import ExtremalConfig, extremal_cost, extremal_masks
from saliency_core.methods.optimize.smooth_mask import calibrate_to_area, smooth_mask

SIZE = 64
A_BOX = (6, 22, 24, 40)  # top, bottom, left, right: 16 x 16 = 256 pixels, 1/16 of the image
B_BOX = (42, 58, 24, 40)
PATCH_AREA = 256 / SIZE ** 2


class AndNet(nn.Module):
    """Class 0 = 50 * min(mean of channel 0 over A, over B); class 1 = 0 (a constant rival)."""

    num_classes = 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (t1, b1, l1, r1), (t2, b2, l2, r2) = A_BOX, B_BOX
        a = x[:, 0, t1:b1, l1:r1].mean(dim=(1, 2))
        b = x[:, 0, t2:b2, l2:r2].mean(dim=(1, 2))
        return torch.stack([50.0 * torch.minimum(a, b), torch.zeros_like(a)], dim=1)


def coverage(mask: torch.Tensor, box: tuple[int, int, int, int]) -> float:
    t, b, l, r = box
    return float((mask[t:b, l:r] > 0.5).float().mean())


@pytest.fixture
def image() -> torch.Tensor:
    return torch.ones(1, 3, SIZE, SIZE)


def test_hits_two_areas_at_once(tiny_classifier, one_torch_thread):
    """Both areas of one batched run end within 0.02 of their target, and nearly binary."""
    x = torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    cfg = ExtremalConfig(area=0.1, areas=(0.3,), iterations=120, infiller="gray")
    res = extremal_masks(tiny_classifier, x, [3], cfg)
    assert res.masks.shape == (2, 1, SIZE, SIZE)
    for a, m, raw in zip((0.1, 0.3), res.masks[:, 0], res.raw_area):
        assert abs(float((m > 0.5).float().mean()) - a) <= 0.02
        assert abs(raw - a) <= 0.04  # before the final remap: the optimisation itself gets close
        assert float(((m > 0.1) & (m < 0.9)).float().mean()) <= 0.35  # mostly 0 or 1: only the smooth rim is soft


def test_calibration_keeps_the_order_and_sets_the_area():
    mask = torch.rand(3, 1, 20, 20, generator=torch.Generator().manual_seed(0)) ** 2
    areas = torch.tensor([0.1, 0.25, 0.6])
    out = calibrate_to_area(mask, areas)
    for m, o, a in zip(mask, out, areas.tolist()):
        assert float((o > 0.5).float().mean()) == pytest.approx(a, abs=1 / 400)
        assert torch.equal(m.flatten().argsort(), o.flatten().argsort())
        assert 0 <= float(o.min()) and float(o.max()) <= 1
    binary = (mask > 0.5).float()  # already 0 / 1 at its top-a value: left as it is
    assert torch.equal(calibrate_to_area(binary, torch.tensor([0.05, 0.05, 0.05])), binary)


@pytest.mark.parametrize("parametrization", ["smooth", "continuous"])
def test_games_choose_different_regions(image, parametrization, one_torch_thread):
    """Preservation splits its area over both patches; deletion takes one whole patch."""
    common = dict(area=PATCH_AREA, iterations=150, infiller="gray", parametrization=parametrization)
    keep = extremal_masks(AndNet(), image, [0], ExtremalConfig(objective="ssr", **common)).masks[0, 0]
    delete = extremal_masks(AndNet(), image, [0], ExtremalConfig(objective="sdr", **common)).masks[0, 0]
    kept = sorted((coverage(keep, A_BOX), coverage(keep, B_BOX)))
    removed = sorted((coverage(delete, A_BOX), coverage(delete, B_BOX)))
    assert kept[0] > 0.2, kept  # both patches partly kept
    assert removed[1] > 0.8 and removed[0] < 0.1, removed  # one patch wholly removed, the other left
    assert AndNet()(image * keep)[0, 0] > AndNet()(image * delete)[0, 0]


def test_method_gives_area_masks_and_declares_itself(tiny_classifier, one_torch_thread):
    """``areas`` adds A x K x H x W masks to the result; the registration carries the traits a UI reads."""
    x = torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    method = create_method("extremal", area=0.2, areas="0.05,0.4", iterations=30, infiller="gray")
    method.show_progress = False
    seen: list[float] = []
    res = method(tiny_classifier, x, [1, 7], None, progress=lambda f, msg: seen.append(f))
    assert res.masks.shape == (2, SIZE, SIZE) and res.per_label
    assert res.areas == (0.05, 0.4) and res.area_masks.shape == (2, 2, SIZE, SIZE)
    assert len(seen) == 30 and seen[-1] == 1.0 and seen == sorted(seen)
    entry = method_entry("extremal")
    assert entry.attrs["takes_area"] and entry.attrs["on_request"] and entry.attrs["group"] == "Per-image optimisation"
    cfg = ExtremalConfig(iterations=100, area=0.1, areas=(0.2,), objective="both")
    assert extremal_cost(cfg, 3) == 3.0 * 100 * 2 * 2 * 3


def test_progress_sends_current_masks(image):
    got = []
    extremal_masks(AndNet(), image, [0], ExtremalConfig(iterations=20, infiller="gray", preview_every=10),
                   progress=lambda f, msg, current_masks=None: got.append(current_masks))
    assert [m is None for m in got].count(False) == 2 and got[-1].shape == (1, SIZE, SIZE)


def test_seed_reproducible_through_the_generator(tiny_classifier, one_torch_thread):
    """A random infiller draws from the run's seed: the same seed gives the same masks, another seed others."""
    x = torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(2))

    def run(seed: int) -> torch.Tensor:
        return extremal_masks(tiny_classifier, x, [0], ExtremalConfig(iterations=15, infiller="noise",
                                                                       seed=seed)).masks
    torch.manual_seed(123)
    first = run(5)
    torch.manual_seed(999)  # global RNG state must not matter
    assert torch.equal(first, run(5))
    assert not torch.equal(first, run(6))


@pytest.mark.parametrize("options, words", [
    (dict(area=1.5), "area"),
    (dict(area=0), "area"),
    (dict(areas="0.1,2"), "areas"),
    (dict(areas=["x"]), "areas"),
    (dict(objective="keep"), "objective"),
    (dict(iterations=0), "iterations"),
    (dict(parametrization="pixels"), "parametrization"),
    (dict(infiller="nothing"), "nothing"),
    (dict(colour=1), "colour"),
])
def test_bad_options_give_one_line(options, words):
    with pytest.raises(MethodError) as err:
        create_method("extremal", **options)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_bad_input_gives_one_line(image):
    with pytest.raises(LabelSpecError, match="out of range"):
        extremal_masks(AndNet(), image, [5], ExtremalConfig(iterations=1))
    with pytest.raises(OptimizeError, match="1 x 3 x H x W"):
        extremal_masks(AndNet(), image[0], [0], ExtremalConfig(iterations=1))


def test_smooth_mask_is_a_union_of_flat_blobs():
    """One parameter on: 1 within sigma / 2 of it, falling to under 0.1 at 1.4 sigma, 0 beyond its reach; all
    parameters on: (nearly) 1 everywhere; all off: 0."""
    params = torch.zeros(1, 1, 10, 10)
    params[0, 0, 5, 5] = 1.0  # at pixel (35, 35) for step 7
    m = smooth_mask(params, (70, 70), 7, 21.0)[0, 0]
    assert m[35, 35] == pytest.approx(1.0, abs=1e-4) and m[35, 45] == pytest.approx(1.0, abs=1e-3)
    assert 0.3 < m[35, 56] < 0.9 and m[35, 65] < 0.1 and m[0, 0] == 0
    assert torch.allclose(m[35, 25:46], m[25:46, 35])  # round: the same along a row and a column
    assert smooth_mask(torch.ones(1, 1, 10, 10), (70, 70), 7, 21.0).min() > 0.95
    assert smooth_mask(torch.zeros(1, 1, 10, 10), (70, 70), 7, 21.0).abs().max() == 0


def _top_region(score: torch.Tensor, area: float) -> torch.Tensor:
    k = round(area * score.numel())
    region = torch.zeros(score.numel(), dtype=torch.bool)
    region[score.flatten().topk(k).indices] = True
    return region.view_as(score)


def test_cam_parametrization_starts_at_the_cam_region_and_holds_its_areas(tiny_classifier, one_torch_thread):
    """``cam``: at step 0 the region is the top a of the label's class activation map (no step taken: a learning
    rate of ~0); every area is hit exactly; after steps the region has moved and the kept probability has grown."""
    import torch.nn.functional as F

    from saliency_core.maskers.area_prior import class_activation_maps

    x = tiny_classifier.preprocessing.normalize(torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(4)))
    with torch.no_grad():
        head = tiny_classifier.forward_features(x).head
        label = int(tiny_classifier(x).argmax())
    cam = F.interpolate(class_activation_maps(tiny_classifier, head, torch.tensor([label])), size=(64, 64),
                        mode="bilinear", align_corners=False)[0, 0]
    still = extremal_masks(tiny_classifier, x, [label], ExtremalConfig(
        parametrization="cam", area=0.1, areas=(0.3,), iterations=1, lr=1e-12, infiller="gray", reward="prob"))
    for k, a in enumerate((0.1, 0.3)):
        m = still.masks[k, 0]
        assert float((m > 0.5).float().mean()) == pytest.approx(a, abs=0.5 / 64 ** 2)
        overlap = float(((m > 0.5) & _top_region(cam, a)).float().sum() / (m > 0.5).float().sum())
        assert overlap > 0.97  # the same region (up to ties of the bilinear upsampling)

    def kept(masks: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            r = (masks[:, 0] > 0.5).float()[:, None]
            return tiny_classifier(x * r).softmax(-1)[:, label]

    moved = extremal_masks(tiny_classifier, x, [label], ExtremalConfig(
        parametrization="cam", area=0.1, areas=(0.3,), iterations=30, infiller="gray", reward="prob",
        jitter=False))
    assert (moved.masks > 0.5).float().mean(dim=(2, 3)).flatten().tolist() == pytest.approx([0.1, 0.3],
                                                                                            abs=0.5 / 64 ** 2)
    assert ((moved.masks > 0.5) != (still.masks > 0.5)).any()
    assert (kept(moved.masks) > kept(still.masks)).all()


def test_cam_parametrization_needs_a_pooled_map(image):
    with pytest.raises(OptimizeError, match="parametrization 'cam'") as err:
        extremal_masks(AndNet(), image, [0], ExtremalConfig(parametrization="cam", iterations=1))
    assert "\n" not in str(err.value)


def test_fast_preset_starts_at_cam_and_improves_on_it_in_its_few_steps(tiny_classifier, one_torch_thread):
    """``extremal-fast`` is ``extremal`` with the cam parametrisation, the probability reward, gray fill and 15 steps
    (options still override them); its regions hit their areas and keep more than the CAM's regions of that area."""
    import torch.nn.functional as F

    from saliency_core.maskers.area_prior import class_activation_maps

    entry = method_entry("extremal-fast")
    assert entry.attrs["takes_area"] and entry.attrs["on_request"] and entry.attrs["group"] == "Per-image optimisation"
    method = create_method("extremal-fast", area=0.1, areas="0.3")
    cfg = method.config
    assert (cfg.parametrization, cfg.reward, cfg.infiller, cfg.iterations, cfg.objective) == (
        "cam", "prob", "gray", 15, "ssr")
    assert create_method("extremal-fast", iterations=4).config.iterations == 4
    assert create_method("extremal").config.parametrization == "smooth"  # the paper's method is unchanged
    method.show_progress = False
    x = tiny_classifier.preprocessing.normalize(torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(4)))
    with torch.no_grad():
        clean = tiny_classifier.forward_features(x)
    label = int(clean.logits.argmax())
    res = method(tiny_classifier, x, [label], clean)
    masks = torch.cat([res.masks[None], res.area_masks])[:, 0]  # areas 0.1, 0.3
    cam = F.interpolate(class_activation_maps(tiny_classifier, clean.head, torch.tensor([label])), size=(64, 64),
                        mode="bilinear", align_corners=False)[0, 0]
    with torch.no_grad():
        for m, a in zip(masks, (0.1, 0.3)):
            region = (m > 0.5).float()
            assert float(region.mean()) == pytest.approx(a, abs=0.5 / 64 ** 2)
            start = _top_region(cam, a).float()
            p = tiny_classifier(torch.cat([x * region, x * start])).softmax(-1)[:, label]
            assert p[0] > p[1]
