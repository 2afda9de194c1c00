"""Import, once and in one thread, the libraries the core imports lazily inside its functions.

Streamlit runs every browser session in its own thread. When two sessions make their first
explanation at the same moment, two threads would import matplotlib (or pytorch-grad-cam, captum,
scikit-image) at the same time, and a package with internal import cycles can then be seen
half-initialised ("cannot import name 'Colormap' from partially initialized module"). Importing
this module first (``dashboard.services`` does) does those imports under Python's module lock, so
a second session waits for them instead of racing.
"""
from __future__ import annotations

import plotly.graph_objects  # noqa: F401 - the dashboard's own lazily imported library

import saliency_core as sc

# the core's lazy imports (matplotlib, pandas, safetensors, scikit-image, pytorch-grad-cam, captum and its own
# modules) and its registries, through the public API
sc.preload()
