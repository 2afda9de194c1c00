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
    assert checkpoint_fixed_options(whole) == {"area_weight": 1.0}  # trained over every toggle but the area
    area = save_masker(tmp_path / "a.safetensors", make_masker(tiny_classifier, area_low=0.5, area_high=2.0),
                       tiny_classifier, {}, kind="conditional")
    assert checkpoint_fixed_options(area) == {}
    point = dict(objectives=("ssr",), infillers=("blur",), upsample_factors=(8,), tv_low=0.03, tv_high=0.03,
                 tv_zero=False, area_low=4.0, area_high=4.0, default_objective="ssr", default_infiller="blur",
                 default_tv_weight=0.03, default_upsample=8, default_area_weight=4.0)
    dedicated = save_masker(tmp_path / "d.safetensors", make_masker(tiny_classifier, **point), tiny_classifier, {},
                            kind="conditional")
    assert checkpoint_fixed_options(dedicated) == {"objective": "ssr", "infiller": "blur", "upsample": 8,
                                                   "tv_weight": 0.03, "area_weight": 4.0}
    assert checkpoint_fixed_options(default_checkpoint("phang")) == {}  # no toggles at all
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a checkpoint")
    assert checkpoint_fixed_options(junk) == {} and checkpoint_fixed_options(tmp_path / "missing.safetensors") == {}
