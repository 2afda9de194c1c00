"""What the real-browser tests share: Debian's Chromium and its flags, the generous wait, the page's main parts, and
the check that a browser can run here (skip, or fail under CI=true)."""
from __future__ import annotations

import contextlib
import ctypes
import os
import select
import shutil
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # skipped (failed under CI=true) by need_browser
    sync_playwright = None

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]
WAIT_MS = 240_000  # generous: a cold first render on a busy 2-core machine took 45 s
MAIN = '[data-testid="stMain"]'
SIDEBAR = '[data-testid="stSidebar"]'


def need_browser() -> None:
    """Playwright's sync API and Debian's chromium, or skip (fail under CI=true)."""
    problem = None if sync_playwright is not None else "the playwright package is not installed"
    if problem is None and not (Path(CHROMIUM).exists() or shutil.which("chromium")):
        problem = "Debian chromium is not installed (apt-get install -y chromium)"
    if problem:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"browser test cannot run in CI: {problem}")
        pytest.skip(problem)


#: inotify's event for a watched file or folder itself deleted, and the one for a watch removed (see inotify(7)).
IN_DELETE_SELF, IN_IGNORED = 0x400, 0x8000


def wait_until_deleted(path: Path, timeout_s: float) -> bool:
    """Block until the folder or file ``path`` is deleted, at most ``timeout_s``, and say whether it is gone.

    One blocking wait on a Linux inotify watch (``select`` on its descriptor until the kernel reports the deletion
    or the time is up): no polling, and no sleep that could end just before the deletion. A path already gone when
    the watch is set is reported gone at once."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.inotify_init1(os.O_CLOEXEC)
    if fd < 0:
        raise OSError(ctypes.get_errno(), "inotify_init1 failed")
    try:
        if libc.inotify_add_watch(fd, os.fsencode(path), IN_DELETE_SELF) < 0:
            if not os.path.lexists(path):  # deleted before the watch was set
                return True
            raise OSError(ctypes.get_errno(), f"inotify_add_watch failed on {path}")
        ready, _, _ = select.select([fd], [], [], timeout_s)
        if ready:  # the events: struct inotify_event {int wd; uint32 mask, cookie, len; char name[len]}
            _, mask, _, _ = struct.unpack_from("iIII", os.read(fd, 4096))
            assert mask & (IN_DELETE_SELF | IN_IGNORED), f"unexpected inotify event {mask:#x} on {path}"
        return not os.path.lexists(path)
    finally:
        os.close(fd)


@contextlib.contextmanager
def dashboard_server(log_path: Path, env: dict[str, str]) -> Iterator[str]:
    """``saliency dashboard --port P`` on loopback with ``env``, its URL once ``/_stcore/health`` answers; stopped
    (SIGTERM, then SIGKILL) afterwards, and its log must hold no traceback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = Path(sys.executable).with_name("saliency")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "saliency_core.cli"]
    with open(log_path, "wb") as log:  # a file, not a pipe: a closed pipe makes streamlit ignore SIGTERM
        proc = subprocess.Popen([*cmd, "dashboard", "--port", str(port), "--host", "127.0.0.1"],
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_healthy(proc, url, log_path)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    assert "Traceback" not in log_path.read_text(), log_path.read_text()[-3000:]


def _wait_until_healthy(proc: subprocess.Popen, url: str, log_path: Path, timeout_s: float = 120) -> None:
    """Until the server answers ``/_stcore/health`` (the server side, before any browser: each try blocks up to
    2 s on the socket)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the dashboard exited with {proc.returncode}: {log_path.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return
        except OSError:  # refused at once before the port opens: wait a little, or for the server's exit
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=0.5)
    pytest.fail(f"the dashboard did not answer within {timeout_s:.0f} s: {log_path.read_text()[-2000:]}")
