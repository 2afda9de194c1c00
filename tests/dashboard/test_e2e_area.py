"""Real-browser test of the area slider and the area curve (issue 25): ``saliency dashboard`` in headless Debian
Chromium (Playwright, no browser download), with an area-aware method installed as a plug-in (a module and its
``.dist-info`` in a temporary folder on ``PYTHONPATH``: no edit of the project), so the test does not depend on which
masker checkpoint ships.

Moving the area slider must redraw the region picture and the curve's chosen-area line with no Run button. Every wait
in the browser is one of Playwright's auto-waiting ``expect`` checks on a fact the page shows (a text, an attribute,
a count), never a sleep. Screenshots go to ``test-artifacts/``. Without Chromium the test skips locally but FAILS
when ``CI=true``.
"""
from __future__ import annotations

import os
import re
import shutil
import textwrap
from pathlib import Path

import pytest

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # skipped (failed under CI=true) by _need_browser
    expect = sync_playwright = None

pytestmark = pytest.mark.e2e

from tests.dashboard.browser_env import (  # noqa: E402 - shared by the browser tests
    ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, MAIN, ROOT, SIDEBAR, WAIT_MS, need_browser as _need_browser,
    dashboard_server,
)

#: An area-aware method as a plug-in declares it: ``takes_area`` with ``area`` and ``areas``, and an ``option_space``
#: narrowing the area to 10 .. 50 % (default 20 %) as a checkpoint's trained range would. Its region is exactly the
#: top ``area`` of a centred bump, so a larger area is a larger picture region.
PLUGIN = '''
    from dataclasses import dataclass

    import torch

    from saliency_core import Option, top_area_regions
    from saliency_core.methods import MethodResult, register_method
    from saliency_core.options import check_options, option


    @dataclass(frozen=True)
    class AreaDemoOptions:
        objective: str = option("ssr", choices=("ssr", "sdr", "both"), main=True, help="what the region must do")
        area: float = option(0.2, low=0.05, high=0.6, main=True, help="the region's fraction of the image")
        areas: tuple = option((), help="extra areas in the same pass")

        def __post_init__(self) -> None:
            check_options(self, "method 'area-demo'")


    def space(options):
        return {"area": Option("area", "float", 0.2, "", low=0.1, high=0.5)}


    def region(h, w, objective, area):
        y, x = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
        bump = -(x ** 2 + y ** 2) if objective == "ssr" else x
        return top_area_regions(bump, area)


    @register_method("area-demo", summary="a centred region of a given area (a browser-test plug-in)",
                     config=AreaDemoOptions, group="Control", per_label=False, takes_area=True, option_space=space)
    class AreaDemo:
        def __init__(self, options):
            self.options = options

        def __call__(self, classifier, x, labels, clean, progress=None):
            o = self.options
            h, w = x.shape[-2:]
            extra = torch.stack([region(h, w, o.objective, a)[None] for a in o.areas]) if o.areas else None
            return MethodResult(region(h, w, o.objective, o.area)[None], per_label=False, areas=tuple(o.areas),
                                area_masks=extra)
'''


def _plugin_site(folder: Path) -> Path:
    """The plug-in 'installed' in ``folder``: its module and the ``.dist-info`` that names its entry point."""
    from saliency_core.plugins import PLUGIN_GROUP

    (folder / "area_demo_saliency.py").write_text(textwrap.dedent(PLUGIN))
    info = folder / "area_demo_saliency-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: area_demo_saliency\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{PLUGIN_GROUP}]\narea_demo = area_demo_saliency\n")
    return folder


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``saliency dashboard`` on a free loopback port with the plug-in on its path; stopped afterwards; its log must
    hold no traceback."""
    _need_browser()
    site = _plugin_site(tmp_path_factory.mktemp("site"))
    env = {**os.environ, "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join([str(site), str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env.pop("DISPLAY", None)
    env.pop("SALIENCY_PLUGINS", None)
    with dashboard_server(tmp_path_factory.mktemp("server") / "server.log", env) as url:
        yield url


def test_the_area_slider_redraws_the_region_and_the_curve_without_run(server, tmp_path):
    """Opened on the plug-in's method: the area slider spans the method's option_space (10 .. 50 %, at 20 %), the
    region at 20 % and the area curve are drawn; moving the slider to 25 % redraws the region picture and the
    curve's chosen-area line with no Run button anywhere."""
    expect.set_options(timeout=WAIT_MS)
    home = tmp_path / "home"
    home.mkdir()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"),
                                    args=CHROMIUM_ARGS, env={**os.environ, "HOME": str(home)})
        try:
            page = browser.new_context(viewport={"width": 1440, "height": 1800}).new_page()
            page.set_default_timeout(WAIT_MS)
            main, sidebar = page.locator(MAIN), page.locator(SIDEBAR)
            app = page.locator('[data-testid="stApp"]')
            page.goto(f"{server}/?image=chelsea&method=area-demo&labels=top1")
            expect(main).to_contain_text("Masked in (kept)")
            region = main.locator('[data-testid="stImage"]').filter(has_text="the rest dimmed").locator("img")
            curve = main.locator('.st-key-area_chart:not([data-stale="true"])')  # the area curve (its key), current
            expect(region).to_have_count(1)
            expect(curve).to_have_count(1)
            expect(curve).to_contain_text("only the region kept")
            expect(curve).to_contain_text("chosen 20%")
            expect(main).to_contain_text("The region at 20%")
            expect(app).to_have_attribute("data-test-script-state", "notRunning")
            slider = sidebar.locator('[data-testid="stSlider"]').filter(has_text="area").get_by_role("slider")
            expect(slider).to_have_attribute("aria-valuetext", "20%")
            expect(sidebar).to_contain_text("10%")  # the slider's ends: the option space's range, not 5 .. 60 %
            expect(sidebar).to_contain_text("50%")
            before = region.get_attribute("src")
            page.screenshot(path=str(tmp_path / "before.png"))
            slider.focus()
            for _ in range(5):  # 20 % -> 25 %, a step of 1 % each
                page.keyboard.press("ArrowRight")
            expect(slider).to_have_attribute("aria-valuetext", "25%")
            expect(page).to_have_url(re.compile(r"area=0\.25"))  # the link follows the last value
            expect(main).to_contain_text("The region at 25%")
            expect(curve).to_contain_text("chosen 25%")
            expect(curve).not_to_contain_text("chosen 20%")
            expect(region).not_to_have_attribute("src", before)
            expect(app).to_have_attribute("data-test-script-state", "notRunning")
            expect(main.locator(".st-key-area_chart")).to_have_count(1)  # redrawn in place: no stale copy left
            expect(page.get_by_role("button", name=re.compile(r"^Run"))).to_have_count(0)
            expect(main.locator('[data-testid="stAlert"]').filter(has_text="error")).to_have_count(0)
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "area_curve.png"), full_page=True)
        finally:
            browser.close()
