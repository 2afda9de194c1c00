"""Random state of a training run: every draw comes from a generator derived from the run's ``seed``.

Nothing seeds the global generators. Draws that take a ``torch.Generator`` get one passed down: data order
(:func:`saliency_core.train.data.epoch_batches`), label and setting draws, infill draws (each step's infiller gets
a seed of its own, :func:`seeded_infiller`), the CA pool's choices (its own ``random.Random(seed)``). Draws that
cannot take one (torchvision's random crop and flip, dropout in a training classifier, the weights of a freshly
built network) run inside :func:`isolated_rng`: torch's global generator is forked, seeded from the run's seed
and the step (or image), and put back afterwards, so they are reproducible and leave the caller's RNG untouched.
A run's random state is therefore a pure function of (seed, rank, step): a resumed run draws exactly what an
uninterrupted one would, without saving any generator's state.
"""
from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from typing import Any

import torch

from saliency_core.train.data import _mix

#: Streams of a step: one generator per use, so adding a draw to one use never shifts another's.
STREAMS = {"global": 1, "labels": 2, "infill": 3, "extra": 4}


def mix_seed(*values: int) -> int:
    """A 63-bit seed from integers (nearby inputs give unrelated seeds)."""
    return _mix(*values)


def step_seed(seed: int, rank: int, step: int, stream: str = "global") -> int:
    """The seed of one step's draws of one kind (``stream``), for process ``rank``."""
    return _mix(seed, rank, step, STREAMS[stream])


def step_generator(seed: int, rank: int, step: int, stream: str) -> torch.Generator:
    """A CPU generator for one step's draws of one kind."""
    return torch.Generator().manual_seed(step_seed(seed, rank, step, stream))


@contextlib.contextmanager
def isolated_rng(seed: int, device: torch.device | None = None) -> Iterator[None]:
    """Run the block with torch's global generator (and ``device``'s, on CUDA) seeded from ``seed``; the caller's
    generator states are restored afterwards. For code that draws from the global RNG and takes no generator."""
    devices = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device is not None and device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.default_generator.manual_seed(seed % 2**63)  # not torch.manual_seed: it would reseed every GPU too
        if devices:
            with torch.cuda.device(devices[0]):
                torch.cuda.manual_seed(seed % 2**63)
        yield


def seeded_infiller(name: str, options: dict[str, Any], seed: int):
    """The infiller ``name`` with ``options``; one that draws (noise, random-image) gets ``seed`` mixed with the seed
    given in ``options`` (so each step draws afresh, and a resumed step draws as it did)."""
    from saliency_core.infill.base import INFILLERS, create_infiller

    config = INFILLERS.get(name).config
    takes_seed = config is not None and "seed" in {f.name for f in dataclasses.fields(config)}
    if not takes_seed:
        return create_infiller(name, **options)
    return create_infiller(name, **{**options, "seed": _mix(int(options.get("seed", 0)), seed) % 2**31})
