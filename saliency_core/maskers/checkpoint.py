"""Masker checkpoints: safetensors weights + JSON metadata (config, classifier identity, metrics).

A checkpoint cannot run code: tensors live in a safetensors file and everything else is JSON in its
header (also written beside it as ``<name>.json`` for people to read). Writes are atomic (a kill
never leaves a half-written file). Loading checks that the masker belongs to the classifier it will
read from; a classifier-agnostic (CA) checkpoint carries its co-trained classifier's weights.
"""
from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from saliency_core.classifiers import DEFAULT_CLASSIFIER, Classifier, load_classifier
from saliency_core.files import atomic_write_bytes
from saliency_core.maskers.base import MASKER_KINDS

FORMAT = "saliency_core.masker/1"


class CheckpointError(ValueError):
    """The file is not a usable masker checkpoint (corrupt, wrong format, or wrong classifier)."""


@dataclass
class MaskerCheckpoint:
    """What a loaded checkpoint gives: the masker, the classifier it reads, and its metadata."""

    masker: nn.Module
    classifier: Classifier
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return self.metadata.get("kind", "phang")

    @property
    def takes_setting(self) -> bool:
        """Whether this kind's masks depend on a setting (objective, infiller, TV, upsampling) given at use."""
        return bool(MASKER_KINDS.get(self.kind).traits.takes_setting)

    def explain(self, stages: list[torch.Tensor], head: torch.Tensor | None, size: tuple[int, int],
                labels: list[int], setting: Any = None) -> tuple[torch.Tensor, bool]:
        """K x h x w masks for ``labels`` (K = 1 for a label-agnostic kind) and whether they are per label.

        ``setting`` (kinds that take one) chooses the point of the trained toggle space; None: its default.
        """
        explain = MASKER_KINDS.get(self.kind).traits.explain
        if setting is None:
            return explain(self.masker, self.classifier, stages, head, size, labels)
        if not self.takes_setting:
            raise CheckpointError(f"a '{self.kind}' masker has no toggles (objective, infiller, TV weight, "
                                  "upsampling); they need a conditional masker checkpoint")
        return explain(self.masker, self.classifier, stages, head, size, labels, setting=setting)


def portable(value: Any, root: Path | None = None) -> Any:
    """The value with every absolute path in it made relative to the project's folder (a checkpoint records
    where it came from, never the layout of the machine it was made on)."""
    root = root or Path(__file__).resolve().parents[2]
    if isinstance(value, dict):
        return {k: portable(v, root) for k, v in value.items()}
    if isinstance(value, list):
        return [portable(v, root) for v in value]
    if isinstance(value, str) and " " in value:  # a command line: each absolute word
        return " ".join(portable(w, root) for w in value.split(" "))
    if isinstance(value, str) and value.startswith("/"):
        return os.path.relpath(value, root)
    return value


def save_masker(path: str | Path, masker: nn.Module, classifier: Classifier, config: dict[str, Any],
                metrics: dict[str, Any] | None = None, include_classifier: bool = False,
                kind: str = "phang") -> Path:
    """Save a masker (and, for CA, its classifier's weights) with its full config and metrics."""
    from safetensors.torch import save

    path = Path(path)
    tensors = {f"masker.{k}": v.detach().cpu().contiguous() for k, v in masker.state_dict().items()}
    if include_classifier:
        tensors.update({f"classifier.{k}": v.detach().cpu().contiguous()
                        for k, v in classifier.model.state_dict().items()})
    classifier.refresh_identity()
    meta = {
        "format": FORMAT,
        "kind": kind,
        "classifier_name": classifier.name,
        "classifier_identity": classifier.identity,
        "classifier_included": include_classifier,
        "num_classes": classifier.num_classes,
        "masker_config": masker.config.to_dict(),
        "config": portable(config),
        "metrics": portable(metrics or {}),
    }
    header = {k: json.dumps(v) for k, v in meta.items()}
    atomic_write_bytes(path, save(tensors, metadata=header))
    atomic_write_bytes(path.with_suffix(".json"), (json.dumps(meta, indent=2) + "\n").encode())
    return path


