"""Streamlit dashboard for saliency_core: widgets, layout and plots only (every computation is a core call).

Start it with ``saliency dashboard``; the entry script is ``dashboard/app.py``. Modules:
``options`` (method/infiller options found from the core's factories), ``services`` (cached core
calls, no widgets), ``resources`` (``st.cache_resource`` loaders), ``widgets`` (``*_ui()`` returning
core configs), ``plots`` (plotly figures), ``sections`` (page blocks shared by pages),
``help_text`` (two sentences and a paper per toggle) and ``app_pages/`` (thin pages).
"""
