"""Random state through generators passed down: a training run neither reads nor changes the global RNGs, and
every draw (Gumbel noise, infill, augmentation, data order) is a function of (seed, rank, step), so a resumed
run draws what an uninterrupted one would."""
from __future__ import annotations

import dataclasses

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from saliency_core.maskers.checkpoint import read_checkpoint
from saliency_core.train.config import TrainConfig
from saliency_core.train.masker import train
from saliency_core.train.rng import isolated_rng, seeded_infiller, step_seed
from tests.train.conftest import TINY

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# Gumbel noise draws from torch's global RNG inside the step; the noise infiller from its own generator
DRAWING = dict(gumbel="soft", infiller="noise", epochs=2, checkpoint_every=2)


def _cfg(data: Path, out: Path, **kw) -> TrainConfig:
    return TrainConfig(data=str(data), out=str(out), **{**TINY, **kw})


def _same(a: Path, b: Path) -> bool:
    ta, _ = read_checkpoint(a)
    tb, _ = read_checkpoint(b)
    return ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)


def _seed_globals(seed: int) -> tuple:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state().clone()


def test_training_neither_reads_nor_changes_the_global_rngs(tiny_data, tmp_path):
    before = _seed_globals(1)
    a = train(_cfg(tiny_data, tmp_path / "a", **DRAWING), show_bars=False)
    after = random.getstate(), np.random.get_state()[1], torch.get_rng_state()
    assert after[0] == before[0] and np.array_equal(after[1], before[1]) and torch.equal(after[2], before[2])
    _seed_globals(2)
    b = train(_cfg(tiny_data, tmp_path / "b", **DRAWING), show_bars=False)
    assert _same(a, b)
    c = train(_cfg(tiny_data, tmp_path / "c", **{**DRAWING, "seed": 1}), show_bars=False)
    assert not _same(a, c)  # the run's own seed does decide


def test_a_resumed_run_with_a_drawing_infiller_matches_the_uninterrupted_one(tiny_data, tmp_path):
    """The infiller's draws used to come from one generator made at start and not saved: a resume drew anew."""
    full = train(_cfg(tiny_data, tmp_path / "full", **DRAWING), show_bars=False)

    class Killed(Exception):
        pass

    def kill_at_step_3(fraction, message):
        if "step 3," in message:
            raise Killed

    cfg = _cfg(tiny_data, tmp_path / "killed", **DRAWING)
    with pytest.raises(Killed):
        train(cfg, progress=kill_at_step_3, show_bars=False)
    cfg = dataclasses.replace(cfg, resume=True)
    assert _same(full, train(cfg, show_bars=False))


def test_step_seeds_isolated_rng_and_seeded_infillers():
    seeds = {step_seed(0, r, s, k) for r in (0, 1) for s in (0, 1, 2) for k in ("global", "labels", "infill")}
    assert len(seeds) == 18  # every (rank, step, stream) its own
    torch.manual_seed(7)
    outside = torch.get_rng_state().clone()
    with isolated_rng(123):
        first = torch.rand(3)
    with isolated_rng(123):
        assert torch.equal(torch.rand(3), first)
    assert torch.equal(torch.get_rng_state(), outside)
    x, keep = torch.zeros(2, 3, 8, 8), torch.zeros(2, 1, 8, 8)
    assert torch.equal(seeded_infiller("noise", {}, 5)(x, keep), seeded_infiller("noise", {}, 5)(x, keep))
    assert not torch.equal(seeded_infiller("noise", {}, 5)(x, keep), seeded_infiller("noise", {}, 6)(x, keep))
    assert not torch.equal(seeded_infiller("noise", {"seed": 1}, 5)(x, keep), seeded_infiller("noise", {}, 5)(x, keep))
