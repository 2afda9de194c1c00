"""saliency_core: masking-based saliency maps (Phang et al., CASM, FIDO, Gupta et al.) in PyTorch.

The public API, importable from the package itself (loaded on first use, so ``import saliency_core``
stays cheap)::

    import saliency_core as sc
    clf = sc.load_classifier()                      # embedded EfficientNet-Lite0
    e = sc.explain("cat.jpg", sc.ExplainConfig(method="masker", labels="top5"), classifier=clf)
    sc.list_methods(), sc.list_infillers()          # what is registered
    sc.create_method("fido", steps=50)              # options are validated against their declaration
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: Public name -> module that defines it.
_API = {
    # explaining
    "explain": "saliency_core.explanation", "ExplainConfig": "saliency_core.explanation",
    "Explanation": "saliency_core.explanation", "write_explanation": "saliency_core.explanation",
    "predict": "saliency_core.explanation", "Prediction": "saliency_core.explanation",
    "compute_masks": "saliency_core.explanation", "render": "saliency_core.explanation",
    "MaskResult": "saliency_core.explanation", "mask_key_options": "saliency_core.explanation",
    "classify_views": "saliency_core.explanation", "classify_clean": "saliency_core.explanation",
    "working_input": "saliency_core.explanation", "VIEWS": "saliency_core.explanation",
    # classifiers
    "load_classifier": "saliency_core.classifiers", "Classifier": "saliency_core.classifiers",
    "ClassifierLoadError": "saliency_core.classifiers", "CLASSIFIERS": "saliency_core.classifiers",
    # methods
    "METHODS": "saliency_core.methods", "list_methods": "saliency_core.methods",
    "create_method": "saliency_core.methods", "method_entries": "saliency_core.methods",
    "method_entry": "saliency_core.methods", "MethodError": "saliency_core.methods",
    "estimated_passes": "saliency_core.methods.base",
    "MethodResult": "saliency_core.methods", "GROUPS": "saliency_core.methods", "Method": "saliency_core.methods",
    # infillers
    "INFILLERS": "saliency_core.infill", "list_infillers": "saliency_core.infill",
    "create_infiller": "saliency_core.infill", "infiller_entry": "saliency_core.infill",
    # maskers and checkpoints
    "MASKER_KINDS": "saliency_core.maskers", "find_checkpoints": "saliency_core.maskers.catalog",
    "CheckpointInfo": "saliency_core.maskers.catalog", "load_masker": "saliency_core.maskers.checkpoint",
    "CheckpointError": "saliency_core.maskers.checkpoint", "checkpoints_dir": "saliency_core.maskers.catalog",
    "atomic_write_bytes": "saliency_core.maskers.checkpoint",
    "checkpoint_fixed_options": "saliency_core.maskers.checkpoint",
    # images
    "load_image": "saliency_core.images.loading", "ImageLoadError": "saliency_core.images.loading",
    "LoadedImage": "saliency_core.images.loading", "mask_image": "saliency_core.images.pictures",
    "overlay": "saliency_core.images.pictures", "resize_mask": "saliency_core.images.preprocessing",
    "COLORMAPS": "saliency_core.images.pictures",
    "default_pool": "saliency_core.infill.reference_pool",
    # options and registries
    "Option": "saliency_core.options", "OptionError": "saliency_core.options",
    "coerce_option": "saliency_core.options", "Registry": "saliency_core.registry",
    "RegistryError": "saliency_core.registry", "Entry": "saliency_core.registry",
    # metrics
    "label_scores": "saliency_core.metrics",
}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'saliency_core' has no attribute '{name}'")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
