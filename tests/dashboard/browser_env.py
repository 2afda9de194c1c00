"""What the real-browser tests share: Debian's Chromium and its flags, the generous wait, the page's main parts, and
the check that a browser can run here (skip, or fail under CI=true)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

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
