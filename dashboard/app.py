"""Entry script of the dashboard: ``saliency dashboard`` runs ``streamlit run dashboard/app.py``.

The frame around every page: page config, navigation, and the image picker in the sidebar (so the
image stays the same across pages). The pages live in ``app_pages/`` and stay thin.
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
try:
    import dashboard  # noqa: F401 - installed with the project
except ImportError:  # pragma: no cover - running from a checkout without an install
    sys.path.insert(0, str(HERE.parent))

import streamlit as st

from dashboard import resources, sections, state, url_state, widgets

# user errors reach the server log as one line with time and level (bugs with their traceback)
_log = logging.getLogger("saliency")
if not _log.handlers:
    _handler = logging.StreamHandler()
    _handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    _log.addHandler(_handler)
    _log.setLevel(logging.INFO)
    _log.propagate = False

# no page icons: a ":material/...:" icon becomes a favicon fetched from fonts.gstatic.com (the app stays offline)
st.set_page_config(page_title="Saliency maps", layout="wide")

PAGES = [
    st.Page(HERE / "app_pages" / "explain.py", title="Explain", default=True, url_path="explain"),
    st.Page(HERE / "app_pages" / "compare.py", title="Compare", url_path="compare"),
    st.Page(HERE / "app_pages" / "demo.py", title="Demo", url_path="demo"),
    st.Page(HERE / "app_pages" / "help.py", title="Help", url_path="help"),
]
page = st.navigation(PAGES)
# page paths are case-insensitive: /Compare opens the Compare page (Streamlit matches paths exactly)
_asked = url_state.requested_page()
_match = next((p for p in PAGES if p.url_path == _asked.lower()), None) if _asked else None
if _match is not None and _asked != _match.url_path:
    st.switch_page(_match)

with st.sidebar:
    state.set_image_input(None)
    with sections.guard("Reading the link"):
        # a shared link sets the widgets when the session starts; what it asked for that cannot be used is named
        url_state.restore(resources.catalog(), len(resources.current_classifier().class_names))
        url_state.show_notes()
    with sections.guard("Choosing the image"):
        settings = resources.settings()
        state.set_image_input(widgets.image_source_ui(settings))

resources.upload_reaper()  # once per process: uploaded checkpoints go when their session ends
state.set_status_slot(st.empty())  # the top of every page: what is running, for how long, out of how long
page.run()
resources.freeze_heap()  # once: later garbage-collector passes skip the heap loaded so far
