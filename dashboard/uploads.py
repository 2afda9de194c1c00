"""Uploaded masker checkpoints: one folder per browser session, removed when the session ends.

Visitors never name a path on the server; messages show an upload by its own file name (:func:`shown_path`).
"""
from __future__ import annotations

import atexit
import re
import shutil
import tempfile
import weakref
from pathlib import Path
from typing import Callable

from saliency_core import CheckpointError, atomic_write_bytes

from .result_cache import digest

#: Uploaded checkpoints live here, one sub-folder per browser session, removed when the session ends (its
#: state is collected) and the whole folder when the server stops.
UPLOAD_ROOT = Path(tempfile.mkdtemp(prefix="saliency-dashboard-uploads-"))
atexit.register(shutil.rmtree, UPLOAD_ROOT, True)
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


_SESSION_PREFIX = "session-"


class SessionUploads:
    """A browser session's upload folder, named after its session id (``session-<id>-<random>``) so that
    :func:`reap_session_uploads` can tell whose it is; it is deleted with the object too."""

    def __init__(self, session_id: str = "") -> None:
        tag = _SAFE_NAME.sub("_", session_id)
        self.folder = Path(tempfile.mkdtemp(dir=UPLOAD_ROOT, prefix=f"{_SESSION_PREFIX}{tag}-" if tag
                                            else _SESSION_PREFIX))
        self._finalizer = weakref.finalize(self, shutil.rmtree, str(self.folder), True)

    def remove(self) -> None:
        self._finalizer()


def session_of(folder: Path) -> str | None:
    """The session id a :class:`SessionUploads` folder was named after (None: not one of those)."""
    name = folder.name
    if not name.startswith(_SESSION_PREFIX) or name.count("-") < 2:
        return None
    return name[len(_SESSION_PREFIX):].rsplit("-", 1)[0] or None


def reap_session_uploads(root: Path, is_active: Callable[[str], bool], gone_since: dict[str, float],
                         now: float, grace_s: float) -> list[Path]:
    """Delete the upload folders of sessions that have been gone (closed or disconnected) for ``grace_s``.

    Streamlit keeps a closed browser's session for a possible reconnect and drops it only when another page
    loads, so its ``session_state`` (and the finaliser of its folder) could outlive the visitor by ten minutes
    and more. ``gone_since`` (kept by the caller between calls) remembers when each session was first seen
    gone; a session back within the grace keeps its folder. Returns the folders deleted."""
    removed = []
    for folder in sorted(root.glob(f"{_SESSION_PREFIX}*")):
        sid = session_of(folder)
        if sid is None:
            continue
        if is_active(sid):
            gone_since.pop(sid, None)
            continue
        first = gone_since.setdefault(sid, now)
        if now - first >= grace_s:
            shutil.rmtree(folder, ignore_errors=True)
            gone_since.pop(sid, None)
            removed.append(folder)
    return removed


def store_uploaded_checkpoint(data: bytes, name: str, max_mb: int, folder: Path | None = None) -> Path:
    """Save an uploaded checkpoint as ``<folder>/<content hash>/<its own name>`` and return the path, so that
    messages about it show the name the user knows (:func:`shown_path` hides the folders)."""
    if len(data) > max_mb * 1024 * 1024:
        raise CheckpointError(f"{name}: the file is {len(data) / 2 ** 20:.1f} MB; the limit is {max_mb} MB")
    safe = _SAFE_NAME.sub("_", Path(name).name).strip("._") or "checkpoint"
    if not safe.endswith(".safetensors"):
        safe += ".safetensors"
    path = Path(folder or UPLOAD_ROOT) / digest(data) / safe
    if not path.exists():
        atomic_write_bytes(path, data)
    return path


def shown_path(text: str) -> str:
    """A message with the upload folders taken out of any path in it (users see their file's own name)."""
    return re.sub(re.escape(str(UPLOAD_ROOT)) + r"/[^/'\" ]+/[0-9a-f]+/", "", text)
