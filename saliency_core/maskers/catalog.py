"""Finding masker checkpoints: the shipped ones (in a checkout or an installed wheel) and other folders.

Only the safetensors header and the JSON sidecar are read here (cheap, no tensors, no modules built);
:func:`saliency_core.maskers.checkpoint.load_masker` validates a file fully when it is used.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

#: The shipped default checkpoint of each masker kind, for the default classifier.
DEFAULT_CHECKPOINTS = {"phang": "fix_lite0.safetensors", "label": "label_lite0.safetensors",
                       "conditional": "conditional_lite0.safetensors"}


def checkpoints_dir() -> Path:
    """The shipped checkpoints: ``checkpoints/`` of a checkout (or editable install), else the copy that
    a wheel installs as package data (``saliency_core/shipped_checkpoints/``)."""
    here = Path(__file__).resolve().parents[1]
    checkout = here.parent / "checkpoints"
    if (checkout / DEFAULT_CHECKPOINTS["phang"]).is_file():
        return checkout
    return here / "shipped_checkpoints"


def default_checkpoint(kind: str = "phang") -> Path:
    """The shipped checkpoint of a masker kind (it may be missing: callers check ``exists()``)."""
    return checkpoints_dir() / DEFAULT_CHECKPOINTS.get(kind, DEFAULT_CHECKPOINTS["phang"])


@dataclass(frozen=True)
class CheckpointInfo:
    """What a menu shows about a checkpoint file, read from its header and sidecar only."""

    path: Path
    label: str
    description: str
    kind: str = "phang"  # "phang" (one mask per image), "label" (one per label), "conditional"; "?": unreadable


def checkpoint_kind(path: Path) -> str:
    """The checkpoint's kind from its safetensors header (the header only: cheap), "?" when unreadable."""
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            kind = json.loads((f.metadata() or {}).get("kind", '"phang"'))
        return kind if isinstance(kind, str) else "?"
    except Exception:  # noqa: BLE001 - an unreadable file is reported when it is loaded, with its reason
        return "?"


def describe_checkpoint(path: Path) -> str:
    """One line from the sidecar: kind, mode, classifier and held-out figures (empty when there is none)."""
    try:
        meta = json.loads(path.with_suffix(".json").read_text())
    except (OSError, ValueError):
        return ""
    if not isinstance(meta, dict):
        return ""
    metrics = meta.get("metrics") if isinstance(meta.get("metrics"), dict) else {}
    final = metrics.get("final") if isinstance(metrics.get("final"), dict) else {}
    names = {"val_in_acc": "masked-in acc", "val_out_acc": "masked-out acc", "val_mask_mean": "mean mask"}
    shown = ", ".join(f"{label} {final[k]:.2f}" for k, label in names.items()
                      if isinstance(final.get(k), (int, float)))
    mode = f" ({metrics['mode'].upper()})" if isinstance(metrics.get("mode"), str) else ""
    return f"{meta.get('kind', 'phang')} masker{mode} for {meta.get('classifier_name', '?')}" + (
        f"; held-out classes: {shown}" if shown else "")


def find_checkpoints(extra_dirs: list[Path] | None = None) -> list[CheckpointInfo]:
    """Masker checkpoints (``*.safetensors``) in the shipped folder and ``extra_dirs``; the shipped
    defaults first (each is the default of its masker kind), then by name, unreadable files last."""
    seen: dict[Path, CheckpointInfo] = {}
    for folder in [checkpoints_dir(), *(extra_dirs or [])]:
        if not Path(folder).is_dir():
            continue
        for path in sorted(Path(folder).glob("*.safetensors")):
            path = path.resolve()
            if path not in seen:
                seen[path] = CheckpointInfo(path, path.stem, describe_checkpoint(path), checkpoint_kind(path))
    rank = {name: i for i, name in enumerate(DEFAULT_CHECKPOINTS.values())}
    return sorted(seen.values(), key=lambda c: (rank.get(c.path.name, len(rank)), c.kind == "?", c.label))