#: A checkpoint larger than this is refused before its tensors are read (the shipped ones are 1-19 MB).
MAX_CHECKPOINT_BYTES = 512 * 2 ** 20


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The decoded header of a checkpoint file (no tensor is read), or a clear :class:`CheckpointError`."""
    from safetensors import safe_open

    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint '{path}' does not exist")
    if not path.is_file():
        raise CheckpointError(f"checkpoint '{path}' is not a file")
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"checkpoint '{path}' is empty")
    if size > MAX_CHECKPOINT_BYTES:
        raise CheckpointError(f"checkpoint '{path}' is {size / 2 ** 20:.0f} MB; masker checkpoints are at most "
                              f"{MAX_CHECKPOINT_BYTES // 2 ** 20} MB")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw_meta = f.metadata() or {}
    except Exception as exc:  # noqa: BLE001 - any parse error means it is not a valid safetensors file
        raise CheckpointError(
            f"checkpoint '{path}' is not a valid masker checkpoint (safetensors): {str(exc).splitlines()[0]}"
        ) from None
    try:
        meta = {k: json.loads(v) for k, v in raw_meta.items()}
    except (json.JSONDecodeError, TypeError):
        raise CheckpointError(f"checkpoint '{path}' has corrupt metadata") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint '{path}' is not a saliency_core masker checkpoint "
                              f"(format {meta.get('format')!r}, expected {FORMAT!r})")
    return meta


def metadata_problems(meta: dict[str, Any]) -> list[str]:
    """Every problem of a checkpoint's metadata, one line each naming the field (empty: it is usable).

    Checked before anything is built from it: types and ranges of every field, a known masker kind and a
    masker config that its kind accepts (which bounds the size of the network it describes).
    """
    problems = []

    def need(name: str, ok: bool, what: str) -> None:
        if not ok:
            problems.append(f"field '{name}' must be {what}, got {meta.get(name)!r}"[:300])

    def is_int(v: Any, lo: int, hi: int) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi

    kind = meta.get("kind", "phang")
    need("kind", isinstance(kind, str) and kind in MASKER_KINDS, f"one of {', '.join(MASKER_KINDS.list())}")
    need("classifier_name", isinstance(meta.get("classifier_name"), str) and 0 < len(meta["classifier_name"]) < 200,
         "the name of a classifier")
    ident = meta.get("classifier_identity")
    need("classifier_identity", isinstance(ident, str) and "@" in ident and len(ident) < 300,
         "'name@hash' of the classifier's weights")
    need("classifier_included", isinstance(meta.get("classifier_included", False), bool), "true or false")
    need("num_classes", is_int(meta.get("num_classes", 1000), 1, 100_000), "a class count (1..100000)")
    for key in ("config", "metrics"):
        need(key, isinstance(meta.get(key, {}), dict), "a mapping")
    cfg = meta.get("masker_config")
    if not isinstance(cfg, dict):
        problems.append(f"field 'masker_config' must be a mapping of options, got {type(cfg).__name__}")
    elif isinstance(kind, str) and kind in MASKER_KINDS:
        config_cls = MASKER_KINDS.get(kind).config
        if config_cls is not None:
            try:
                config_cls.from_dict(cfg) if hasattr(config_cls, "from_dict") else config_cls(**cfg)
            except (ValueError, TypeError) as exc:
                problems.append(f"field 'masker_config': {str(exc).splitlines()[0]}")
    return problems


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors and validated metadata of a checkpoint file, or a clear :class:`CheckpointError`."""
    from safetensors.torch import load_file

    path = Path(path)
    meta = read_metadata(path)
    problems = metadata_problems(meta)
    if problems:
        raise CheckpointError(f"checkpoint '{path}' has bad metadata: " + "; ".join(problems))
    try:
        tensors = load_file(str(path))
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(f"checkpoint '{path}' has unreadable tensors: {str(exc).splitlines()[0]}") from None
    return tensors, meta


