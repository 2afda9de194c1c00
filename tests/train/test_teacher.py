"""Distilling per-image extremal regions into the area masker (``saliency_core.train.teacher``): the regions pack and
come back, the teacher term is a dense loss that prefers the teacher's region, a teacher file is made from a run's
own training photos and read back by its steps, and a wrong file is refused in one line."""
from __future__ import annotations

import csv

import pytest
import torch

from saliency_core.maskers.conditional import Setting
from saliency_core.train.conditional import ConditionalTrainConfig, ConditionalTrainer, train_conditional
from saliency_core.train.conditional_area import teacher_games
from saliency_core.train.config import ConfigError
from saliency_core.train.teacher import (
    Teacher,
    TeacherError,
    image_key,
    make_teacher,
    pack,
    teacher_loss,
    teacher_rows,
    unpack,
)
from tests.train.conftest import TINY

pytestmark = pytest.mark.usefixtures("one_torch_thread")
AREA = dict(target_area_low=0.05, target_area_high=0.6, default_area=0.2, resolution_divisor=8,
            objective_branches="head", smooth_levels=0, upsample_factors=(1, 2), augment=False, image_size=64,
            infillers=("gray", "blur"), score_prior="cam")


def tiny_cfg(data, out, **kw) -> ConditionalTrainConfig:
    return ConditionalTrainConfig(data=str(data), out=str(out), **{**TINY, **AREA, **kw})


def test_regions_pack_and_unpack():
    r = torch.rand(3, 7, 9, generator=torch.Generator().manual_seed(0)) > 0.5
    p = pack(r)
    assert p.dtype == torch.uint8 and p.numel() == (3 * 7 * 9 + 7) // 8
    assert torch.equal(unpack(p, (3, 7, 9)).bool(), r)


def test_teacher_loss_is_lowest_for_the_teachers_own_region():
    """At a small temperature the loss of the region the scores already rank on top is near 0; the complement's is
    large; a flat guess (the scores' order unrelated to the region) lies between; the gradient reaches every pixel."""
    scores = torch.linspace(-1, 1, 100).view(1, 1, 10, 10).requires_grad_(True)
    area = torch.tensor([0.3])
    top = torch.zeros(1, 10, 10)
    top.view(-1)[70:] = 1.0  # the 30 highest scores
    bottom = torch.zeros(1, 10, 10)
    bottom.view(-1)[:30] = 1.0
    other = torch.zeros(1, 10, 10)
    other.view(-1)[::10] = 1.0
    own, wrong, mixed = (float(teacher_loss(scores.detach(), area, r, 0.05)) for r in (top, bottom, other))
    assert own < 0.05 < mixed < wrong
    teacher_loss(scores, area, other, 0.25).sum().backward()
    assert (scores.grad != 0).float().mean() > 0.9  # dense, unlike the thresholded mask's


