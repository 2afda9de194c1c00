"""Streamlit dashboard for saliency_core: widgets, layout and plots only (every computation is a core call).

Start it with ``saliency dashboard``; the entry script is ``dashboard/app.py``. Modules, one job each:

- computing, no widgets: ``services`` (explanations: masks, views, estimates), ``curve_scores`` (per-label
  curves), ``result_cache`` (the LRU shared by sessions and its keys), ``inputs``
  (uploads and sample photos), ``menus`` (methods, infillers and checkpoints as offered), ``uploads`` (uploaded
  checkpoints, one folder per session), ``export`` (downloads, result.json, the Compare page as a file);
- drawing: ``widgets`` (``*_ui()`` returning core configs), ``plots`` (plotly figures), ``sections`` (page blocks),
  ``progress`` (the status line and the worker thread), ``ab`` (A/B), ``url_state`` (links), ``help_text`` and
  ``plain_words`` (words), ``app_pages/`` (thin pages); ``resources`` holds the ``st.cache_resource`` loaders.
"""
