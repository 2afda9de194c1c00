"""saliency_core: masking-based saliency maps (Phang et al., CASM, FIDO, Gupta et al.) in PyTorch.

The public API, importable from the package itself::

    import saliency_core as sc
    clf = sc.load_classifier()                      # embedded EfficientNet-Lite0
    e = sc.explain("cat.jpg", sc.ExplainConfig(method="masker", labels="top5"), classifier=clf)
    sc.list_methods(), sc.list_infillers()          # what is registered
    sc.create_method("fido", steps=50)              # options are validated against their declaration

Every public name is imported below under ``TYPE_CHECKING``, so editors and type checkers see it with its
signature and docs; at run time a name is imported from its module on first use (:func:`__getattr__` reads the
same import lines), so ``import saliency_core`` stays cheap (no torch) and ``saliency --help`` answers at once.
The import block is the one list: ``__all__`` must match it (``tests/test_architecture.py`` checks both).
"""
from __future__ import annotations

import ast
import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:  # the public API; at run time each name is imported on first use
    # explaining
    from saliency_core.explain_config import ExplainConfig
    from saliency_core.explanation import (
        VIEWS, Explanation, MaskResult, Prediction, classify_clean, classify_views, compute_masks, explain,
        mask_key_options, predict, render, working_input, write_explanation)
    from saliency_core.seeding import with_seed
    from saliency_core.preload import preload
    # classifiers
    from saliency_core.classifiers import CLASSIFIERS, Classifier, ClassifierLoadError, load_classifier
    # methods
    from saliency_core.methods import (
        GROUPS, METHODS, Method, MethodError, MethodResult, create_method, list_methods, method_entries,
        method_entry)
    from saliency_core.methods.base import estimated_passes
    # infillers
    from saliency_core.infill import INFILLERS, create_infiller, infiller_entry, list_infillers
    from saliency_core.infill.reference_pool import default_pool
    # maskers and checkpoints
    from saliency_core.maskers import MASKER_KINDS
    from saliency_core.maskers.catalog import CheckpointInfo, checkpoints_dir, find_checkpoints
    from saliency_core.maskers.checkpoint import CheckpointError, checkpoint_fixed_options, load_masker
    # images
    from saliency_core.images.loading import ImageLoadError, LoadedImage, load_image
    from saliency_core.images.pictures import COLORMAPS, mask_image, overlay
    from saliency_core.images.preprocessing import resize_mask
    # labels
    from saliency_core.labels import LabelSpec, LabelSpecError, parse_labels, resolve_labels
    # options and registries
    from saliency_core.options import Option, OptionError, coerce_option
    from saliency_core.registry import Entry, Registry, RegistryError
    # metrics
    from saliency_core.metrics import label_scores
    from saliency_core.metrics.fixed_area import CURVE_AREAS, area_curve, kept_and_removed, top_area_regions
    # files written whole
    from saliency_core.files import WriteError, atomic_write, atomic_write_bytes
    # what `saliency dashboard` hands to the app
    from saliency_core.dashboard_settings import DashboardConfigError, DashboardSettings

__all__ = [
    "CLASSIFIERS", "COLORMAPS", "CURVE_AREAS", "CheckpointError", "CheckpointInfo", "Classifier", "ClassifierLoadError",
    "DashboardConfigError", "DashboardSettings", "Entry", "ExplainConfig", "Explanation", "GROUPS", "INFILLERS",
    "ImageLoadError", "LabelSpec", "LabelSpecError", "LoadedImage", "MASKER_KINDS", "METHODS", "MaskResult", "Method", "MethodError",
    "MethodResult", "Option", "OptionError", "Prediction", "Registry", "RegistryError", "VIEWS", "WriteError",
    "area_curve", "atomic_write", "atomic_write_bytes", "checkpoint_fixed_options", "checkpoints_dir", "classify_clean",
    "classify_views", "coerce_option", "compute_masks", "create_infiller", "create_method", "default_pool",
    "estimated_passes", "explain", "find_checkpoints", "infiller_entry", "kept_and_removed", "label_scores", "list_infillers",
    "list_methods", "load_classifier", "load_image", "load_masker", "mask_image", "mask_key_options",
    "method_entries", "method_entry", "overlay", "parse_labels", "predict", "preload", "render", "resize_mask", "resolve_labels", "top_area_regions", "with_seed",
    "working_input", "write_explanation",
]

_modules: dict[str, str] = {}


def _public_modules() -> dict[str, str]:
    """Public name -> the module that defines it, read from this file's ``TYPE_CHECKING`` imports."""
    if not _modules:
        tree = ast.parse(Path(__file__).read_text(encoding="utf-8"))
        block = next(n for n in tree.body if isinstance(n, ast.If) and getattr(n.test, "id", "") == "TYPE_CHECKING")
        for node in block.body:
            if isinstance(node, ast.ImportFrom) and node.module:
                _modules.update({a.asname or a.name: node.module for a in node.names})
    return _modules


def __getattr__(name: str) -> Any:
    module = _public_modules().get(name)
    if module is None:
        raise AttributeError(f"module 'saliency_core' has no attribute '{name}'")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