def checkpoint_fixed_options(path: str | Path) -> dict[str, Any]:
    """The options a checkpoint was trained at one value only (a conditional masker's toggles it cannot vary), with
    that value, from its validated header alone; empty for kinds without toggles or a checkpoint that is unreadable
    (loading it says why)."""
    try:
        meta = read_metadata(path)
    except CheckpointError:
        return {}
    if metadata_problems(meta):
        return {}
    fixed = MASKER_KINDS.get(meta.get("kind", "phang")).traits.fixed_options
    return dict(fixed(meta["masker_config"])) if fixed else {}


def _strip(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def build_masker(kind: str, masker_config: dict[str, Any]) -> nn.Module:
    """Instantiate an (untrained) masker of a registered kind from its stored config."""
    if kind not in MASKER_KINDS:
        raise CheckpointError(f"unknown masker kind '{kind}' (known: {', '.join(MASKER_KINDS.list())})")
    return MASKER_KINDS.get(kind).factory(masker_config)


def load_masker(path: str | Path, classifier: Classifier | None = None,
                device: str | torch.device | None = "cpu") -> MaskerCheckpoint:
    """Load a masker checkpoint, checking it matches ``classifier``.

    Without ``classifier`` the checkpoint's own classifier is built (the embedded default, or the
    co-trained weights a CA checkpoint carries). A masker made for another classifier is refused.
    """
    path = Path(path)
    meta = read_metadata(path)
    problems = metadata_problems(meta)
    name = meta.get("classifier_name")
    if not problems and classifier is not None and name != classifier.name:
        problems.append(f"it was made for classifier '{name}', but the loaded classifier is '{classifier.name}'")
    if not problems and classifier is not None and meta.get("num_classes", 1000) != classifier.num_classes:
        problems.append(f"field 'num_classes' is {meta.get('num_classes')}, "
                        f"the classifier has {classifier.num_classes}")
    if not problems and classifier is None and name != DEFAULT_CLASSIFIER:
        problems.append(f"it was made for classifier '{name}': load that classifier (with its weights file) and "
                        "pass it in")
    if problems:  # refused before a tensor is read or a module is built
        raise CheckpointError(f"checkpoint '{path}': " + "; ".join(problems))
    tensors, meta = read_checkpoint(path)
    if meta.get("classifier_included"):
        # never mutate the caller's classifier: the co-trained weights go into a copy
        base = copy.deepcopy(classifier) if classifier is not None else load_classifier(name, device=device)
        try:
            base.model.load_state_dict(_strip(tensors, "classifier."))
        except RuntimeError as exc:
            raise CheckpointError(f"checkpoint '{path}': its classifier weights do not fit '{name}': "
                                  f"{str(exc).splitlines()[0]}") from None
        base.refresh_identity()
        classifier = base
    elif classifier is None:
        classifier = load_classifier(name, device=device)
    if classifier.identity != meta["classifier_identity"]:
        raise CheckpointError(
            f"checkpoint '{path}' was trained for classifier {meta['classifier_identity']}, "
            f"but the loaded classifier is {classifier.identity}; pick a masker made for this classifier"
        )
    try:
        masker = build_masker(meta.get("kind", "phang"), meta["masker_config"])
    except (ValueError, TypeError) as exc:  # an untrusted header: refused before anything large is built
        raise CheckpointError(f"checkpoint '{path}': {str(exc).splitlines()[0]}") from None
    try:
        masker.load_state_dict(_strip(tensors, "masker."))
    except (RuntimeError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"checkpoint '{path}': masker weights do not match its config: "
                              f"{str(exc).splitlines()[0]}") from None
    masker.eval().requires_grad_(False)
    return MaskerCheckpoint(masker=masker.to(classifier.device), classifier=classifier, metadata=meta)
