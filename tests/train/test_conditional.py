"""Loss-conditional training on a tiny random classifier: settings drawn per image, one step, resume after a
kill, a dedicated (one-point) run, the config's refusals and the CLI / torchrun paths."""
from __future__ import annotations

import dataclasses

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from saliency_core.maskers.checkpoint import load_masker, read_checkpoint
from saliency_core.maskers.conditional import Setting
from saliency_core.train.conditional import ConditionalTrainConfig, ConditionalTrainer, draw_settings, train_conditional
from saliency_core.train.config import ConfigError
from tests.train.conftest import TINY

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_cfg(data, out, **kw) -> ConditionalTrainConfig:
    return ConditionalTrainConfig(data=str(data), out=str(out), **{**TINY, **kw})


def test_settings_are_drawn_from_the_space_per_image():
    cfg = ConditionalTrainConfig(objectives=("ssr", "both"), infillers=("gray", "noise"), upsample_factors=(2, 8),
                                 tv_low=1e-3, tv_high=1e-2, tv_zero_prob=0.25, default_upsample=8)
    draws = draw_settings(cfg, 400, torch.Generator().manual_seed(0))
    assert draws == draw_settings(cfg, 400, torch.Generator().manual_seed(0))  # the generator decides
    assert {s.objective for s in draws} == {"ssr", "both"} and {s.infiller for s in draws} == {"gray", "noise"}
    assert {s.upsample for s in draws} == {2, 8}
    tv = np.array([s.tv_weight for s in draws])
    assert 0.17 < (tv == 0).mean() < 0.33
    nonzero = tv[tv > 0]
    assert nonzero.min() >= 1e-3 and nonzero.max() <= 1e-2
    # log-uniform: about half below the geometric midpoint
    assert 0.4 < (nonzero < np.sqrt(1e-3 * 1e-2)).mean() < 0.6
    one_point = ConditionalTrainConfig(objectives=("both",), infillers=("gray",), upsample_factors=(1,),
                                       tv_low=1e-3, tv_high=1e-3, tv_zero_prob=0, area_low=1.0, area_high=1.0)
    draws = draw_settings(one_point, 20, torch.Generator())
    assert {(s.objective, s.infiller, s.upsample) for s in draws} == {("both", "gray", 1)}
    assert all(s.tv_weight == pytest.approx(1e-3) for s in draws)
    assert {s.area_weight for s in draws} == {1.0}  # a one-point area range: not drawn


def test_area_weights_are_one_with_their_probability_else_log_uniform():
    cfg = ConditionalTrainConfig(area_low=0.25, area_high=4.0, area_one_prob=0.5)
    area = np.array([s.area_weight for s in draw_settings(cfg, 600, torch.Generator().manual_seed(0))])
    assert area.min() >= 0.25 and area.max() <= 4.0
    assert 0.43 < (area == 1.0).mean() < 0.57
    drawn = area[area != 1.0]
    assert 0.4 < (drawn < 1.0).mean() < 0.6  # log-uniform: half below the geometric midpoint 1
    fixed = ConditionalTrainConfig(area_low=2.0, area_high=2.0, default_area_weight=2.0)
    assert {s.area_weight for s in draw_settings(fixed, 50, torch.Generator())} == {2.0}
    assert fixed.masker_config([1] * 5).condition_size == 13  # one point: not an input


@pytest.mark.parametrize("kw", [{}, dict(smooth_levels=3, objectives=("sdr", "both")),
                                dict(smooth_levels=3, objective_branches="decoder")])
