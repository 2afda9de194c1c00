"""Import now, in the calling thread, what the core otherwise imports inside its functions.

A server that runs each visitor in a thread of its own (the dashboard) calls :func:`preload` once at start:
two threads that import matplotlib or pytorch-grad-cam for the first time at the same moment can see a package
half-initialised ("cannot import name 'Colormap' from partially initialized module"); imported here first, under
Python's module lock, a second thread waits for them instead of racing. Also fills the method and infiller
registries (their built-in modules) and matplotlib's colormap registry.
"""
from __future__ import annotations

import importlib

#: Libraries the core imports lazily, inside the functions that use them (optional ones may be missing).
LAZY_LIBRARIES = (
    "matplotlib", "matplotlib.colors", "matplotlib.cm", "pandas", "safetensors.torch",
    "skimage.data", "skimage.restoration",
    "pytorch_grad_cam", "pytorch_grad_cam.utils.model_targets", "captum.attr",
)


def preload() -> list[str]:
    """Import the core's lazily imported libraries and modules and fill its registries; returns the names of
    the optional libraries that are not installed (their methods or infillers report it when used)."""
    missing = []
    for name in LAZY_LIBRARIES:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    from saliency_core.images import pictures  # noqa: F401 - matplotlib's colormaps, imported lazily elsewhere
    from saliency_core.infill import reference_pool  # noqa: F401
    from saliency_core.infill.base import list_infillers
    from saliency_core.methods.base import method_entries
    from saliency_core.metrics import completeness  # noqa: F401

    if "matplotlib" not in missing:
        from matplotlib import colormaps

        colormaps["inferno"]  # the registry the overlays use, filled on first lookup
    method_entries()
    list_infillers()
    return missing
