"""Masker training on a tiny random classifier and a handful of generated images.

Covers: a FIX step changes the masker and not the frozen classifier; a CA step updates the
classifier on its own loss only (checked against a hand-computed SGD step); both gradients are
computed before either optimiser steps; resuming after a kill reproduces the uninterrupted run;
the objectives, stage subsets, Gumbel and infiller options run; data options (few-shot,
only-correct).
"""
from __future__ import annotations

import dataclasses

import copy
import csv
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from saliency_core.infill.composite import composite
from saliency_core.train.masker import TrainConfig, Trainer, train
from tests.train.conftest import TINY

pytestmark = pytest.mark.usefixtures("one_torch_thread")

def tiny_cfg(data: Path, out: Path, **kw) -> TrainConfig:
    return TrainConfig(data=str(data), out=str(out), **{**TINY, **kw})


def first_batch(tr: Trainer) -> tuple[torch.Tensor, torch.Tensor]:
    from torch.utils.data import default_collate

    return default_collate([tr.train_ds[i] for i in range(4)])


def clone_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_fix_step_changes_masker_not_classifier(tiny_data, tmp_path):
    tr = Trainer(tiny_cfg(tiny_data, tmp_path / "fix"))
    x, y = first_batch(tr)
    clf0, m0 = clone_state(tr.classifier), clone_state(tr.masker)
    row = tr.training_step(x, y)
    assert same_state(clf0, clone_state(tr.classifier))  # parameters and BN statistics untouched
    assert not tr.classifier.training
    assert all(p.grad is None for p in tr.classifier.parameters())
    changed = [k for k in m0 if not torch.equal(m0[k], tr.masker.state_dict()[k])]
    assert any("weight" in k for k in changed)
    assert row["judge"] == "latest" and np.isfinite(row["total"])
    assert set(row) >= {"in_ce", "out_negentropy", "area_in", "area_out", "tv", "mask_mean"}


def test_ca_step_updates_classifier_on_its_own_loss_only(tiny_data, tmp_path):
    """The classifier's step is plain SGD on CE(clean) + CE(masked-out), whatever the masker's loss."""
    results = []
    for i, kw in enumerate([dict(), dict(lambda_in=0.0, lambda_tv=10.0)]):
        tr = Trainer(tiny_cfg(tiny_data, tmp_path / f"ca{i}", mode="ca", pool_strategy="L", **kw))
        x, y = first_batch(tr)
        clf0, msk0 = copy.deepcopy(tr.classifier), copy.deepcopy(tr.masker)
        torch.manual_seed(123)
        tr.training_step(x, y)
        results.append((tr, clf0, msk0, x, y))
    (a, clf0, msk0, x, y), (b, *_) = results
    pa, pb = clone_state(a.classifier.model), clone_state(b.classifier.model)
    assert same_state(pa, pb)  # the masker's objective does not reach the classifier
    assert not same_state(clone_state(a.masker), clone_state(b.masker))

    # hand-computed step from the same start: same forward passes, in the same order (dropout RNG)
    torch.manual_seed(123)
    clf0.train().requires_grad_(True)
    xn = clf0.preprocessing.normalize(x)
    clean = clf0.forward_features(xn)
    m = msk0.train()([s.detach() for s in clean.stages], tuple(xn.shape[-2:])).detach()
    clf0(composite(xn, m))  # the masked-in pass comes first in the step (its dropout draws)
    loss = F.cross_entropy(clean.logits, y) + F.cross_entropy(clf0(composite(xn, 1 - m)), y)
    params = [p for p in clf0.model.parameters()]
    grads = torch.autograd.grad(loss, params)
    lr, wd = a.cfg.classifier_lr, a.cfg.classifier_weight_decay
    names = [n for n, _ in clf0.model.named_parameters()]
    for name, p, g in zip(names, params, grads):
        expected = p.detach() - lr * (g + wd * p.detach())  # first SGD step: momentum buffer = gradient
        torch.testing.assert_close(pa[name], expected, rtol=1e-4, atol=1e-6)
    assert any(not torch.equal(pa[n], p.detach()) for n, p in zip(names, params))


def test_ca_pool_judges_and_snapshots(tiny_data, tmp_path):
    tr = Trainer(tiny_cfg(tiny_data, tmp_path / "pool", mode="ca", pool_strategy="L100", pool_save_every=1,
                          pool_size=3))
    tr.pool.observe(tr.classifier.model, 0)
    x, y = first_batch(tr)
    judges = [tr.training_step(x, y)["judge"] for _ in range(8)]
    assert len(tr.pool) == 3  # initial + one per update, capped at the pool size
    assert "latest" in judges and any(j.startswith("pool:") for j in judges)
    # snapshots are copies on the CPU, not views of the live classifier
    snap = tr.pool.snapshots[-1]
    assert all(v.device.type == "cpu" for v in snap.values())
    name = next(n for n, p in tr.classifier.model.named_parameters())
    with torch.no_grad():
        dict(tr.classifier.model.named_parameters())[name].add_(1.0)
    assert not torch.equal(snap[name], tr.classifier.model.state_dict()[name])


