"""The resumable state of a training run, written atomically so that a kill never corrupts it.

``<out>/state.pt`` holds plain data only (tensors, numbers, strings, lists, dicts): the models,
optimisers, schedulers, every random generator and the progress counters. It is written with
``torch.save`` through a temporary file and an atomic rename, and read with
``torch.load(weights_only=True)``, which cannot run code. The CA pool's snapshots go to a
versioned ``pool-<version>.safetensors`` that the state names; older pool files are removed only
after the state that replaces them is in place.
"""
from __future__ import annotations

import io
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from saliency_core.classifiers.pool import ClassifierPool
from saliency_core.files import atomic_write_bytes

STATE_FILE = "state.pt"
STATE_FORMAT = "saliency_core.train_state/1"


class StateError(ValueError):
    """A saved training state that cannot be resumed."""


def rng_state() -> dict[str, Any]:
    """States of Python's, NumPy's and torch's (CPU and CUDA) global generators, as plain data."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_state(out: Path, state: dict[str, Any], pool: ClassifierPool | None = None) -> Path:
    """Write ``state`` (and the pool's snapshots when they changed) atomically into ``out``."""
    from safetensors.torch import save

    out = Path(out)
    old_pools = sorted(out.glob("pool-*.safetensors"))
    if pool is not None:
        meta = pool.meta()
        pool_file = f"pool-{meta['version']:08d}.safetensors"
        if not (out / pool_file).exists():
            atomic_write_bytes(out / pool_file, save(pool.tensors(), metadata={"meta": json.dumps(meta)}))
        state = {**state, "pool": {"file": pool_file, "meta": meta}}
    state = {**state, "format": STATE_FORMAT}
    buf = io.BytesIO()
    torch.save(state, buf)
    path = out / STATE_FILE
    atomic_write_bytes(path, buf.getvalue())
    keep = state.get("pool", {}).get("file")
    for p in old_pools:
        if p.name != keep:
            p.unlink(missing_ok=True)
    return path


def load_state(out: Path, map_location: str | torch.device = "cpu") -> dict[str, Any] | None:
    """The saved state of the run in ``out`` (``None`` when there is none)."""
    path = Path(out) / STATE_FILE
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure means an unusable file
        raise StateError(f"training state '{path}' cannot be read: {str(exc).splitlines()[0]}") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise StateError(f"'{path}' is not a saliency_core training state")
    return state


def restore_pool(out: Path, state: dict[str, Any], pool: ClassifierPool) -> None:
    """Fill ``pool`` from the snapshot file that ``state`` names."""
    from safetensors.torch import load_file

    info = state.get("pool")
    if info is None:
        return
    path = Path(out) / info["file"]
    if not path.exists():
        raise StateError(f"the training state names pool file '{path}', which is missing")
    pool.restore(info["meta"], load_file(str(path)))
