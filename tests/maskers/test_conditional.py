"""The conditional masker: its condition changes the mask, its trained space round-trips through the
checkpoint and bounds what it accepts, and older (unconditional) checkpoints keep working."""
from __future__ import annotations

import json

import pytest
import torch

from saliency_core.errors import OptionError
from saliency_core.maskers.checkpoint import CheckpointError, load_masker, metadata_problems, read_metadata, save_masker
from saliency_core.maskers.conditional import (
    CONDITION_SIZE,
    ConditionalMasker,
    ConditionalMaskerConfig,
    Setting,
    encode_settings,
    mix_smoothed,
)
from saliency_core.objectives import total_variation_per_mask
from saliency_core.options import declared_options

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make_masker(classifier, **space) -> ConditionalMasker:
    """A conditional masker for ``classifier`` whose condition MLP is random (a fresh one's FiLM is the
    identity, on which only the upsampling acts)."""
    torch.manual_seed(1)
    masker = ConditionalMasker(ConditionalMaskerConfig(stage_channels=classifier.stage_channels, **space))
    torch.nn.init.normal_(masker.condition[-1].weight, std=0.5)
    return masker.eval()


@pytest.fixture(scope="module")
def stages(tiny_classifier):
    torch.manual_seed(0)
    x = tiny_classifier.preprocessing.normalize(torch.rand(2, 3, 64, 64))
    with torch.no_grad():
        return tiny_classifier.forward_features(x).stages


def test_encoding_by_hand():
    code = encode_settings([Setting("sdr", "noise", 0.0, 4), Setting("both", "gray", 1e-3, 1)])
    assert code.shape == (2, CONDITION_SIZE) == (2, 13)
    assert code[0].tolist() == [0, 1, 0, 0, 0, 1, 0, 1, 0, 0, 0, 1, 0]
    # log10(1e-3) = -3 on the span -5 .. 0 -> 2 * (2 / 5) - 1 = -0.2
    assert code[1].tolist() == pytest.approx([0, 0, 1, 1, 0, 0, 0, 0, -0.2, 1, 0, 0, 0])


def test_the_area_weight_is_a_14th_entry_only_for_maskers_trained_over_it():
    s = [Setting(area_weight=1.0), Setting(area_weight=4.0), Setting(area_weight=1 / 16), Setting(area_weight=64.0)]
    code = encode_settings(s, area=True)
    assert code.shape == (4, CONDITION_SIZE + 1)
    # log2 over the span -4 .. 4: 1 -> 0, 4 -> 0.5, 1/16 -> -1, beyond the span clamped to 1
    assert code[:, -1].tolist() == pytest.approx([0.0, 0.5, -1.0, 1.0])
    assert torch.equal(code[:, :-1], encode_settings(s))
    assert ConditionalMaskerConfig(stage_channels=[4, 8, 16, 32, 64]).condition_size == CONDITION_SIZE
    assert ConditionalMaskerConfig(stage_channels=[4, 8, 16, 32, 64], area_low=0.5,
                                   area_high=2.0).condition_size == CONDITION_SIZE + 1


@pytest.mark.parametrize("change", [dict(objective="ssr"), dict(objective="sdr"), dict(infiller="noise"),
                                    dict(tv_weight=0.0), dict(tv_weight=0.05), dict(upsample=2),
                                    dict(area_weight=3.0)])
def test_each_condition_changes_the_mask(tiny_classifier, stages, change):
    masker = make_masker(tiny_classifier, area_low=0.25, area_high=4.0)
    base = Setting()
    with torch.no_grad():
        a = masker(stages, (64, 64), base)
        b = masker(stages, (64, 64), Setting(**{**base.__dict__, **change}))
    assert a.shape == b.shape == (2, 1, 64, 64)
    assert (a - b).abs().max() > 1e-4, change


