"""Import, once and in one thread, the libraries the core imports lazily inside its functions.

Streamlit runs every browser session in its own thread. When two sessions make their first
explanation at the same moment, two threads would import matplotlib (or pytorch-grad-cam, captum,
scikit-image) at the same time, and a package with internal import cycles can then be seen
half-initialised ("cannot import name 'Colormap' from partially initialized module"). Importing
this module first (``dashboard.services`` does) does those imports under Python's module lock, so
a second session waits for them instead of racing.
"""
from __future__ import annotations

import importlib

#: Modules the core or the dashboard import lazily (optional ones are skipped when missing).
MODULES = (
    "matplotlib", "matplotlib.colors", "matplotlib.cm",
    "pandas", "plotly.graph_objects", "safetensors.torch",
    "skimage.data", "skimage.restoration",
    "pytorch_grad_cam", "pytorch_grad_cam.utils.model_targets", "captum.attr",
    "saliency_core.images.pictures", "saliency_core.infill.reference_pool", "saliency_core.metrics.completeness",
)

for _name in MODULES:
    try:
        importlib.import_module(_name)
    except ImportError:
        pass

from matplotlib import colormaps as _colormaps  # noqa: E402 - the registry the overlays use

_colormaps["inferno"]

# the method registry imports the maskers, optimisation and baselines modules
from saliency_core import method_entries as _available_methods  # noqa: E402

_available_methods()
