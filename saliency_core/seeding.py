"""The explanation's seed reaching every component that declares a ``seed`` option (beside the registry).

No global RNG: a method or infiller that makes random choices declares a ``seed`` option and draws from its own
``torch.Generator``; :func:`with_seed` is how a job's one seed (``ExplainConfig.seed``, ``saliency explain
--seed``, ``EvalConfig.seed``) reaches it. It reads only the entry's declaration, so it sits on the ground floor.
"""
from __future__ import annotations

from typing import Any

from saliency_core.registry import Entry


def with_seed(entry: Entry, options: dict[str, Any], seed: int) -> dict[str, Any]:
    """``options`` plus ``seed`` when the method or infiller declares a seed option and none was given:
    the explanation's seed reaches every random choice, through the component's own generator."""
    if entry.config is not None and "seed" not in options and any(o.name == "seed" for o in entry.options()):
        return {**options, "seed": int(seed)}
    return dict(options)