def test_one_step_trains_the_masker_under_mixed_settings(tiny_data, tmp_path, kw):
    tr = ConditionalTrainer(tiny_cfg(tiny_data, tmp_path / "c", **kw))
    from torch.utils.data import default_collate

    x, y = default_collate([tr.train_ds[i] for i in range(4)])
    clf0 = {k: v.clone() for k, v in tr.classifier.state_dict().items()}
    m0 = {k: v.clone() for k, v in tr.masker.state_dict().items()}
    row = tr.training_step(x, y)
    assert all(torch.equal(v, tr.classifier.state_dict()[k]) for k, v in clf0.items())  # FIX: frozen
    assert any(not torch.equal(v, tr.masker.state_dict()[k]) for k, v in m0.items() if "condition" in k)
    if kw:  # the smoothing stage learns too
        assert any(not torch.equal(v, tr.masker.state_dict()[k]) for k, v in m0.items() if k.startswith("smooth"))
    assert np.isfinite(row["total"]) and 0 < row["mask_mean"] < 1


@pytest.mark.parametrize("kw, term, absent", [({}, "out_negce", "out_negentropy"),
                                              (dict(out_term="out-entropy"), "out_negentropy", "out_negce")])
def test_both_removes_the_evidence_with_minclass_unless_told_maxent(tiny_data, tmp_path, kw, term, absent):
    """The conditional ``both`` is the per-image ``both`` (masked-in + MinClass) by default; ``out_term`` picks
    Phang's MaxEnt instead."""
    tr = ConditionalTrainer(tiny_cfg(tiny_data, tmp_path / "c", objectives=("both",), **kw))
    from torch.utils.data import default_collate

    x, y = default_collate([tr.train_ds[i] for i in range(4)])
    row = tr.training_step(x, y)
    assert term in row and absent not in row, row


