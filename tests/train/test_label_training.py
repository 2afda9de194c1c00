"""The label masker on the one training loop (tiny random classifier): its run folder is the others' (config.yaml,
steps.csv, epochs.csv with validation, tb/), a killed run resumes to the uninterrupted result, and validation's
insertion figures are what their definitions say."""
from __future__ import annotations

import dataclasses

import csv
from pathlib import Path

import pytest
import torch

from saliency_core.train.label_masker import LabelMaskerTrainConfig, LabelTrainer, train_label_masker
from tests.train.conftest import TINY

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def label_cfg(data: Path, out: Path, **kw) -> LabelMaskerTrainConfig:
    return LabelMaskerTrainConfig(data=str(data), out=str(out), **{**TINY, "fractions": 2, **kw})


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_label_run_folder_has_config_yaml_validation_and_tensorboard(tiny_data, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    cfg = label_cfg(tiny_data, out, epochs=2, tensorboard=True)
    path = train_label_masker(cfg, show_bars=False)
    assert (out / "config.yaml").exists() and not (out / "config.json").exists()
    assert LabelMaskerTrainConfig.from_yaml(out / "config.yaml") == cfg
    epochs = _rows(out / "epochs.csv")
    assert [r["epoch"] for r in epochs] == ["1", "2"]
    for r in epochs:
        for k in ("val_completeness", "val_soundness", "val_top1_completeness", "val_mask_mean", "val_mask_std"):
            assert 0 <= float(r[k]) <= 1, (k, r[k])
    steps = _rows(out / "steps.csv")
    assert [int(r["step"]) for r in steps] == list(range(1, 7))  # 12 training images, batch 4, 2 epochs
    lrs = [float(r["lr"]) for r in steps]
    assert lrs == pytest.approx([1e-3 * max(0.05, 1 - s / 6) for s in range(6)], rel=1e-5)  # linear, every step
    tags = EventAccumulator(str(out / "tb")).Reload().Tags()["scalars"]
    assert {"val/completeness", "val/soundness", "train/loss"} <= set(tags)
    from saliency_core.maskers.checkpoint import read_checkpoint

    _, meta = read_checkpoint(path)
    assert meta["kind"] == "label" and meta["metrics"]["final"]["val_completeness"] == float(epochs[-1][
        "val_completeness"])
    assert meta["metrics"]["val_classes_disjoint"] and meta["metrics"]["labels_per_image"] == 3


def test_label_resume_after_a_kill_reproduces_the_uninterrupted_run(tiny_data, tmp_path):
    """CA with a pool judging: killed after step 3 (state of step 2), resumed: the same steps and weights."""
    from saliency_core.maskers.checkpoint import read_checkpoint

    common = dict(mode="ca", pool_save_every=1, epochs=2, checkpoint_every=2)
    full = train_label_masker(label_cfg(tiny_data, tmp_path / "full", **common), show_bars=False)

    class Killed(Exception):
        pass

    def kill_at_step_3(fraction, message):
        if "step 3," in message:
            raise Killed

    cfg = label_cfg(tiny_data, tmp_path / "killed", **common)
    with pytest.raises(Killed):
        train_label_masker(cfg, progress=kill_at_step_3, show_bars=False)
    assert torch.load(tmp_path / "killed" / "state.pt", weights_only=True)["step"] == 2
    cfg = dataclasses.replace(cfg, resume=True)
    resumed = train_label_masker(cfg, show_bars=False)
    ta, _ = read_checkpoint(full)
    tb, meta = read_checkpoint(resumed)
    assert any(k.startswith("classifier.") for k in ta) and meta["metrics"]["classifier_updates"] == 6
    assert ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)
    a, b = _rows(tmp_path / "full" / "steps.csv"), _rows(tmp_path / "killed" / "steps.csv")
    assert [r["step"] for r in b] == [str(i) for i in range(1, 7)]
    assert [(r["loss"], r["judge"], r["cls_loss"]) for r in a] == [(r["loss"], r["judge"], r["cls_loss"]) for r in b]
    assert {r["judge"] for r in a} >= {"latest"} and any(r["judge"].startswith("pool:") for r in a)


def test_label_fix_step_changes_the_masker_only(tiny_data, tmp_path):
    from torch.utils.data import default_collate

    tr = LabelTrainer(label_cfg(tiny_data, tmp_path / "fix"))
    x, y = default_collate([tr.train_ds[i] for i in range(4)])
    clf0 = {k: v.clone() for k, v in tr.classifier.state_dict().items()}
    m0 = {k: v.clone() for k, v in tr.masker.state_dict().items()}
    row = tr.training_step(x, y)
    assert all(torch.equal(v, tr.classifier.state_dict()[k]) for k, v in clf0.items())
    assert any(not torch.equal(v, tr.masker.state_dict()[k]) for k, v in m0.items())
    assert row["judge"] == "fixed" and row["cls_loss"] == 0.0 and 0 <= row["mask_mean"] <= 1


def test_keep_top_keeps_exactly_the_top_share():
    from saliency_core.train.validation import keep_top

    masks = torch.randperm(64, generator=torch.Generator().manual_seed(0)).float().view(1, 1, 8, 8)
    for t in (0.125, 0.5, 0.875):
        keep = keep_top(masks, t)
        assert keep.sum() == round(64 * t)
        assert masks[keep.bool()].min() > masks[~keep.bool()].max()


def test_the_shipped_label_masker_config_still_loads(tmp_path):
    """label_lite0's config (what its run's config.json held, before config.yaml) is a valid config today, read
    from a .json file as the run folder had it."""
    import json

    shipped = Path(__file__).resolve().parents[2] / "checkpoints" / "label_lite0.json"
    (tmp_path / "config.json").write_text(json.dumps(json.loads(shipped.read_text())["config"]))
    cfg = LabelMaskerTrainConfig.from_yaml(tmp_path / "config.json")
    assert (cfg.soundness_weight, cfg.label_map, cfg.rest_labels, cfg.max_steps, cfg.lr_schedule) == \
        (2.0, True, 2, 450, "linear")