@pytest.mark.parametrize("kw", [
    dict(objective="MaxClass", stages=(1,)),
    dict(objective="MinClass", stages=(3,), infiller="blur", infiller_options={"sigma": 2.0}),
    dict(objective="MaxEnt+MinClass", gumbel="hard", gumbel_temperature=0.5),
    dict(objective="MaxClass+MinClass", gumbel="soft", stages=(2, 5), final_upsample="bilinear", tv_border=0.3),
    dict(mode="ca", pool_strategy="FL", amp="bf16", channels_last=True),  # the GPU options, on the CPU
])
def test_objectives_stages_gumbel_infillers_train(tiny_data, tmp_path, kw):
    tr = Trainer(tiny_cfg(tiny_data, tmp_path / "obj", **kw))
    x, y = first_batch(tr)
    m0 = clone_state(tr.masker)
    row = tr.training_step(x, y)
    assert np.isfinite(row["total"])
    assert not same_state(m0, clone_state(tr.masker))
    obj = tr.objective.objective
    assert (row.get("in_ce") is not None) == ("in" in obj.split("+"))
    assert (row.get("out_negce") is not None) == ("out-class" in obj)
    assert (row.get("out_negentropy") is not None) == ("out-entropy" in obj)


def _read_steps(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_resume_after_kill_reproduces_uninterrupted_run(tiny_data, tmp_path):
    from saliency_core.maskers.checkpoint import read_checkpoint

    common = dict(mode="ca", pool_strategy="L100", pool_save_every=1, epochs=2, checkpoint_every=2,
                  gumbel="soft")
    full = train(tiny_cfg(tiny_data, tmp_path / "full", **common), show_bars=False)

    class Killed(Exception):
        pass

    def kill_at_step_3(fraction, message):
        if "step 3," in message:
            raise Killed  # after step 3; the last saved state is step 2's

    cfg = tiny_cfg(tiny_data, tmp_path / "killed", **common)
    with pytest.raises(Killed):
        train(cfg, progress=kill_at_step_3, show_bars=False)
    assert torch.load(tmp_path / "killed" / "state.pt", weights_only=True)["step"] == 2
    cfg = dataclasses.replace(cfg, resume=True)  # configs are frozen
    resumed = train(cfg, show_bars=False)

    ta, meta_a = read_checkpoint(full)
    tb, meta_b = read_checkpoint(resumed)
    assert ta.keys() == tb.keys() and any(k.startswith("classifier.") for k in ta)
    for k in ta:
        assert torch.equal(ta[k], tb[k]), k
    steps_a, steps_b = _read_steps(tmp_path / "full" / "steps.csv"), _read_steps(tmp_path / "killed" / "steps.csv")
    assert [r["step"] for r in steps_b] == [str(i) for i in range(1, 7)]  # no duplicated step 3
    assert [(r["total"], r["judge"]) for r in steps_a] == [(r["total"], r["judge"]) for r in steps_b]
    assert meta_a["metrics"]["final"]["val_in_acc"] == meta_b["metrics"]["final"]["val_in_acc"]
    assert len(list((tmp_path / "killed").glob("pool-*.safetensors"))) == 1
    # the CA checkpoint carries its co-trained classifier, which load_masker restores and checks
    from saliency_core.maskers.checkpoint import load_masker

    ck = load_masker(resumed, classifier=Trainer(tiny_cfg(tiny_data, tmp_path / "fresh")).classifier)
    assert ck.classifier.identity == meta_b["classifier_identity"]
    assert torch.equal(ck.classifier.model.state_dict()[next(iter(ck.classifier.model.state_dict()))],
                       tb[f"classifier.{next(iter(ck.classifier.model.state_dict()))}"])


def test_cosine_factor_by_hand():
    from saliency_core.train.masker import cosine_factor

    assert cosine_factor(0, 4) == 1.0
    assert cosine_factor(2, 4) == pytest.approx(0.5)
    assert cosine_factor(1, 4) == pytest.approx((1 + 2 ** -0.5) / 2)
    assert cosine_factor(3, 4) == pytest.approx((1 - 2 ** -0.5) / 2) and cosine_factor(3, 4) > 0


@pytest.mark.parametrize("schedule, factors", [("cosine", [1.0, 0.5]), ("step", [1.0, 1.0])])
def test_lr_schedule_sets_each_epochs_rate(tiny_data, tmp_path, schedule, factors):
    """The rate each step trained with, as logged in steps.csv: cosine halves it in the second of two epochs."""
    train(tiny_cfg(tiny_data, tmp_path / schedule, epochs=2, lr_schedule=schedule, lr=1e-3), show_bars=False)
    rows = _read_steps(tmp_path / schedule / "steps.csv")
    by_epoch = [[float(r["lr"]) for r in rows if r["epoch"] == str(e)] for e in (1, 2)]
    assert all(by_epoch)
    for rates, f in zip(by_epoch, factors):
        assert rates == pytest.approx([1e-3 * f] * len(rates))


def test_resume_refuses_a_different_config(tiny_data, tmp_path):
    from saliency_core.train.state import StateError

    train(tiny_cfg(tiny_data, tmp_path / "r", max_steps=1), show_bars=False)
    with pytest.raises(StateError, match="lambda_tv"):
        train(tiny_cfg(tiny_data, tmp_path / "r", resume=True, lambda_tv=0.5), show_bars=False)


def test_fix_run_outputs_and_validation_are_class_disjoint(tiny_data, tmp_path):
    from saliency_core.maskers.checkpoint import load_masker

    out = tmp_path / "run"
    path = train(tiny_cfg(tiny_data, out, epochs=1, tensorboard=True), show_bars=False)
    assert (out / "config.yaml").exists() and (out / "epochs.csv").exists() and list((out / "tb").iterdir())
    ck = load_masker(path, classifier=Trainer(tiny_cfg(tiny_data, tmp_path / "x")).classifier)
    m = ck.metadata["metrics"]
    assert m["val_classes"] == 1 and m["train_classes"] == 3 and m["val_classes_disjoint"]
    assert m["complete"] and m["steps"] == 3 and m["images_per_s"] > 0 and m["peak_memory_mb"] > 0
    assert 0 <= m["final"]["val_mask_mean"] <= 1
    assert TrainConfig.from_yaml(out / "config.yaml") == tiny_cfg(tiny_data, out, epochs=1, tensorboard=True)


def test_few_shot_and_only_correct_select_training_images(tiny_data, tmp_path):
    tr = Trainer(tiny_cfg(tiny_data, tmp_path / "fs", few_shot_classes=2, few_shot_per_class=3, few_shot_seed=1))
    assert len(tr.train_samples) == 6 and len({s.label for s in tr.train_samples}) == 2
    again = Trainer(tiny_cfg(tiny_data, tmp_path / "fs2", few_shot_classes=2, few_shot_per_class=3, few_shot_seed=1))
    assert tr.train_samples == again.train_samples  # seeded
    # only_correct keeps exactly the images the classifier gets right on the evaluation crop
    from saliency_core.datasets import ImageDataset, eval_transform

    full = Trainer(tiny_cfg(tiny_data, tmp_path / "all"))
    with torch.no_grad():
        xs = torch.stack([ImageDataset(full.train_samples, eval_transform(32))[i][0]
                          for i in range(len(full.train_samples))])
        pred = full.classifier(full.classifier.preprocessing.normalize(xs)).argmax(-1)
    right = [s for s, p in zip(full.train_samples, pred) if int(p) == s.label]
    if right:
        oc = Trainer(tiny_cfg(tiny_data, tmp_path / "oc", only_correct=True))
        assert oc.train_samples == right
    else:
        from saliency_core.train.config import ConfigError

        with pytest.raises(ConfigError, match="none of the training images"):
            Trainer(tiny_cfg(tiny_data, tmp_path / "oc", only_correct=True))


def test_epoch_batches_are_seeded_split_and_complete():
    from saliency_core.train.data import epoch_batches

    a = epoch_batches(10, 3, seed=0, epoch=0)
    assert a == epoch_batches(10, 3, seed=0, epoch=0) and a != epoch_batches(10, 3, seed=0, epoch=1)
    assert [len(b) for b in a] == [3, 3, 3]  # the short last batch is dropped
    r0 = epoch_batches(10, 2, seed=0, epoch=0, rank=0, world_size=2, drop_last=False)
    r1 = epoch_batches(10, 2, seed=0, epoch=0, rank=1, world_size=2, drop_last=False)
    flat0, flat1 = sum(r0, []), sum(r1, [])
    assert len(r0) == len(r1) and not set(flat0) & set(flat1) and len(set(flat0 + flat1)) == 10
    assert len(epoch_batches(100, 10, 0, 0, fraction=0.2)) == 2


DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "imagenet-samples" / "labels.csv"


@pytest.mark.slow
@pytest.mark.skipif(not DATA.exists(), reason="needs ../shared/data/imagenet-samples")
def test_ca_on_the_real_classifier_saves_a_loadable_checkpoint(tmp_path):
    """Two CA steps of EfficientNet-Lite0 on real images; the checkpoint restores its classifier."""
    from saliency_core.maskers.checkpoint import load_masker

    cfg = TrainConfig(data=str(DATA), out=str(tmp_path / "ca"), mode="ca", pool_save_every=1, batch_size=2,
                      image_size=96, epochs=1, max_steps=2, few_shot_classes=6, few_shot_per_class=1,
                      tensorboard=False, threads=1)
    path = train(cfg, show_bars=False)
    ck = load_masker(path)
    assert ck.metadata["classifier_included"] and ck.classifier.identity == ck.metadata["classifier_identity"]
    assert ck.metadata["metrics"]["steps"] == 2 and not ck.metadata["metrics"]["complete"]
