"""The CA classifier pool: sampling probabilities, thinning strategies, replacement and resuming."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from saliency_core.classifiers.pool import THINNING_STRATEGIES, ClassifierPool, PoolError, thinning_strategy


def tagged(value: float) -> nn.Module:
    """A one-parameter model whose weight identifies the snapshot."""
    m = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        m.weight.fill_(value)
    return m


def test_draws_latest_with_p_latest_else_uniform_over_the_pool():
    pool = ClassifierPool(size=30, save_every=1, p_latest=0.5, seed=3)
    for v in range(4):
        pool.add(tagged(v))
    n = 40_000
    draws = [pool.draw() for _ in range(n)]
    latest = sum(d is None for d in draws) / n
    assert abs(latest - 0.5) < 0.015  # 6 standard deviations of a binomial proportion
    for i in range(4):
        # each snapshot: (1 - 0.5) / 4 = 0.125, sd ~ 0.0017
        assert abs(sum(d == i for d in draws) / n - 0.125) < 0.01
    assert set(draws) == {None, 0, 1, 2, 3}


@pytest.mark.parametrize("p", [0.0, 0.2, 1.0])
def test_p_latest_extremes_and_values(p):
    pool = ClassifierPool(size=5, save_every=1, p_latest=p, seed=0)
    pool.add(tagged(1.0))
    draws = [pool.draw() for _ in range(5000)]
    frac = sum(d is None for d in draws) / len(draws)
    assert abs(frac - p) < 0.03
    if p == 1.0:
        assert all(d is None for d in draws)


def test_empty_pool_always_gives_the_latest():
    pool = ClassifierPool(size=5, p_latest=0.0, seed=0)
    assert all(pool.draw() is None for _ in range(20))


def test_sampling_is_seeded():
    a, b = ClassifierPool(seed=7), ClassifierPool(seed=7)
    for pool in (a, b):
        for v in range(5):
            pool.add(tagged(v))
    assert [a.draw() for _ in range(200)] == [b.draw() for _ in range(200)]


def test_full_pool_replaces_uniform_slots_and_keeps_its_size():
    pool = ClassifierPool(size=3, save_every=1, p_latest=0.5, seed=0)
    for v in range(200):
        pool.add(tagged(float(v)))
    assert len(pool) == 3
    kept = sorted(float(s["weight"]) for s in pool.snapshots)
    assert kept[-1] == 199.0  # the newest always lands in the pool
    assert kept[0] > 150  # old snapshots get replaced (each survives a step with p 2/3)
    assert pool.version == 200


@pytest.mark.parametrize("name, updates, expected", [
    ("FL", 500, [0.0]),  # only the first (untrained) classifier
    ("L100", 250, [0.0, 100.0, 200.0]),  # the first, then every 100 updates
    ("L1000", 2500, [0.0, 1000.0, 2000.0]),
])
def test_thinning_strategies_keep_the_right_snapshots(name, updates, expected):
    s = thinning_strategy(name)
    pool = ClassifierPool.from_strategy(s, size=30, seed=0)
    pool.observe(tagged(0.0), 0)
    for u in range(1, updates + 1):
        pool.observe(tagged(float(u)), u)
    assert [float(x["weight"]) for x in pool.snapshots] == expected
    assert s.train_classifier and s.p_latest == 0.5


def test_strategy_table_and_overrides():
    assert not THINNING_STRATEGIES["F"].train_classifier and THINNING_STRATEGIES["F"].p_latest == 1.0
    assert THINNING_STRATEGIES["L"].train_classifier and not THINNING_STRATEGIES["L"].uses_pool
    s = thinning_strategy("L100", save_every=7, p_latest=0.25)
    assert (s.save_every, s.p_latest) == (7, 0.25)
    with pytest.raises(PoolError, match="unknown thinning strategy"):
        thinning_strategy("L10")
    with pytest.raises(PoolError):
        thinning_strategy("L100", p_latest=1.5)


def test_restore_gives_the_same_snapshots_and_future_draws():
    a = ClassifierPool(size=4, seed=11)
    for v in range(6):
        a.add(tagged(v))
    for _ in range(13):
        a.draw()
    b = ClassifierPool(size=1, seed=0)
    b.restore(a.meta(), a.tensors())
    assert len(b) == len(a) and b.size == 4 and b.version == a.version
    assert all(torch.equal(x["weight"], y["weight"]) for x, y in zip(a.snapshots, b.snapshots))
    assert [a.draw() for _ in range(100)] == [b.draw() for _ in range(100)]
    a.add(tagged(99.0))
    b.add(tagged(99.0))
    assert [float(s["weight"]) for s in a.snapshots] == [float(s["weight"]) for s in b.snapshots]


def test_load_into_copies_a_snapshot_into_the_judge():
    pool = ClassifierPool(seed=0)
    pool.add(tagged(5.0))
    judge = tagged(0.0)
    pool.load_into(judge, 0)
    assert float(judge.weight.detach()) == 5.0
