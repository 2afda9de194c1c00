"""The pool of past classifiers of classifier-agnostic (CA) training (Zolna et al., CASM).

While the classifier keeps training, snapshots of its weights are kept on the CPU. At every step the
masker's masked images are judged by the latest (current) classifier with probability ``p_latest``,
otherwise by a snapshot drawn uniformly from the pool. CASM's *thinning strategies* say which
classifiers are kept:

======  =====================  ==========  ==========================================
name    classifier trained?    p_latest    snapshots kept
======  =====================  ==========  ==========================================
F       no (fixed)             1           none (the fixed classifier judges)
L       yes                    1           none (always the latest)
FL      yes                    0.5         only the first (untrained) classifier
L100    yes                    0.5         one every 100 classifier updates
L1000   yes                    0.5         one every 1000 classifier updates
======  =====================  ==========  ==========================================

A full pool (``size``, 30 by default) overwrites a uniformly drawn slot, as CASM's code does. All
random draws come from the pool's own seeded generator, whose state is saved for resuming.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

import torch
from torch import nn


class PoolError(ValueError):
    """Bad pool settings or pool state."""


@dataclass(frozen=True)
class ThinningStrategy:
    """How the pool is filled and used (see the module docstring)."""

    name: str
    train_classifier: bool
    p_latest: float
    save_every: int | None  # None: only the first snapshot (or none when p_latest == 1)

    @property
    def uses_pool(self) -> bool:
        return self.p_latest < 1.0


THINNING_STRATEGIES: dict[str, ThinningStrategy] = {
    "F": ThinningStrategy("F", train_classifier=False, p_latest=1.0, save_every=None),
    "L": ThinningStrategy("L", train_classifier=True, p_latest=1.0, save_every=None),
    "FL": ThinningStrategy("FL", train_classifier=True, p_latest=0.5, save_every=None),
    "L100": ThinningStrategy("L100", train_classifier=True, p_latest=0.5, save_every=100),
    "L1000": ThinningStrategy("L1000", train_classifier=True, p_latest=0.5, save_every=1000),
}


def thinning_strategy(name: str, save_every: int | None = None, p_latest: float | None = None) -> ThinningStrategy:
    """A named strategy, optionally with its snapshot period or ``p_latest`` overridden."""
    if name not in THINNING_STRATEGIES:
        raise PoolError(f"unknown thinning strategy '{name}' (choose from {', '.join(THINNING_STRATEGIES)})")
    base = THINNING_STRATEGIES[name]
    if save_every is not None and save_every < 1:
        raise PoolError(f"pool_save_every must be >= 1, got {save_every}")
    if p_latest is not None and not 0.0 <= p_latest <= 1.0:
        raise PoolError(f"pool_p_latest must be in [0, 1], got {p_latest}")
    return ThinningStrategy(base.name, base.train_classifier,
                            base.p_latest if p_latest is None else float(p_latest),
                            base.save_every if save_every is None else int(save_every))


class ClassifierPool:
    """Snapshots of a classifier's ``state_dict`` on the CPU, sampled as CASM specifies."""

    def __init__(self, size: int = 30, save_every: int | None = 100, p_latest: float = 0.5, seed: int = 0) -> None:
        if size < 1:
            raise PoolError(f"pool size must be >= 1, got {size}")
        if not 0.0 <= p_latest <= 1.0:
            raise PoolError(f"p_latest must be in [0, 1], got {p_latest}")
        self.size = size
        self.save_every = save_every
        self.p_latest = p_latest
        self.snapshots: list[dict[str, torch.Tensor]] = []
        self.rng = random.Random(seed)
        self.version = 0  # bumped at every change, so a saved run knows when to rewrite its pool file

    @classmethod
    def from_strategy(cls, strategy: ThinningStrategy, size: int = 30, seed: int = 0) -> "ClassifierPool":
        return cls(size=size, save_every=strategy.save_every, p_latest=strategy.p_latest, seed=seed)

    def __len__(self) -> int:
        return len(self.snapshots)

    def should_save(self, updates_done: int) -> bool:
        """Whether to snapshot after ``updates_done`` classifier updates (always when empty)."""
        if not self.snapshots:
            return True
        return bool(self.save_every) and updates_done > 0 and updates_done % self.save_every == 0

    def add(self, model: nn.Module) -> int:
        """Snapshot ``model`` (a CPU copy); a full pool overwrites a uniformly drawn slot. Returns the slot."""
        state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        if len(self.snapshots) < self.size:
            self.snapshots.append(state)
            slot = len(self.snapshots) - 1
        else:
            slot = self.rng.randrange(self.size)
            self.snapshots[slot] = state
        self.version += 1
        return slot

    def observe(self, model: nn.Module, updates_done: int) -> bool:
        """Call after each classifier update (and once before the first): snapshots when due."""
        if self.should_save(updates_done):
            self.add(model)
            return True
        return False

    def draw(self) -> int | None:
        """``None`` (the latest classifier) with probability ``p_latest``, else a uniform pool index."""
        r = self.rng.random()
        if r < self.p_latest or not self.snapshots:
            return None
        return self.rng.randrange(len(self.snapshots))

    def load_into(self, model: nn.Module, index: int) -> nn.Module:
        """Copy snapshot ``index`` into ``model`` (a judge copy of the classifier) and return it."""
        model.load_state_dict(self.snapshots[index])
        return model

    # --- saving and resuming -------------------------------------------------------------------
    def tensors(self) -> dict[str, torch.Tensor]:
        """All snapshots as one flat ``{"<slot>/<name>": tensor}`` dict (for safetensors)."""
        return {f"{i}/{k}": v.contiguous() for i, snap in enumerate(self.snapshots) for k, v in snap.items()}

    def meta(self) -> dict:
        """JSON-able state besides the tensors: settings, generator state, count and version."""
        version, internal, gauss = self.rng.getstate()
        return {"size": self.size, "save_every": self.save_every, "p_latest": self.p_latest,
                "count": len(self.snapshots), "version": self.version,
                "rng": [version, list(internal), gauss]}

    def restore(self, meta: dict, tensors: dict[str, torch.Tensor]) -> None:
        """Inverse of :meth:`meta` + :meth:`tensors`."""
        count = int(meta["count"])
        snaps: list[dict[str, torch.Tensor]] = [{} for _ in range(count)]
        for key, value in tensors.items():
            slot, name = key.split("/", 1)
            if int(slot) >= count:
                raise PoolError(f"pool state has slot {slot} but count {count}")
            snaps[int(slot)][name] = value
        self.snapshots = snaps
        self.size = int(meta["size"])
        self.save_every = meta["save_every"]
        self.p_latest = float(meta["p_latest"])
        self.version = int(meta["version"])
        version, internal, gauss = meta["rng"]
        self.rng.setstate((version, tuple(internal), gauss))
