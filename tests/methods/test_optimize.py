"""Per-image mask optimisation (saliency_core.methods.optimize) on hand-built classifiers whose evidence is known.

``PatchNet`` looks only at fixed patches (class c's logit is a gain times the mean of channel 0 over
patch c, the last class is a constant "background"), so the right mask for class c is patch c under
SSR (keep it) and under SDR (remove it). ``PixelNet`` has evidence at every pixel (a random sign
pattern), which makes the effect of TV and of the upsampling factor visible.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from saliency_core.classifiers import Classifier
from saliency_core.images.preprocessing import Preprocessing
from saliency_core.infill.reference_pool import ReferencePoolError, build_pool, pool_from_folder
from saliency_core.labels import LabelSpecError
from saliency_core.methods.base import MethodError, create_method, method_entries
from saliency_core.methods.optimize.config import PRESETS, OptimizeConfig, OptimizeError, make_config
from saliency_core.methods.optimize.engine import (
    OptimizationCancelled,
    class_score,
    concrete_sample,
    optimize_masks,
    regularisers,
    upsample_logit,
    upsample_probability,
    working_size,
)
from saliency_core.objectives import total_variation_per_mask

SIZE = 64
BOXES = [(8, 24, 8, 24), (36, 56, 36, 56)]  # (top, bottom, left, right) of the patch of class 0 and 1


class PatchNet(nn.Module):
    def __init__(self, boxes=BOXES, gain: float = 6.0) -> None:
        super().__init__()
        self.boxes = boxes
        self.gain = gain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cols = [self.gain * x[:, 0, t:b, l:r].mean(dim=(1, 2)) for t, b, l, r in self.boxes]
        cols.append(torch.zeros_like(cols[0]))
        return torch.stack(cols, dim=1)


class PixelNet(nn.Module):
    """Class 0's logit is sum(w * x[0]) / sqrt(n) with a fixed random sign pattern w; class 1 is 0."""

    def __init__(self, size: int = SIZE, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("w", torch.randint(0, 2, (size, size), generator=g).float() * 2 - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = (x[:, 0] * self.w).flatten(1).sum(1) / math.sqrt(self.w.numel()) * 0.5
        return torch.stack([s, torch.zeros_like(s)], dim=1)


def wrap(net: nn.Module, n_classes: int) -> Classifier:
    pre = Preprocessing((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    clf = Classifier("test", net, pre, lambda m, x: (m(x), []), [], class_names=tuple(map(str, range(n_classes))))
    return clf.eval().requires_grad_(False)


def patch_image(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, 3, SIZE, SIZE, generator=g) * 0.3
    for t, b, l, r in BOXES:
        x[:, 0, t:b, l:r] = 1.5
    return x


def inside(mask: torch.Tensor, box) -> torch.Tensor:
    t, b, l, r = box
    sel = torch.zeros(mask.shape[-2:], dtype=torch.bool)
    sel[t:b, l:r] = True
    return sel


def fast(**kw) -> OptimizeConfig:
    base = dict(parametrization="continuous", infiller="gray", score="log-odds", objective="ssr", l1_weight=5e-4,
                tv_weight=0.0, upsample=2, steps=80, lr=0.1, resolution=None, early_stop_tol=0.0, samples=1)
    base.update(kw)
    return OptimizeConfig(**base)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def patchnet() -> Classifier:
    return wrap(PatchNet(), 3)


# ------------------------------------------------------------------ the optimised mask finds the evidence


@pytest.mark.parametrize("objective", ["ssr", "sdr", "both"])
def test_continuous_mask_concentrates_on_the_patch(patchnet, objective):
    x = patch_image()
    res = optimize_masks(patchnet, x, [0], fast(objective=objective))
    m = res.masks[0]
    sel = inside(m, BOXES[0])
    assert m.shape == (SIZE, SIZE)
    assert m[sel].mean() > 0.7, f"{objective}: mask inside the evidence patch is {m[sel].mean():.2f}"
    assert m[~sel].mean() < 0.15, f"{objective}: mask outside the patch is {m[~sel].mean():.2f}"


@pytest.mark.parametrize("objective", ["ssr", "sdr"])
def test_concrete_mask_concentrates_on_the_patch(patchnet, objective):
    cfg = make_config("fido", objective=objective, resolution=None, infiller="gray", steps=80, upsample=2)
    res = optimize_masks(patchnet, patch_image(), [0], cfg)
    m = res.masks[0]
    sel = inside(m, BOXES[0])
    assert m[sel].mean() > 0.6 and m[~sel].mean() < 0.2, (float(m[sel].mean()), float(m[~sel].mean()))
    assert res.batch_sizes[0] == 4  # 4 Concrete samples per step


def test_random_image_infill_finds_the_patch(patchnet):
    pool = torch.randn(6, 3, 32, 32) * 0.3  # references without the evidence; resized to the image by the infiller
    # log-odds: under log-prob the score saturates once the class is confident (a partial mask suffices)
    cfg = make_config("gupta", infiller_options={"pool": pool}, resolution=None, steps=80, upsample=2, lr=0.1,
                      l1_weight=5e-4, score="log-odds")
    m = optimize_masks(patchnet, patch_image(), [0], cfg).masks[0]
    sel = inside(m, BOXES[0])
    assert m[sel].mean() > 0.7 and m[~sel].mean() < 0.2


def test_per_label_masks_in_one_batched_run_match_separate_runs(patchnet):
    x = patch_image()
    cfg = fast()
    both = optimize_masks(patchnet, x, [0, 1], cfg)
    assert both.masks.shape == (2, SIZE, SIZE)
    for k, box in enumerate(BOXES):
        sel = inside(both.masks[k], box)
        assert both.masks[k][sel].mean() > 0.7 and both.masks[k][~sel].mean() < 0.15
    assert all(b == 2 for b in both.batch_sizes)  # both labels in every classifier call
    # the labels' losses are independent and Adam is per parameter: batching changes nothing
    for k, label in enumerate([0, 1]):
        alone = optimize_masks(patchnet, x, [label], cfg).masks[0]
        assert torch.allclose(both.masks[k], alone, atol=1e-5)


def test_label_chunks_accumulate_the_same_gradient(patchnet):
    x = patch_image()
    one_call = optimize_masks(patchnet, x, [0, 1], fast(steps=10))
    chunked = optimize_masks(patchnet, x, [0, 1], fast(steps=10, max_batch=1))
    assert len(chunked.batch_sizes) == 2 * len(one_call.batch_sizes)
    assert torch.allclose(one_call.masks, chunked.masks, atol=1e-6)


# ------------------------------------------------------------------ regularisers and upsampling


def roughness(m: torch.Tensor) -> float:
    """Mean |discrete Laplacian|: zero inside bilinear cells, large for pixel-level detail."""
    lap = m[1:-1, 1:-1] * 4 - m[:-2, 1:-1] - m[2:, 1:-1] - m[1:-1, :-2] - m[1:-1, 2:]
    return float(lap.abs().mean())


def test_more_tv_gives_a_smoother_mask():
    clf = wrap(PixelNet(), 2)
    x = torch.ones(1, 3, SIZE, SIZE)
    tvs = []
    for w in (0.0, 0.05, 0.5):
        m = optimize_masks(clf, x, [0], fast(tv_weight=w, upsample=1, l1_weight=1e-3, steps=60)).masks
        tvs.append(float(total_variation_per_mask(m[:, None])[0]))
    assert tvs[0] > tvs[1] > tvs[2], tvs


def test_larger_upsampling_factor_gives_a_blockier_mask():
    clf = wrap(PixelNet(), 2)
    x = torch.ones(1, 3, SIZE, SIZE)
    rough = {s: roughness(optimize_masks(clf, x, [0], fast(upsample=s, l1_weight=1e-3, steps=60)).masks[0])
             for s in (1, 2, 4, 8)}
    assert rough[1] > rough[2] > rough[4] > rough[8], rough


def test_working_resolution_keeps_the_mask_at_the_input_size(patchnet):
    net = wrap(PatchNet([(16, 48, 16, 48)]), 2)
    x = torch.zeros(1, 3, 128, 96)
    x[:, 0, 16:48, 16:48] = 1.5
    res = optimize_masks(net, x, [0], fast(resolution=48, upsample=4, steps=40))
    assert res.masks.shape == (1, 128, 96)
    assert working_size(128, 96, 48) == (64, 48) and working_size(32, 40, 48) == (32, 40)


# ------------------------------------------------------------------ determinism, progress, stopping


def test_same_seed_same_mask_and_other_seed_other_mask(patchnet):
    pool = torch.randn(5, 3, SIZE, SIZE)
    cfg = make_config("fido", infiller="random-image", infiller_options={"pool": pool}, resolution=None, steps=15)
    res = optimize_masks(patchnet, patch_image(), [0, 1], cfg)
    a = res.masks
    assert "<tensor (5, 3, 64, 64)>" in json.dumps(res.info())  # result.json stays writable with a pool tensor
    b = optimize_masks(patchnet, patch_image(), [0, 1], cfg).masks
    c = optimize_masks(patchnet, patch_image(), [0, 1], make_config("fido", infiller="random-image", seed=1,
                                                                     infiller_options={"pool": pool},
                                                                     resolution=None, steps=15)).masks
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_progress_gets_fractions_and_masks_and_should_stop_ends_early(patchnet):
    seen = []

    def progress(fraction, message, current_masks=None):
        seen.append((fraction, message, None if current_masks is None else current_masks.shape))

    res = optimize_masks(patchnet, patch_image(), [0, 1], fast(steps=10, preview_every=4), progress=progress)
    fractions = [f for f, _, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(seen) == 10
    assert [i for i, (_, _, s) in enumerate(seen) if s is not None] == [3, 7, 9]
    assert seen[-1][2] == (2, SIZE, SIZE) and "step 10/10" in seen[-1][1]
    assert res.stopped == "completed"

    calls = []
    res = optimize_masks(patchnet, patch_image(), [0], fast(steps=50), progress=lambda f, m: calls.append(f),
                         should_stop=lambda: len(calls) >= 3)
    assert res.stopped == "cancelled" and res.steps_run == 3 and res.masks.shape == (1, SIZE, SIZE)


def test_progress_raising_cancelled_aborts_with_the_partial_result(patchnet):
    def progress(fraction, message):
        if fraction >= 0.2:
            raise OptimizationCancelled()

    with pytest.raises(OptimizationCancelled) as info:
        optimize_masks(patchnet, patch_image(), [0], fast(steps=10), progress=progress)
    assert info.value.partial is not None and info.value.partial.steps_run == 2


def test_early_stopping_on_a_flat_loss_and_converged_labels_stay_frozen():
    flat = wrap(PatchNet(gain=0.0), 3)  # the score ignores the image: nothing to learn without regularisers
    res = optimize_masks(flat, patch_image(), [0, 1], fast(steps=100, l1_weight=0.0, early_stop_tol=0.01,
                                                           early_stop_patience=5, warmup=0.0))
    assert res.stopped == "converged" and res.steps_run == 10 and res.converged_at == [10, 10]
    assert torch.allclose(res.masks, torch.full_like(res.masks, 0.5))


# ------------------------------------------------------------------ pure functions, hand-computed


def test_class_scores_by_hand():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    y = torch.tensor([0, 0])
    p0 = math.exp(2) / (math.exp(2) + 2)
    log_odds = class_score(logits, y, "log-odds", "score", 1)
    assert torch.allclose(log_odds, torch.tensor([math.log(p0 / (1 - p0)), math.log(0.5)]), atol=1e-6)
    mean_log_prob = (math.log(p0) + math.log(1 / 3)) / 2
    assert torch.allclose(class_score(logits, y, "log-prob", "score", 2), torch.tensor([mean_log_prob]))
    assert torch.allclose(class_score(logits, y, "prob", "probability", 2), torch.tensor([(p0 + 1 / 3) / 2]))
    pm = (p0 + 1 / 3) / 2
    assert torch.allclose(class_score(logits, y, "log-odds", "probability", 2), torch.tensor([math.log(pm / (1 - pm))]),
                          atol=1e-6)


def test_concrete_logit_is_stable_where_float32_saturates():
    theta = torch.tensor([[[[30.0, -30.0]]]])
    naive_p = torch.sigmoid(theta)
    assert torch.isinf(torch.log(naive_p) - torch.log(1 - naive_p)).any()  # what FIDO's formula gives
    logit = upsample_logit(theta, (1, 2))
    assert torch.allclose(logit, theta, atol=1e-3)
    # low temperature: nearly binary draws with the right probability
    g = torch.Generator().manual_seed(0)
    from saliency_core.methods.optimize.engine import logistic_noise

    z = concrete_sample(torch.full((20000,), math.log(0.3 / 0.7)), logistic_noise((20000,), g), 0.1)
    assert abs(float((z > 0.5).float().mean()) - 0.3) < 0.02
    assert float(((z < 0.05) | (z > 0.95)).float().mean()) > 0.8


def test_regularisers_by_hand():
    ones = torch.ones(1, 1, 224, 224)
    area, tv = regularisers(ones, 2.0)
    assert float(area) == pytest.approx(224 * 224) and float(tv) == 0.0
    half = torch.zeros(1, 1, 224, 224)
    half[..., :, :112] = 1.0  # one vertical edge of height 224: TV = 224
    area, tv = regularisers(half, 2.0)
    assert float(area) == pytest.approx(224 * 224 / 2) and float(tv) == pytest.approx(224)
    small = torch.zeros(1, 1, 112, 112)
    small[..., :, :56] = 1.0  # the same picture at half size: same area and TV after rescaling
    a2, tv2 = regularisers(small, 2.0)
    assert float(a2) == pytest.approx(224 * 224 / 2) and float(tv2) == pytest.approx(224)
    up = upsample_probability(torch.zeros(2, 1, 4, 4), (16, 16))
    assert up.shape == (2, 1, 16, 16) and torch.allclose(up, torch.full_like(up, 0.5))


# ------------------------------------------------------------------ options and errors


@pytest.mark.parametrize("options, words", [
    (dict(upsample=3), "upsample"),
    (dict(s=3), "upsample"),
    (dict(l1_weight=-1e-3), "l1_weight"),
    (dict(tv_weight=-0.1), "tv_weight"),
    (dict(infiller="magic"), "unknown infiller 'magic'"),
    (dict(parametrization="concrete", samples=2), "samples >= 4"),
    (dict(objective="smallest"), "objective"),
    (dict(score="logits"), "score"),
    (dict(steps=0), "steps"),
    (dict(init=1.0), "init"),
    (dict(temperature=0), "temperature"),
    (dict(lr=float("nan")), "lr"),
    (dict(colour="red"), "unknown option 'colour'"),
])
def test_bad_options_give_clear_errors(options, words):
    with pytest.raises(OptimizeError, match=words):
        make_config("fido", **options)
    with pytest.raises(MethodError):  # OptimizeError is a MethodError, hence a ValueError
        create_method("gupta", **options)


def test_bad_labels_and_inputs(patchnet):
    with pytest.raises(LabelSpecError, match="out of range"):
        optimize_masks(patchnet, patch_image(), [3], fast(steps=1))
    with pytest.raises(LabelSpecError):
        optimize_masks(patchnet, patch_image(), [], fast(steps=1))
    with pytest.raises(OptimizeError, match="1 x 3 x H x W"):
        optimize_masks(patchnet, torch.zeros(2, 3, 8, 8), [0], fast(steps=1))


def test_presets_and_registered_methods():
    for name in PRESETS:
        make_config(name)  # every preset is a valid config
    assert make_config("fido").parametrization == "concrete" and make_config("fido").score == "log-odds"
    assert make_config("gupta").infiller == "random-image" and make_config("gupta-paper").steps == 2000
    assert make_config("meaningful-perturbation").infiller == "blur"
    methods = method_entries()
    for name in ("fido", "meaningful-perturbation", "gupta", "fido-paper", "gupta-paper", "optimize"):
        assert name in methods and methods[name].per_label
    m = create_method("gupta", steps=7, s=8, tv_weight=0.02)
    assert (m.config.steps, m.config.upsample, m.config.tv_weight, m.config.infiller) == (7, 8, 0.02, "random-image")
    assert create_method("meaningful-perturbation").config.objective == "sdr"
    with pytest.raises(MethodError, match="unknown option 'preset'"):
        create_method("optimize", preset="fido")  # a preset is a method of its own


def test_method_end_to_end_through_explain_on_a_tiny_timm_model():
    from saliency_core.classifiers import load_classifier
    from saliency_core.explanation import ExplainConfig, explain

    clf = load_classifier("timm:test_efficientnet", random_init=True, num_classes=10)
    img = Image.fromarray((np.random.default_rng(0).random((80, 96, 3)) * 255).astype(np.uint8))
    cfg = ExplainConfig(method="gupta", method_options={"steps": 2}, labels="top2",
                        infiller="gray")
    expl = explain(img, cfg, classifier=clf)
    assert expl.per_label and expl.masks.shape == (2, 80, 96) and expl.info["steps_run"] == 2
    assert expl.info["images_forwarded"] == 2 * 2 * 4


# ------------------------------------------------------------------ reference pool


def test_reference_pool_from_a_folder_and_excluding_the_explained_photo(tmp_path):
    rng = np.random.default_rng(0)
    photos = [(rng.random((40, 50, 3)) * 255).astype(np.uint8) for _ in range(2)]
    for i, arr in enumerate(photos):
        Image.fromarray(arr).save(tmp_path / f"p{i}.png")
    pre = Preprocessing((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    pool = pool_from_folder(tmp_path, pre, size=32, crops=2)
    assert pool.images.shape == (6, 3, 32, 32) and pool.sources.count("p0.png") == 3
    assert float(pool.images.min()) >= -1.0 - 1e-6 and float(pool.images.max()) <= 1.0 + 1e-6  # normalised
    x01 = torch.from_numpy(photos[0] / 255.0).permute(2, 0, 1)[None].float()
    assert set(pool.excluding(x01).sources) == {"p1.png"}
    with pytest.raises(ReferencePoolError):
        pool_from_folder(tmp_path / "missing", pre)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReferencePoolError, match="no images"):
        pool_from_folder(tmp_path / "empty", pre)
    with pytest.raises(ReferencePoolError):
        build_pool([], pre)