def _steps(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_resume_after_kill_reproduces_the_uninterrupted_run(tiny_data, tmp_path):
    common = dict(epochs=2, checkpoint_every=2)
    full = train_conditional(tiny_cfg(tiny_data, tmp_path / "full", **common), show_bars=False)

    class Killed(Exception):
        pass

    def kill_at_step_3(fraction, message):
        if "step 3," in message:
            raise Killed

    cfg = tiny_cfg(tiny_data, tmp_path / "killed", **common)
    with pytest.raises(Killed):
        train_conditional(cfg, progress=kill_at_step_3, show_bars=False)
    cfg = dataclasses.replace(cfg, resume=True)
    resumed = train_conditional(cfg, show_bars=False)
    ta, meta = read_checkpoint(full)
    tb, _ = read_checkpoint(resumed)
    assert meta["kind"] == "conditional" and ta.keys() == tb.keys()
    for k in ta:
        assert torch.equal(ta[k], tb[k]), k
    a, b = _steps(tmp_path / "full" / "steps.csv"), _steps(tmp_path / "killed" / "steps.csv")
    assert [r["total"] for r in a] == [r["total"] for r in b] and len(b) == 6
    # the checkpoint records the space it was trained over and the held-out figures at the default setting
    assert meta["masker_config"]["objectives"] == ["ssr", "sdr", "both"]
    assert meta["masker_config"]["upsample_factors"] == [1, 2, 4, 8] and meta["masker_config"]["tv_zero"]
    assert "val_in_acc" in meta["metrics"]["final"]


def test_area_loss_balance_changes_the_step_only_when_area_weights_exceed_one(tiny_data, tmp_path):
    from torch.utils.data import default_collate

    def step(**kw):
        tr = ConditionalTrainer(tiny_cfg(tiny_data, tmp_path / f"b{len(list(tmp_path.iterdir()))}", **kw))
        x, y = default_collate([tr.train_ds[i] for i in range(4)])
        tr.training_step(x, y)
        return tr.masker.state_dict()

    def same(a, b):
        return all(torch.equal(v, b[k]) for k, v in a.items())

    high = dict(area_low=2.0, area_high=4.0, default_area_weight=2.0)
    assert not same(step(**high), step(**high, area_loss_balance=False))
    low = dict(area_low=0.25, area_high=1.0, area_one_prob=0.0)  # every weight <= 1: nothing to balance
    assert same(step(**low), step(**low, area_loss_balance=False))


def test_ssr_area_scale_weighs_only_ssr_images_area_term(tiny_data, tmp_path, monkeypatch):
    from torch.utils.data import default_collate

    import saliency_core.train.conditional as mod

    seen = {}
    real = mod.conditional_masker_loss

    def spy(*args, **kw):
        seen.update(kw)
        return real(*args, **kw)

    monkeypatch.setattr(mod, "conditional_masker_loss", spy)
    tr = ConditionalTrainer(tiny_cfg(tiny_data, tmp_path / "s", ssr_area_scale=3.0, area_low=1.0, area_high=2.0,
                                     default_area_weight=1.0, area_one_prob=0.0))
    x, y = default_collate([tr.train_ds[i] for i in range(8)])
    g = tr._step_generator()
    settings = mod.draw_settings(tr.cfg, 8, g)
    assert {s.objective for s in settings} >= {"ssr"} and {s.objective for s in settings} - {"ssr"}
    tr.training_step(x, y)
    drawn = torch.tensor([s.area_weight for s in settings])
    factor = torch.tensor([3.0 if s.objective == "ssr" else 1.0 for s in settings])
    assert torch.allclose(seen["area_weight"].cpu(), drawn * factor)
    # the balance divides by the drawn weight only: the ssr factor is the objective's, not a drawn weight
    tv = torch.tensor([s.tv_weight for s in settings])
    assert torch.allclose(seen["image_weight"].cpu(), 1 / ((1 + tr.cfg.tv_loss_scale * tv) * drawn.clamp(min=1)))
    tr.cfg = dataclasses.replace(tr.cfg, ssr_area_balance=True)  # and with it an ssr image's loss is divided by the factor too
    tr.training_step(x, y)
    assert torch.allclose(seen["image_weight"].cpu(),
                          1 / ((1 + tr.cfg.tv_loss_scale * tv) * drawn.clamp(min=1) * factor))


def test_a_one_point_space_trains_a_dedicated_masker(tiny_data, tmp_path):
    path = train_conditional(tiny_cfg(tiny_data, tmp_path / "d", max_steps=1, objectives=("ssr",), infillers=("blur",),
                                      upsample_factors=(8,), tv_low=0.03, tv_high=0.03, tv_zero_prob=0.0,
                                      default_objective="ssr", default_infiller="blur", default_tv_weight=0.03,
                                      default_upsample=8), show_bars=False)
    ck = load_masker(path, classifier=ConditionalTrainer(tiny_cfg(tiny_data, tmp_path / "x")).classifier)
    cfg = ck.masker.config
    assert (cfg.objectives, cfg.infillers, cfg.upsample_factors, cfg.tv_zero) == (("ssr",), ("blur",), (8,), False)
    assert cfg.tv_range_text() == "0.03"
    from saliency_core.errors import OptionError

    with pytest.raises(OptionError, match=r"tv_weight 0 is outside the range this masker was trained over \(0.03\)"):
        cfg.check_setting(Setting("ssr", "blur", 0.0, 8))


@pytest.mark.parametrize("bad, words", [
    (dict(lambda_tv=0.1), "lambda_tv is drawn per image in conditional training; set tv_low"),
    (dict(objective="in"), "objective is drawn per image"),
    (dict(infiller="blur"), "infiller is drawn per image"),
    (dict(mode="ca"), "FIX only"),
    (dict(tv_low=0.2, tv_high=0.1), "need 0 < tv_low <= tv_high"),
    (dict(tv_zero_prob=1.5), "option 'tv_zero_prob' must be a number >= 0 and <= 1, got 1.5"),
    (dict(objectives=("ssr", "maxent")), "option 'objectives'"),
    (dict(objectives=("ssr",)), "the default setting is outside"),
    (dict(out_term="entropy"), "out_term"),
    (dict(sdr_out_term="class"), "sdr_out_term"),
    (dict(smooth_levels=5), "smooth_levels"),
    (dict(area_low=4.0, area_high=2.0), "need 0.0625 <= area_low <= area_high <= 16"),
    (dict(area_high=50.0), "option 'area_high' must be a number >= 0.0625 and <= 16"),
    (dict(area_one_prob=-0.1), "option 'area_one_prob' must be a number >= 0 and <= 1"),
    (dict(ssr_area_scale=0.0), "option 'ssr_area_scale' must be a number > 0 and <= 100"),
    (dict(objective_branches="split"), "option 'objective_branches'"),
    (dict(default_area_weight=8.0), "the default setting is outside"),
])
def test_bad_configs_are_refused_naming_the_field(bad, words):
    with pytest.raises(ConfigError) as err:
        ConditionalTrainConfig(**bad)
    assert words in str(err.value)


def test_cli_parses_the_space_and_round_trips_yaml(tmp_path):
    from saliency_core.cli import main

    out = tmp_path / "printed.yaml"
    args = ["train", "--kind", "conditional", "--objectives", "ssr,both", "--upsample-factors", "1,8",
            "--tv-low", "0.001", "--print-config"]
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(args) == 0
    out.write_text(buf.getvalue())
    cfg = ConditionalTrainConfig.from_yaml(str(out))
    assert cfg.objectives == ("ssr", "both") and cfg.upsample_factors == (1, 8) and cfg.tv_low == 0.001
    assert cfg.infillers == ("gray", "blur", "noise", "random-image")


@pytest.mark.parametrize("branches", ["shared", "decoder"])
def test_torchrun_two_processes_keep_replicas_identical(tiny_data, tmp_path, branches):
    """(With per-objective branches a process's batch may leave a branch unused: DDP must allow that.)"""
    from tests.train.test_distributed import free_port

    out = tmp_path / "ddp"
    cfg = tiny_cfg(tiny_data, out, batch_size=2, epochs=1, device="cpu", objective_branches=branches)
    (tmp_path / "run.yaml").write_text(cfg.to_yaml())
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={free_port()}", "-m", "saliency_core.cli", "train", "--kind", "conditional",
           "--config", str(tmp_path / "run.yaml")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    meta = json.loads((out / "masker.json").read_text())
    assert meta["kind"] == "conditional"
    assert meta["metrics"]["world_size"] == 2 and meta["metrics"]["replicas_identical"]
    assert meta["metrics"]["steps"] == 3


def test_cli_refuses_a_flag_of_another_kind(capsys):
    from saliency_core.cli import main

    assert main(["train", "--objectives", "ssr", "--print-config"]) != 0
    assert "--objectives is not an option of --kind masker" in capsys.readouterr().err
    assert main(["train", "--kind", "conditional", "--pool-size", "3", "--print-config"]) == 0  # a shared field


# ---------------------------------------------------------------- area-conditioned runs (issue 25)
AREA = dict(target_area_low=0.05, target_area_high=0.6, default_area=0.2, resolution_divisor=8,
            objective_branches="head", smooth_levels=0, upsample_factors=(1, 2), augment=False, image_size=64,
            infillers=("gray", "blur"))


def test_target_areas_are_drawn_log_uniformly_in_the_trained_range():
    cfg = ConditionalTrainConfig(**{k: v for k, v in AREA.items() if k not in ("image_size",)})
    draws = draw_settings(cfg, 600, torch.Generator().manual_seed(0))
    area = np.array([s.area for s in draws])
    assert area.min() >= 0.05 and area.max() <= 0.6
    assert 0.42 < (area < np.sqrt(0.05 * 0.6)).mean() < 0.58  # half below the geometric midpoint
    assert {s.area_weight for s in draws} == {1.0}
    assert all(s.area is None for s in draw_settings(ConditionalTrainConfig(), 5, torch.Generator()))
    assert cfg.masker_config([16, 24, 40, 112, 320]).target_conditioned


def test_probability_reward_by_hand():
    from saliency_core.objectives import probability_reward_loss

    logits = torch.log(torch.tensor([[0.5, 0.25, 0.25], [0.1, 0.8, 0.1]]))
    target = torch.tensor([0, 1])
    assert probability_reward_loss(logits, target, keep=True).tolist() == pytest.approx([0.5, 0.2])
    assert probability_reward_loss(logits, target, keep=False).tolist() == pytest.approx([0.5, 0.8])
    # the log term: -w log p (keep), -w log(1 - p) (delete); bounded by 0 below, no correctness gating
    assert probability_reward_loss(logits, target, keep=True, log_weight=0.5).tolist() == pytest.approx(
        [0.5 - 0.5 * np.log(0.5), 0.2 - 0.5 * np.log(0.8)])
    assert probability_reward_loss(logits, target, keep=False, log_weight=0.5).tolist() == pytest.approx(
        [0.5 - 0.5 * np.log(0.5), 0.8 - 0.5 * np.log(0.2)])


def test_one_area_step_trains_the_area_decoder_on_cached_clean_passes(tiny_data, tmp_path):
    tr = ConditionalTrainer(tiny_cfg(tiny_data, tmp_path / "a", **AREA))
    from torch.utils.data import default_collate

    x, y = default_collate([tr.train_ds[i] for i in range(4)])
    clf0 = {k: v.clone() for k, v in tr.classifier.state_dict().items()}
    m0 = {k: v.clone() for k, v in tr.masker.state_dict().items()}
    row = tr.training_step(x, y)
    assert all(torch.equal(v, tr.classifier.state_dict()[k]) for k, v in clf0.items())  # FIX: frozen
    changed = {k for k, v in m0.items() if not torch.equal(v, tr.masker.state_dict()[k])}
    assert any(k.startswith("area_decoder.condition") for k in changed)  # FiLM learns from the first step
    assert any(k.startswith("area_decoder.hidden") for k in changed)
    assert row["area_error"] <= 1.5 / 64 ** 2 and np.isfinite(row["total"]) and 0 <= row["sorted_area"] < 0.1
    assert tr.clean_cache.misses == 4 and tr.clean_cache.hits == 0
    tr.training_step(x, y)
    assert tr.clean_cache.misses == 4 and tr.clean_cache.hits == 4  # the same images: no clean pass


def test_a_short_area_run_logs_the_fixed_area_figures_and_ships_an_area_masker(tiny_data, tmp_path):
    path = train_conditional(tiny_cfg(tiny_data, tmp_path / "run", epochs=1, **AREA), show_bars=False)
    with open(tmp_path / "run" / "epochs.csv", newline="") as f:
        row = list(csv.DictReader(f))[-1]
    for key in ("val_ssr_kept_0.1", "val_sdr_removed_0.2", "val_gradcam_kept_0.2", "val_ssr_half_0.1"):
        assert 0 <= float(row[key]) <= 1, key
    assert float(row["val_ssr_area_error_0.1"]) <= 1.5 / 64 ** 2
    from saliency_core.maskers.checkpoint import read_metadata
    from saliency_core.maskers.conditional import ConditionalMasker, ConditionalMaskerConfig

    cfg = ConditionalMaskerConfig.from_dict(read_metadata(path)["masker_config"])
    assert (cfg.target_area_low, cfg.target_area_high, cfg.default_area) == (0.05, 0.6, 0.2)
    assert "grad_temperature" not in read_metadata(path)["masker_config"]  # a training-only choice: not stored
    assert ConditionalMasker(cfg).grad_temperature == 0.0


@pytest.mark.parametrize("bad, words", [
    (dict(target_area_low=0.5, target_area_high=0.2), "need 0 < target_area_low <= target_area_high < 1"),
    (dict(target_area_low=0.05, target_area_high=1.0), "need 0 < target_area_low <= target_area_high < 1"),
    (dict(target_area_low=0.05, target_area_high=0.6, area_low=0.5, area_high=2.0), "leave the area weight range"),
    (dict(target_area_low=0.05, target_area_high=0.6, default_area=0.8), "the default setting is outside"),
])
def test_bad_area_configs_are_refused_naming_the_field(bad, words):
    with pytest.raises(ConfigError) as err:
        ConditionalTrainConfig(**bad)
    assert words in str(err.value)