def test_upsampling_makes_blocks_of_4s_pixels(tiny_classifier, stages):
    masker = make_masker(tiny_classifier)
    with torch.no_grad():
        for s in (1, 2, 4, 8):
            m = masker(stages, (64, 64), Setting(upsample=s))[0, 0]
            block = 4 * s
            blocks = m.reshape(64 // block, block, 64 // block, block)
            assert torch.equal(blocks, blocks[:, :1, :, :1].expand_as(blocks)), s  # constant within each block
            assert len(torch.unique(m)) <= (64 // block) ** 2


def test_a_fresh_masker_is_a_phang_masker_with_a_small_head(tiny_classifier, stages):
    """The identity FiLM: every setting with the same upsampling gives the same mask; and no saturated first mask
    (a speckled 0/1 mask met high TV weights with a gradient that killed a masker)."""
    masker = ConditionalMasker(ConditionalMaskerConfig(stage_channels=tiny_classifier.stage_channels)).eval()
    with torch.no_grad():
        a = masker(stages, (64, 64), Setting(objective="ssr", tv_weight=0.0))
        b = masker(stages, (64, 64), Setting(objective="sdr", infiller="noise", tv_weight=0.1))
        logits = masker.mask_logits(stages, (64, 64), torch.zeros(2, 13))
    assert torch.equal(a, b)
    assert logits.abs().max() < 6 and 0.05 < float(a.mean()) < 0.95


def test_mix_smoothed_by_hand():
    z = torch.arange(16.0).reshape(1, 1, 4, 4)
    assert torch.equal(mix_smoothed(z, torch.tensor([[1.0, 0.0]])), z)
    # 2x2 cell means 2.5, 4.5 / 10.5, 12.5, bilinearly back to 4x4 (edges clamp, inner steps of a quarter cell)
    coarse = torch.tensor([[2.5, 3.0, 4.0, 4.5], [4.5, 5.0, 6.0, 6.5],
                           [8.5, 9.0, 10.0, 10.5], [10.5, 11.0, 12.0, 12.5]])
    assert torch.allclose(mix_smoothed(z, torch.tensor([[0.0, 1.0]]))[0, 0], coarse)
    assert torch.allclose(mix_smoothed(z, torch.tensor([[0.25, 0.75]]))[0, 0], 0.25 * z[0, 0] + 0.75 * coarse)


def test_the_smoothing_stage_reads_the_tv_weight(tiny_classifier, stages):
    """FiLM held at the identity: only the smoothing stage can make the TV weight matter, and when it maps a high
    weight to the coarse copies the mask's total variation falls."""
    torch.manual_seed(1)
    masker = ConditionalMasker(ConditionalMaskerConfig(stage_channels=tiny_classifier.stage_channels,
                                                       smooth_levels=3)).eval()
    torch.nn.init.normal_(masker.out.weight, std=1.0)  # a detailed mask to smooth
    tv_column = CONDITION_SIZE - 4 - 1  # the log TV entry of the code
    with torch.no_grad():
        masker.smooth.weight[3, tv_column] = 2.0  # high TV -> the copy averaged over 8x8 cells
        masker.smooth.weight[0, tv_column] = -2.0
        low, high = (masker(stages, (64, 64), Setting(tv_weight=t)) for t in (1e-4, 0.1))
    assert total_variation_per_mask(high).mean() < 0.7 * total_variation_per_mask(low).mean()


@pytest.mark.parametrize("branches", ["shared", "head", "decoder"])
def test_settings_per_image_in_one_batch(tiny_classifier, stages, branches):
    masker = make_masker(tiny_classifier, objective_branches=branches)
    s1, s2 = Setting(objective="ssr", upsample=8), Setting(objective="sdr", tv_weight=0.0)
    with torch.no_grad():
        both = masker(stages, (64, 64), [s1, s2])
        one = masker([s[:1] for s in stages], (64, 64), s1)
        two = masker([s[1:] for s in stages], (64, 64), s2)
    assert torch.allclose(both[:1], one, atol=1e-6) and torch.allclose(both[1:], two, atol=1e-6)
    with pytest.raises(ValueError, match="3 settings for a batch of 2"):
        masker(stages, (64, 64), [s1, s1, s1])


@pytest.mark.parametrize("branches", ["head", "decoder"])
def test_objective_branches_train_only_their_objectives_part(tiny_classifier, stages, branches):
    """With per-objective branches an ssr image's gradient reaches ssr's head (and, with "decoder", ssr's reducers)
    and no other objective's; the shared FiLM MLP is trained by all."""
    masker = ConditionalMasker(ConditionalMaskerConfig(stage_channels=tiny_classifier.stage_channels,
                                                       objectives=("ssr", "sdr", "both"),
                                                       objective_branches=branches)).train()
    masker(stages, (64, 64), [Setting(objective="sdr"), Setting(objective="sdr")]).sum().backward()
    grads = {n: p.grad for n, p in masker.named_parameters()}
    ssr, sdr, both = "out.", "branch_out.0.", "branch_out.1."  # branch order: the trained objectives' order
    assert all(grads[n] is None for n in grads if n.startswith((ssr, both)))
    assert all(grads[n] is not None and grads[n].abs().sum() > 0 for n in grads if n.startswith(sdr))
    assert grads["condition.0.weight"] is not None
    reducers = [n for n in grads if n.startswith("reducers.")]
    if branches == "decoder":  # ssr's reducers (branch 0) untouched, sdr's own ones trained
        assert all(grads[n] is None for n in reducers)
        assert all(grads[n] is not None for n in grads if n.startswith("branch_reducers.0."))
        assert all(grads[n] is None for n in grads if n.startswith("branch_reducers.1."))
    else:  # one set of reducers, shared
        assert all(grads[n] is not None for n in reducers) and not any(n.startswith("branch_reducers") for n in grads)


def test_objective_branches_give_each_objective_its_own_mask_from_the_first_step(tiny_classifier, stages):
    """FiLM starts as the identity, so a fresh shared masker gives every objective the same mask (above); separate
    heads, initialised apart, do not."""
    masker = ConditionalMasker(ConditionalMaskerConfig(stage_channels=tiny_classifier.stage_channels,
                                                       objective_branches="head")).eval()
    with torch.no_grad():
        ssr, sdr = (masker(stages, (64, 64), Setting(objective=o)) for o in ("ssr", "sdr"))
    assert (ssr - sdr).abs().max() > 1e-4


def test_checkpoint_round_trip_of_every_condition_field(tiny_classifier, stages, tmp_path):
    space = dict(objectives=("sdr", "both"), infillers=("blur", "random-image"), upsample_factors=(2, 8),
                 tv_low=0.002, tv_high=0.04, tv_zero=False, default_objective="sdr", default_infiller="blur",
                 default_tv_weight=0.01, default_upsample=8, hidden_channels=16, film_hidden=8, smooth_levels=2,
                 area_low=0.5, area_high=8.0, default_area_weight=2.0, objective_branches="decoder")
    masker = make_masker(tiny_classifier, **space)
    path = save_masker(tmp_path / "c.safetensors", masker, tiny_classifier, {"note": "test"}, kind="conditional")
    meta = read_metadata(path)
    assert meta["kind"] == "conditional" and not metadata_problems(meta)
    ck = load_masker(path, classifier=tiny_classifier)
    assert ck.kind == "conditional" and ck.takes_setting
    cfg = ck.masker.config
    for name, value in space.items():
        assert getattr(cfg, name) == value, name
    setting = Setting("both", "random-image", 0.02, 2, 6.0)
    with torch.no_grad():
        assert torch.equal(ck.explain(stages, None, (64, 64), [0], setting=setting)[0],
                           masker(stages, (64, 64), setting)[:, 0])
        default, per_label = ck.explain(stages, None, (64, 64), [0])
    assert not per_label and torch.equal(default, masker(stages, (64, 64), cfg.default_setting)[:, 0])


@pytest.mark.parametrize("setting, words", [
    (Setting(tv_weight=0.5), "tv_weight 0.5 is outside the range this masker was trained over (0.0001 .. 0.1)"),
    (Setting(tv_weight=0.0), "(0.0001 .. 0.1)"),
    (Setting(tv_weight=float("nan")), "tv_weight nan is outside"),
    (Setting(objective="ssr"), "objective 'ssr' is outside what this masker was trained over (both)"),
    (Setting(infiller="noise"), "infiller 'noise' is outside what this masker was trained over (gray, blur)"),
    (Setting(upsample=4), "upsample 4 is outside what this masker was trained over (1, 8)"),
    (Setting(area_weight=2.0), "area_weight 2 is outside the range this masker was trained over (1)"),
])
def test_a_setting_outside_the_trained_space_is_refused_in_one_line(tiny_classifier, stages, setting, words):
    cfg = ConditionalMaskerConfig(stage_channels=tiny_classifier.stage_channels, objectives=("both",),
                                  infillers=("gray", "blur"), upsample_factors=(1, 8), tv_zero=False)
    masker = ConditionalMasker(cfg).eval()
    from saliency_core.maskers.base import MASKER_KINDS

    explain = MASKER_KINDS.get("conditional").attrs["explain"]
    with pytest.raises(OptionError) as err:
        explain(masker, tiny_classifier, stages, None, (64, 64), [0], setting=setting)
    assert words in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("bad, words", [
    (dict(objectives=["both", "mystery"]), "option 'objectives'"),
    (dict(upsample_factors=[3]), "option 'upsample_factors'"),
    (dict(tv_low=0.1, tv_high=0.01), "tv_low 0.1 is above tv_high 0.01"),
    (dict(tv_high=5.0), "option 'tv_high'"),
    (dict(objectives=["ssr"]), "the default setting is outside its trained space"),
    (dict(hidden_channels=10**6), "option 'hidden_channels'"),
    (dict(smooth_levels=9), "option 'smooth_levels'"),
    (dict(objective_branches="mine"), "option 'objective_branches'"),
    (dict(area_low=4.0, area_high=2.0), "area_low 4 is above area_high 2"),
    (dict(area_high=100.0), "option 'area_high'"),
    (dict(area_low=0.5, area_high=2.0, default_area_weight=4.0), "the default setting is outside its trained space"),
])
def test_a_forged_trained_space_is_refused_before_anything_is_built(tiny_classifier, bad, words):
    cfg = ConditionalMaskerConfig(stage_channels=tiny_classifier.stage_channels).to_dict()
    meta = {"format": "saliency_core.masker/1", "kind": "conditional", "classifier_name": "x",
            "classifier_identity": "x@0", "num_classes": 10, "masker_config": {**cfg, **bad}}
    problems = metadata_problems(meta)
    assert len(problems) == 1 and words in problems[0]


def test_old_unconditional_checkpoints_still_load_and_refuse_toggles(lite0, chelsea):
    from saliency_core.maskers.catalog import default_checkpoint

    ck = load_masker(default_checkpoint("phang"), classifier=lite0)
    assert ck.kind == "phang" and not ck.takes_setting
    x = lite0.preprocessing.normalize(torch.rand(1, 3, 224, 224))
    with torch.no_grad():
        out = lite0.forward_features(x)
        masks, _ = ck.explain(out.stages, out.head, (224, 224), [0])
    assert masks.shape == (1, 224, 224)
    with pytest.raises(CheckpointError, match="has no toggles"):
        ck.explain(out.stages, out.head, (224, 224), [0], setting=Setting())


def test_an_area_conditioned_masker_refuses_weights_outside_its_range_and_a_forged_range_fails_to_load(
        tiny_classifier, stages, tmp_path):
    masker = make_masker(tiny_classifier, area_low=0.25, area_high=4.0)
    path = save_masker(tmp_path / "a.safetensors", masker, tiny_classifier, {}, kind="conditional")
    ck = load_masker(path, classifier=tiny_classifier)
    with pytest.raises(OptionError, match=r"area_weight 8 is outside the range this masker was trained over "
                                          r"\(0.25 .. 4\)"):
        ck.explain(stages, None, (64, 64), [0], setting=Setting(area_weight=8.0))
    # a 13-entry masker whose header claims an area range: its weights do not fit, and loading says so in one line
    plain = save_masker(tmp_path / "p.safetensors", make_masker(tiny_classifier), tiny_classifier, {},
                        kind="conditional")
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(plain), "pt") as f:
        header = f.metadata()
    config = json.loads(header["masker_config"])
    header["masker_config"] = json.dumps({**config, "area_low": 0.5, "area_high": 2.0})
    save_file(load_file(str(plain)), str(tmp_path / "forged.safetensors"), metadata=header)
    with pytest.raises(CheckpointError) as err:
        load_masker(tmp_path / "forged.safetensors", classifier=tiny_classifier)
    assert "masker weights do not match its config" in str(err.value) and "\n" not in str(err.value)


def test_fixed_options_name_the_toggles_a_checkpoint_cannot_vary(tiny_classifier, tmp_path):
    from saliency_core.maskers.catalog import default_checkpoint
    from saliency_core.maskers.checkpoint import checkpoint_fixed_options

    whole = save_masker(tmp_path / "w.safetensors", make_masker(tiny_classifier), tiny_classifier, {},
                        kind="conditional")
    assert checkpoint_fixed_options(whole) == {"area_weight": 1.0, "area": None}  # every toggle but the areas
    area = save_masker(tmp_path / "a.safetensors", make_masker(tiny_classifier, area_low=0.5, area_high=2.0),
                       tiny_classifier, {}, kind="conditional")
    assert checkpoint_fixed_options(area) == {"area": None}
    point = dict(objectives=("ssr",), infillers=("blur",), upsample_factors=(8,), tv_low=0.03, tv_high=0.03,
                 tv_zero=False, area_low=4.0, area_high=4.0, default_objective="ssr", default_infiller="blur",
                 default_tv_weight=0.03, default_upsample=8, default_area_weight=4.0)
    dedicated = save_masker(tmp_path / "d.safetensors", make_masker(tiny_classifier, **point), tiny_classifier, {},
                            kind="conditional")
    assert checkpoint_fixed_options(dedicated) == {"objective": "ssr", "infiller": "blur", "upsample": 8,
                                                   "tv_weight": 0.03, "area_weight": 4.0, "area": None}
    target = save_masker(tmp_path / "t.safetensors", make_area_masker(tiny_classifier), tiny_classifier, {},
                         kind="conditional")
    assert checkpoint_fixed_options(target) == {"area_weight": 1.0}  # the area is an input
    assert checkpoint_fixed_options(default_checkpoint("phang")) == {}  # no toggles at all
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a checkpoint")
    assert checkpoint_fixed_options(junk) == {} and checkpoint_fixed_options(tmp_path / "missing.safetensors") == {}


# ---------------------------------------------------------------- area-conditioned maskers (issue 25)
AREA_SPACE = dict(stages=(3, 4, 5), resolution_divisor=8, objective_branches="head", upsample_factors=(1, 2, 4),
                  target_area_low=0.05, target_area_high=0.6, default_area=0.2)


def make_area_masker(classifier, **space) -> ConditionalMasker:
    """An area-conditioned masker whose FiLM is random (a fresh one's is the identity)."""
    torch.manual_seed(2)
    masker = ConditionalMasker(ConditionalMaskerConfig(stage_channels=classifier.stage_channels,
                                                       **{**AREA_SPACE, **space}))
    torch.nn.init.normal_(masker.area_decoder.condition[-1].weight, std=0.5)
    return masker.eval()


@pytest.mark.parametrize("objective", ["ssr", "sdr", "both"])
def test_the_mask_is_a_region_of_the_asked_area_and_mostly_binary(tiny_classifier, stages, objective):
    masker = make_area_masker(tiny_classifier)
    for upsample in (1, 2):  # at 64 px, s = 4 leaves a 2 x 2 grid: a quarter of the picture one flat corner
        for a in (0.05, 0.1, 0.2, 0.33, 0.6):
            with torch.no_grad():
                m = masker(stages, (64, 64), Setting(objective, "gray", 1e-3, upsample, 1.0, a))
            region = (m > 0.5).float().flatten(1).mean(1)
            assert torch.allclose(region, torch.full_like(region, a), atol=1.5 / 4096), (a, upsample, region)
            half = ((m > 0.1) & (m < 0.9)).float().mean()
            assert half <= 0.10, (a, upsample, half)


def test_the_area_input_moves_the_region_not_only_its_size(tiny_classifier, stages):
    """FiLM reads the area: the region at a = 0.1 is not the top 10 % of the scores the masker makes at a = 0.4."""
    masker = make_area_masker(tiny_classifier)
    with torch.no_grad():
        small = masker(stages, (64, 64), Setting("ssr", area=0.1))
        large = masker(stages, (64, 64), Setting("ssr", area=0.4))
    from saliency_core.train.conditional_area import top_area_region

    nested = top_area_region(large[:, 0], 0.1)
    assert ((small[:, 0] > 0.5).float() != nested).float().mean() > 0.01
    code = encode_settings([Setting(area=0.05), Setting(area=0.6)], target_area=True)
    assert code.shape == (2, CONDITION_SIZE + 2) and not torch.equal(code[0], code[1])


def test_an_area_outside_the_trained_range_is_refused_in_one_line(tiny_classifier, stages, tmp_path):
    path = save_masker(tmp_path / "area.safetensors", make_area_masker(tiny_classifier), tiny_classifier, {},
                       kind="conditional")
    ck = load_masker(path, classifier=tiny_classifier)
    for bad in (0.01, 0.7):
        with pytest.raises(OptionError) as err:
            ck.explain(stages, None, (64, 64), [0], setting=Setting(area=bad))
        assert str(err.value) == f"area {bad:g} is outside the range this masker was trained over (0.05 .. 0.6)"
    # a masker without the area input refuses any area, in one line
    plain = load_masker(save_masker(tmp_path / "plain.safetensors", make_masker(tiny_classifier), tiny_classifier, {},
                                    kind="conditional"), classifier=tiny_classifier)
    with pytest.raises(OptionError, match=r"^area 0.2: this masker was not trained over areas"):
        plain.explain(stages, None, (64, 64), [0], setting=Setting(area=0.2))
    # the round trip keeps the masks (the area decoder's weights and the area fields of the header)
    with torch.no_grad():
        before = make_area_masker(tiny_classifier)(stages, (64, 64), Setting("sdr", area=0.3))[:, 0]
        after, _ = ck.explain(stages, None, (64, 64), [0], setting=Setting("sdr", area=0.3))
    assert torch.allclose(before, after, atol=1e-6)
    assert ck.masker.config.default_setting.area == 0.2


def test_the_old_shipped_conditional_checkpoint_loads_and_gives_the_same_masks(lite0, chelsea):
    """conditional_lite0 (sha256 cd2d937f..., shipped before the area input and still the default): its masks on
    chelsea are those the code before the area input gave (recorded at commit 6132d1e)."""
    import numpy as np
    from PIL import Image

    from saliency_core.maskers.catalog import checkpoints_dir

    ck = load_masker(checkpoints_dir() / "conditional_lite0.safetensors", classifier=lite0)
    assert not ck.masker.config.target_conditioned
    img = chelsea.convert("RGB").resize((224, 224), Image.BILINEAR)
    x = lite0.preprocessing.normalize(torch.from_numpy(np.array(img)).permute(2, 0, 1)[None].float() / 255)
    expected = {None: (0.875958, [0.306134, 0.999757, 0.977781, 0.951928]),
                Setting("sdr", "noise", 0.05, 4): (0.464588, [0.071247, 0.939975, 0.303038, 0.196279]),
                Setting("ssr", "blur", 0.0, 2): (0.999287, [0.997144, 0.999999, 0.999969, 0.999791])}
    with torch.no_grad():
        out = lite0.forward_features(x)
        for setting, (mean, pixels) in expected.items():
            m, _ = ck.explain(out.stages, out.head, (224, 224), [0], setting=setting)
            assert float(m.mean()) == pytest.approx(mean, abs=2e-5)
            assert [float(m[0, i, j]) for i, j in ((10, 10), (112, 112), (60, 180), (200, 30))] == pytest.approx(
                pixels, abs=2e-5)


def _area_method(classifier, path, **options):
    from saliency_core.methods.base import create_method

    return create_method("conditional-masker", checkpoint=str(path), **options)


def test_areas_give_a_mask_at_each_area_in_one_masker_pass(tiny_classifier, tmp_path):
    path = save_masker(tmp_path / "area.safetensors", make_area_masker(tiny_classifier), tiny_classifier, {},
                       kind="conditional")
    torch.manual_seed(3)
    x = tiny_classifier.preprocessing.normalize(torch.rand(1, 3, 64, 64))
    with torch.no_grad():
        clean = tiny_classifier.forward_features(x)
    method = _area_method(tiny_classifier, path, objective="sdr", area=0.2, areas="0.1, 0.4")
    calls = []
    method.load(tiny_classifier).masker.register_forward_hook(lambda *a: calls.append(1))
    result = method(tiny_classifier, x, [0], clean)
    assert len(calls) == 1 and result.areas == (0.1, 0.4)
    assert result.masks.shape == (1, 64, 64) and result.area_masks.shape == (2, 1, 64, 64)
    for a, m in zip((0.2, 0.1, 0.4), (result.masks[0], *result.area_masks[:, 0])):
        assert float((m > 0.5).float().mean()) == pytest.approx(a, abs=1.5 / 4096)
        alone = _area_method(tiny_classifier, path, objective="sdr", area=a)(tiny_classifier, x, [0], clean).masks[0]
        # the same mask as asked on its own (batched float sums differ by ~1e-7, which 1/T magnifies at the edge)
        assert ((alone > 0.5) != (m > 0.5)).float().mean() < 1e-3 and (alone - m).abs().mean() < 1e-4
    with pytest.raises(OptionError, match=r"^area 0.7 is outside the range this masker was trained over "
                                          r"\(0.05 .. 0.6\)$"):
        _area_method(tiny_classifier, path, areas=(0.1, 0.7))(tiny_classifier, x, [0], clean)
    # the method on a checkpoint without the area input answers area / areas with its one map (a scorer takes its
    # top a pixels, as for any method that takes no area); the masker itself refuses an area (test above)
    plain = save_masker(tmp_path / "plain.safetensors", make_masker(tiny_classifier), tiny_classifier, {},
                        kind="conditional")
    result = _area_method(tiny_classifier, plain, area=0.1, areas=(0.1, 0.4))(tiny_classifier, x, [0], clean)
    alone = _area_method(tiny_classifier, plain)(tiny_classifier, x, [0], clean)
    assert result.area_masks.shape == (2, 1, 64, 64) and torch.equal(result.area_masks[1], result.masks)
    assert torch.equal(result.masks, alone.masks) and "not an input" in result.info["area"]
    from saliency_core.methods.base import MethodError

    with pytest.raises(MethodError, match="option 'areas' must be fractions in"):
        _area_method(tiny_classifier, path, areas="0.1,big")


def test_option_space_gives_the_loaded_checkpoints_ranges(tiny_classifier, tmp_path):
    from saliency_core.maskers.toggles import TOGGLES
    from saliency_core.methods.base import method_entry
    from saliency_core.methods.trained import ConditionalMaskerOptions

    entry = method_entry("conditional-masker")
    assert entry.traits.takes_area
    space_of = entry.traits.option_space
    area = save_masker(tmp_path / "area.safetensors",
                       make_area_masker(tiny_classifier, tv_low=1e-5, tv_high=3e-3, default_tv_weight=1e-4,
                                        infillers=("gray", "blur")), tiny_classifier, {}, kind="conditional")
    space = space_of({"checkpoint": str(area)})
    assert set(space) == {t.name for t in TOGGLES}  # every toggle, from the one declaration
    assert (space["area"].low, space["area"].high, space["area"].default, space["area"].shown) == (0.05, 0.6, 0.2,
                                                                                                   True)
    assert (space["tv_weight"].low, space["tv_weight"].high, space["tv_weight"].default) == (0.0, 3e-3, 1e-4)
    assert space["infiller"].choices == ("gray", "blur") and space["upsample"].choices == (1, 2, 4)
    assert not space["area_weight"].shown and space["objective"].help == next(
        o.help for o in declared_options(ConditionalMaskerOptions) if o.name == "objective")
    plain = save_masker(tmp_path / "plain.safetensors", make_masker(tiny_classifier), tiny_classifier, {},
                        kind="conditional")
    space = space_of({"checkpoint": str(plain)})
    assert not space["area"].shown and space["upsample"].choices == (1, 2, 4, 8)
    assert space["tv_weight"].high == 0.1
    assert space_of({"checkpoint": str(tmp_path / "missing.safetensors")}) == {}


def test_the_toggle_space_is_declared_once():
    """Setting, the masker config's defaults, the training config's defaults and the method's options all come
    from TOGGLES."""
    import dataclasses

    from saliency_core.maskers.toggles import TOGGLES
    from saliency_core.methods.trained import ConditionalMaskerOptions
    from saliency_core.train.conditional import ConditionalTrainConfig

    assert [f.name for f in dataclasses.fields(Setting)] == [t.name for t in TOGGLES]
    assert Setting() == Setting(**{t.name: t.default for t in TOGGLES})
    options = {o.name: o for o in declared_options(ConditionalMaskerOptions)}
    cfg, train = ConditionalMaskerConfig(stage_channels=[1] * 5), ConditionalTrainConfig()
    for t in TOGGLES:
        assert options[t.name].default == t.default
        if t.choices:
            assert options[t.name].choices == t.choices
        if t.name != "area":
            assert getattr(cfg, f"default_{t.name}") == getattr(train, f"default_{t.name}") == t.default
    assert cfg.objectives == train.objectives == TOGGLES[0].choices
