"""Session-state keys that are not widget keys, in one place (each browser session has its own)."""
from __future__ import annotations

import streamlit as st

from .inputs import ImageInput

IMAGE_INPUT = "image_input"  # the image chosen in the sidebar (set by app.py on every run)
TOUR_STEP = "tour_step"  # the guided tour's current step on the Demo page (None: tour closed)
UPLOADS = "uploads"  # this session's upload folder (deleted when the session ends)
STATUS = "status_slot"  # the line at the top of the page that says what is running (set by app.py every run)


def set_image_input(image: ImageInput | None) -> None:
    st.session_state[IMAGE_INPUT] = image


def image_input() -> ImageInput | None:
    return st.session_state.get(IMAGE_INPUT)


def tour_step() -> int | None:
    return st.session_state.get(TOUR_STEP)


def set_tour_step(step: int | None) -> None:
    st.session_state[TOUR_STEP] = step


def upload_folder():
    """This session's folder for uploaded checkpoints (made on first use, deleted with the session)."""
    from .uploads import SessionUploads

    if UPLOADS not in st.session_state:
        st.session_state[UPLOADS] = SessionUploads(session_id())
    return st.session_state[UPLOADS].folder


def session_id() -> str:
    """This browser session's id ("" outside a running app, e.g. in unit tests)."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    return ctx.session_id if ctx is not None else ""


def set_status_slot(slot) -> None:
    st.session_state[STATUS] = slot


def status_slot():
    """The placeholder at the top of the page for "what is running" (None outside the app frame)."""
    return st.session_state.get(STATUS)