def test_teacher_rows_redraw_a_share_of_ssr_and_sdr_rows_at_its_setting():
    x01 = torch.rand(6, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    regions = {image_key(x01[i]): {"ssr": pack(torch.ones(2, 8, 8, dtype=torch.bool)),
                                   "sdr": pack(torch.zeros(2, 8, 8, dtype=torch.bool))} for i in range(5)}
    teacher = Teacher((0.1, 0.2), (8, 8), regions)  # no region for image 5
    settings = [Setting(o, "blur", 0.0, 1, 1.0, 0.33) for o in ("ssr", "sdr", "both", "ssr", "sdr", "ssr")]
    out, taught = teacher_rows(settings, x01, teacher, 1.0, torch.Generator().manual_seed(0))
    assert [i for i, _ in taught] == [0, 1, 3, 4]  # not 'both', not the image without a region
    for i, region in taught:
        assert out[i].infiller == "gray" and out[i].area in (0.1, 0.2)
        assert float(region.mean()) == (1.0 if settings[i].objective == "ssr" else 0.0)
    assert out[2] == settings[2] and out[5] == settings[5]
    none, nothing = teacher_rows(settings, x01, teacher, 0.0, torch.Generator().manual_seed(0))
    assert none == settings and nothing == []


def test_a_teacher_file_from_the_runs_photos_is_learned_from(tiny_data, tmp_path):
    """make_teacher reads the run's own training photos (the keys its steps look up): every step finds them, logs
    the teacher term, and the term is in the loss (a run with a larger teacher weight trains differently)."""
    cfg = tiny_cfg(tiny_data, tmp_path / "a")
    (tmp_path / "config.yaml").write_text(cfg.to_yaml())
    info = make_teacher(str(tmp_path / "config.yaml"), str(tmp_path / "t.pt"), iterations=2, areas=(0.1, 0.2),
                        shard=0, shards=1)
    assert info["photos"] == 12  # the 16 tiny photos less the class-disjoint val split (1 of 4 classes)
    with pytest.raises(TeacherError, match="exists"):
        make_teacher(str(tmp_path / "config.yaml"), str(tmp_path / "t.pt"), 2, (0.1, 0.2), 0, 1)
    from torch.utils.data import default_collate

    after = []
    for weight in (0.0, 3.0):  # the same step, with and without the teacher term
        tr = ConditionalTrainer(tiny_cfg(tiny_data, tmp_path / f"w{weight}", teacher=(str(tmp_path / "t.pt"),),
                                         teacher_share=1.0, teacher_weight=weight))
        x, y = default_collate([tr.train_ds[i] for i in range(4)])
        row = tr.training_step(x, y)
        assert row["teacher_bce"] > 0  # every ssr / sdr row found its photo
        after.append({k: v.clone() for k, v in tr.masker.state_dict().items()})
    assert any(not torch.equal(v, after[1][k]) for k, v in after[0].items())  # the term is in the loss
    path = train_conditional(tiny_cfg(tiny_data, tmp_path / "run", epochs=1, teacher=(str(tmp_path / "t.pt"),),
                                      teacher_share=1.0), show_bars=False)
    assert path.exists()
    with open(tmp_path / "run" / "epochs.csv", newline="") as f:
        row = list(csv.DictReader(f))[-1]
    assert float(row["train_teacher_bce"]) > 0


def test_a_wrong_teacher_file_is_refused_in_one_line(tiny_data, tmp_path):
    bad = tmp_path / "bad.pt"
    torch.save({"format": "something else"}, bad)
    with pytest.raises(TeacherError, match="is not a teacher file") as err:  # before the run writes anything
        ConditionalTrainer(tiny_cfg(tiny_data, tmp_path / "a", teacher=(str(bad),)))
    assert "\n" not in str(err.value) and not (tmp_path / "a").exists()
    tr = ConditionalTrainer(tiny_cfg(tiny_data, tmp_path / "a"))
    with pytest.raises(TeacherError, match="was made with classifier"):
        torch.save({"format": "saliency_core.teacher/1", "classifier_identity": "other@0", "image_size": 64,
                    "areas": [0.1], "regions": {}}, tmp_path / "other.pt")
        Teacher.load([tmp_path / "other.pt"], tr.classifier.identity, 64)
    with pytest.raises(ConfigError, match="without augmentation"):
        ConditionalTrainConfig(**{**AREA, "augment": True, "teacher": ("t.pt",)})


def test_teacher_games_redraw_the_rows_without_a_teacher_game():
    settings = [Setting(o, "blur", 0.0, 1, 1.0, 0.3) for o in ("ssr", "both", "sdr", "both", "both")]
    out = teacher_games(settings, ("ssr", "sdr", "both"), torch.Generator().manual_seed(0))
    assert out[0] == settings[0] and out[2] == settings[2]
    assert all(s.objective in ("ssr", "sdr") for s in out)
    assert [s.area for s in out] == [0.3] * 5 and [s.infiller for s in out] == ["blur"] * 5
    assert teacher_games(settings, ("sdr", "both"), torch.Generator().manual_seed(0))[1].objective == "sdr"
    with pytest.raises(ValueError, match="has a teacher game"):
        teacher_games(settings, ("both",), torch.Generator())


def test_distillation_alone_teaches_every_row_without_the_classifiers_masked_pass(tiny_data, tmp_path, monkeypatch):
    """reward_weight 0: no classifier call on masked images (the step's cost), every row learns the teacher's
    region, and the masker still moves; without a teacher the setting is refused in one line."""
    import saliency_core.train.conditional_area as area_step
    from torch.utils.data import default_collate

    cfg = tiny_cfg(tiny_data, tmp_path / "a")
    (tmp_path / "config.yaml").write_text(cfg.to_yaml())
    make_teacher(str(tmp_path / "config.yaml"), str(tmp_path / "t.pt"), iterations=2, areas=(0.1, 0.2),
                 shard=0, shards=1)
    taught: list[int] = []
    real = area_step.teacher_loss
    monkeypatch.setattr(area_step, "teacher_loss", lambda s, *a: taught.append(s.shape[0]) or real(s, *a))
    calls = {}
    for weight in (1.0, 0.0):
        tr = ConditionalTrainer(tiny_cfg(tiny_data, tmp_path / f"r{weight}", teacher=(str(tmp_path / "t.pt"),),
                                         teacher_share=0.5, reward_weight=weight))
        masked: list[int] = []  # the classifier called as a module: the pass over the masked images
        tr.classifier.register_forward_hook(lambda mod, inp, out: masked.append(inp[0].shape[0]))
        before = {k: v.clone() for k, v in tr.masker.state_dict().items()}
        x, y = default_collate([tr.train_ds[i] for i in range(6)])
        taught.clear()
        row = tr.training_step(x, y)
        calls[weight] = (sum(masked), sum(taught), row)
        assert any(not torch.equal(v, tr.masker.state_dict()[k]) for k, v in before.items())
    assert calls[1.0][0] > 0 and ("in_prob" in calls[1.0][2] or "out_prob" in calls[1.0][2])
    assert calls[1.0][1] < 6  # share 0.5, 'both' rows untaught
    assert calls[0.0][0] == 0 and "in_prob" not in calls[0.0][2] and "out_prob" not in calls[0.0][2]
    assert calls[0.0][1] == 6  # every row taught ('both' rows redrawn as a game, share 1)
    with pytest.raises(ConfigError, match="teacher alone"):
        ConditionalTrainConfig(**{**AREA, "reward_weight": 0.0})


def test_validation_runs_every_val_every_epochs_and_after_the_last(tiny_data, tmp_path):
    train_conditional(tiny_cfg(tiny_data, tmp_path / "run", epochs=3, val_every=2), show_bars=False)
    with open(tmp_path / "run" / "epochs.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    validated = [bool(r.get("val_ssr_kept_0.1")) for r in rows]
    assert validated == [False, True, True]
