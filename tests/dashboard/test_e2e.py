"""Real-browser test: ``saliency dashboard`` in headless Debian Chromium (Playwright, no browser download).

Starts the server on a free loopback port, uploads a photo, waits for the four views and the
per-label curves, checks the predicted label against the core, and, in a second browser session
at the same time, a different sample photo (sessions must not interfere). Screenshots go to
``test-artifacts/``. Without Chromium the test is skipped locally but FAILS when ``CI=true``.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]
WAIT_MS = 240_000  # generous: a cold first render on a busy 2-core machine


def _need_browser():
    """Playwright's sync API and Debian's chromium, or skip (fail under CI=true)."""
    problem = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        problem, sync_playwright = "the playwright package is not installed", None
    if problem is None and not (Path(CHROMIUM).exists() or shutil.which("chromium")):
        problem = "Debian chromium is not installed (apt-get install -y chromium)"
    if problem:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"browser test cannot run in CI: {problem}")
        pytest.skip(problem)
    return sync_playwright


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


#: What the running server was given (its temporary folder), for tests that look at the server's side.
SERVER: dict[str, Path] = {}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``saliency dashboard --port P`` on loopback; stopped (SIGTERM, then SIGKILL) afterwards."""
    _need_browser()
    port = _free_port()
    script = Path(sys.executable).with_name("saliency")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "saliency_core.cli"]
    log_path = tmp_path_factory.mktemp("server") / "server.log"
    server_tmp = tmp_path_factory.mktemp("server-tmp")  # the server's temporary folder: uploads land here
    SERVER["tmp"] = server_tmp
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TMPDIR": str(server_tmp)}
    env.pop("DISPLAY", None)
    with open(log_path, "wb") as log:  # a file, not a pipe: a closed pipe makes streamlit ignore SIGTERM
        proc = subprocess.Popen([*cmd, "dashboard", "--port", str(port), "--host", "127.0.0.1"],
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the dashboard exited with {proc.returncode}: {log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the dashboard did not answer within 120 s: {log_path.read_text()[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    assert "Traceback" not in log_path.read_text(), log_path.read_text()[-3000:]


def _expected_top1(path: Path) -> str:
    from saliency_core.classifiers import load_classifier
    from saliency_core.explanation import predict
    from saliency_core.images.loading import load_image

    return predict(load_image(path), load_classifier(), k=1)[0].name


def _wait_for_results(page, name: str) -> None:
    page.get_by_text(name).first.wait_for(timeout=WAIT_MS)
    page.get_by_text("Masked in (kept)").wait_for(timeout=WAIT_MS)
    page.get_by_text("Infilled", exact=True).wait_for(timeout=WAIT_MS)
    page.get_by_text("Per-label insertion curves").wait_for(timeout=WAIT_MS)
    page.get_by_text("worst completeness").wait_for(timeout=WAIT_MS)
    page.locator(".js-plotly-plot").nth(1).wait_for(state="visible", timeout=WAIT_MS)  # overlay + curves
    page.locator(".js-plotly-plot .scatterlayer .trace").first.wait_for(state="attached", timeout=WAIT_MS)


def test_dashboard_in_a_real_browser(server, tmp_path):
    sync_playwright = _need_browser()
    from PIL import Image
    from skimage import data

    photo = tmp_path / "my_cat.jpg"
    Image.fromarray(data.chelsea()).save(photo, quality=92)
    coffee = tmp_path / "coffee.png"
    Image.fromarray(data.coffee()).save(coffee)
    expected_cat, expected_coffee = _expected_top1(photo), _expected_top1(coffee)
    ARTIFACTS.mkdir(exist_ok=True)

    home = tmp_path / "home"  # chromium writes ~/.cache and ~/.config
    home.mkdir()
    off_host: list[str] = []
    timings: dict[str, float] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"),
                                    args=CHROMIUM_ARGS, env={**os.environ, "HOME": str(home)})
        try:
            one = browser.new_context(viewport={"width": 1400, "height": 2600}).new_page()
            two = browser.new_context(viewport={"width": 1400, "height": 2600}).new_page()
            for page in (one, two):
                page.on("request", lambda r: off_host.append(r.url) if not r.url.startswith(
                    (server, "data:", "blob:", "about:")) else None)
                page.goto(server)
            for page in (one, two):
                page.get_by_text("Explain an image").wait_for(timeout=WAIT_MS)
                # the first sample photo is explained before anything is chosen: wait, so the next
                # steps measure the upload alone
                page.get_by_text("Per-label insertion curves").wait_for(timeout=WAIT_MS)

            # session one uploads a photo; session two, at the same time, picks another sample photo
            sidebar = one.locator('[data-testid="stSidebar"]')
            sidebar.get_by_text("Upload", exact=True).click()
            one.locator('input[type="file"]').first.wait_for(state="attached", timeout=WAIT_MS)
            t0 = time.monotonic()
            one.locator('input[type="file"]').first.set_input_files(str(photo))
            side2 = two.locator('[data-testid="stSidebar"]')
            side2.locator('[data-testid="stSelectbox"]').first.click()
            two.get_by_role("option", name="coffee: a cup of coffee").click()

            one.get_by_text("my_cat.jpg").first.wait_for(timeout=WAIT_MS)
            one.get_by_text("Masked in (kept)").wait_for(timeout=WAIT_MS)
            one.locator('.js-plotly-plot').first.wait_for(state="visible", timeout=WAIT_MS)  # the four views
            timings["upload_to_views_s"] = round(time.monotonic() - t0, 2)
            _wait_for_results(one, "my_cat.jpg")
            timings["upload_to_curves_s"] = round(time.monotonic() - t0, 2)
            _wait_for_results(two, "coffee.png")
            time.sleep(1.0)  # let plotly finish drawing before the screenshots
            one.screenshot(path=str(ARTIFACTS / "dashboard_e2e_upload.png"), full_page=True)
            two.screenshot(path=str(ARTIFACTS / "dashboard_e2e_second_session.png"), full_page=True)

            text_one, text_two = one.inner_text("body"), two.inner_text("body")
            assert "The classifier says" in text_one
            assert expected_cat in text_one, (expected_cat, text_one[:1500])
            assert expected_coffee in text_two, (expected_coffee, text_two[:1500])
            assert "my_cat.jpg" not in text_two and "coffee.png" not in text_one  # sessions do not mix
            for page, text in ((one, text_one), (two, text_two)):
                assert page.locator('[data-testid="stException"]').count() == 0 and "Traceback" not in text
                alerts = page.locator('[data-testid="stAlert"]').all_inner_texts()
                assert not alerts, alerts  # no error (or any other message) box on a normal run
                assert "Masked out (removed)" in text and "worst soundness" in text
            assert one.locator(".js-plotly-plot .legend").count() >= 1
        finally:
            browser.close()
    (ARTIFACTS / "dashboard_e2e_timings.json").write_text(json.dumps(timings, indent=2) + "\n")
    print(f"\nbrowser timings: {timings}")
    assert not off_host, f"the page made off-host requests: {sorted(set(off_host))[:5]}"


@contextlib.contextmanager
def _browser(tmp_path: Path):
    """Headless Debian Chromium, closed afterwards (``HOME`` in a temporary folder: it writes caches there)."""
    sync_playwright = _need_browser()
    home = tmp_path / "home"
    home.mkdir()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"),
                                    args=CHROMIUM_ARGS, env={**os.environ, "HOME": str(home)})
        try:
            yield browser
        finally:
            browser.close()


def test_phone_and_view_changes_in_a_real_browser(server, tmp_path):
    """At 390 x 844 (a phone) the Explain page has no horizontal scroll, and the linked views figure holds the
    four pictures."""
    with _browser(tmp_path) as browser:
        phone = browser.new_context(viewport={"width": 390, "height": 844}).new_page()
        phone.goto(server)
        phone.get_by_text("Masked in (kept)").wait_for(timeout=WAIT_MS)
        phone.locator(".js-plotly-plot").first.wait_for(state="visible", timeout=WAIT_MS)
        widths = phone.evaluate("""() => [document.documentElement.scrollWidth,
            (document.querySelector('[data-testid="stMain"]') || document.body).scrollWidth]""")
        assert max(widths) <= 390, f"horizontal overflow on a phone: {widths}"
        images = phone.evaluate("() => document.querySelectorAll('.js-plotly-plot .layer-above image, "
                                ".js-plotly-plot image').length")
        assert images >= 4, images


IMAGES_JS = "() => Array.from(document.querySelectorAll('.js-plotly-plot image')).map(i => i.getAttribute('href'))"


def test_links_slow_methods_and_view_changes_in_a_real_browser(server, tmp_path):
    """A link with a method and labels opens with them; a change of the infilled view's infiller redraws the views
    at once (no Run); a per-label method shows the label picked in "Show the mask of"; a slow method waits for Run
    with its estimate."""
    with _browser(tmp_path) as browser:
        page = browser.new_context(viewport={"width": 1440, "height": 1400}).new_page()
        page.goto(f"{server}/?image=coffee&method=gradient-x-input&labels=top1")
        page.get_by_text("Masked in (kept)").wait_for(timeout=WAIT_MS)
        sidebar = page.locator('[data-testid="stSidebar"]')
        page.get_by_text("coffee.png").first.wait_for(timeout=WAIT_MS)  # the photo the link names
        assert "InputXGradient" in sidebar.inner_text()  # the method's summary: the link's method is chosen
        assert "method=gradient-x-input" in page.url
        # the view's infiller: the views change, and no Run is asked for
        _wait_idle(page)  # the views' predictions come after the pictures: the text compared is the final one
        before = page.inner_text("[data-testid='stMain']")
        sidebar.locator('[data-testid="stSelectbox"]').filter(has_text="Infiller of the infilled view") \
            .locator("input").click()
        page.keyboard.type("gray")
        page.keyboard.press("Enter")
        text = _wait_text_change(page, before)
        assert text != before, "the views' predictions must change with the infiller"
        assert "press Run" not in text
        # labels: a per-label method's "Show the mask of" draws another label's mask; the colour map redraws it
        page.goto(f"{server}/?image=coffee&method=gradient-x-input&labels=top3")
        page.get_by_text("Show the mask of").wait_for(timeout=WAIT_MS)
        page.locator(".js-plotly-plot image").first.wait_for(state="attached", timeout=WAIT_MS)
        _wait_idle(page)
        overlay = page.evaluate(IMAGES_JS)[0]
        page.locator('[data-testid="stSelectbox"]').filter(has_text="Show the mask of").locator("input").click()
        page.keyboard.press("ArrowDown")
        page.keyboard.press("Enter")
        deadline = time.monotonic() + 60
        while page.evaluate(IMAGES_JS)[:1] == [overlay] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert page.evaluate(IMAGES_JS)[0] != overlay, "another label's mask must be drawn"
        # a slow method waits for Run and says about how long it takes
        sidebar.locator('[data-testid="stSelectbox"]').filter(has_text="Method").first.locator("input").click()
        page.keyboard.type("fido")
        page.get_by_role("option", name="fido (per-image optimisation)", exact=True).click()
        page.get_by_text("press Run").wait_for(timeout=WAIT_MS)
        assert " on this machine" in page.inner_text("[data-testid='stMain']")


def _wait_idle(page, timeout: float = 60.0) -> None:
    """Until the script run is over (no "Running" status twice, 0.5 s apart) and no element is stale: a key press
    can start several reruns in a row, and a picture read mid-way is an intermediate one."""
    running = page.locator('[data-testid="stStatusWidget"]').filter(has_text="Running")
    stale = "() => document.querySelectorAll('[data-stale=\"true\"]').length"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if running.count() == 0 and page.evaluate(stale) == 0:
            time.sleep(0.5)
            if running.count() == 0 and page.evaluate(stale) == 0:
                return
        time.sleep(0.05)
    raise AssertionError("the page kept running")


def _wait_text_change(page, before: str, timeout: float = 60.0) -> str:
    """The main area's text once the page has settled with a text other than ``before`` (the "Running" line that
    comes first is a change too, and the views' text after it can still be the old one for a moment)."""
    deadline = time.monotonic() + timeout
    text = before
    while time.monotonic() < deadline:
        if page.inner_text("[data-testid='stMain']") != before:
            _wait_idle(page)
            text = page.inner_text("[data-testid='stMain']")
            if text != before:
                return text
        time.sleep(0.1)
    return text


def _wait_overlay_change(page, before: str, what: str) -> str:
    """The overlay once it differs from ``before`` and the page has settled (the last rerun's picture)."""
    deadline = time.monotonic() + 60
    while page.evaluate(IMAGES_JS)[:1] == [before] and time.monotonic() < deadline:
        time.sleep(0.05)
    _wait_idle(page)
    after = page.evaluate(IMAGES_JS)[0]
    assert after != before, f"the overlay must change with {what}"
    return after


def test_conditional_masker_toggles_in_a_real_browser(server, tmp_path):
    """The shipped conditional masker: moving the TV slider and choosing another upsampling factor redraw the
    overlay with no Run button, and "Pin as A" keeps the earlier setting on screen."""
    with _browser(tmp_path) as browser:
        page = browser.new_context(viewport={"width": 1440, "height": 1400}).new_page()
        page.goto(f"{server}/?image=chelsea&method=conditional-masker&labels=top1")
        page.get_by_text("Masked in (kept)").wait_for(timeout=WAIT_MS)
        page.locator(".js-plotly-plot image").first.wait_for(state="attached", timeout=WAIT_MS)
        sidebar = page.locator('[data-testid="stSidebar"]')
        overlay = page.evaluate(IMAGES_JS)[0]
        slider = sidebar.locator('[data-testid="stSlider"]').filter(has_text="TV weight").get_by_role("slider")
        slider.focus()
        for _ in range(3):  # 0.001 -> 0.002 -> 0.005 -> 0.01
            page.keyboard.press("ArrowRight")
        overlay = _wait_overlay_change(page, overlay, "the TV weight")
        page.get_by_role("button", name="Pin as A").click()
        page.get_by_text("B (now)").wait_for(timeout=WAIT_MS)
        page.get_by_role("button", name="Unpin A").wait_for(timeout=WAIT_MS)
        deadline = time.monotonic() + 60
        while len(page.evaluate(IMAGES_JS)) < 8 and time.monotonic() < deadline:  # A's four views and B's
            time.sleep(0.05)
        _wait_idle(page)
        before = page.evaluate(IMAGES_JS)  # A's figure, then B's (plotly draws the hover heat map as one more)
        half = len(before) // 2
        sidebar.locator('[data-testid="stSelectbox"]').filter(has_text="upsampling factor s").locator("input").click()
        page.keyboard.type("8")
        page.keyboard.press("Enter")
        page.get_by_text("upsample 8").wait_for(timeout=WAIT_MS)
        deadline = time.monotonic() + 60
        while page.evaluate(IMAGES_JS)[half] == before[half] and time.monotonic() < deadline:
            time.sleep(0.05)
        _wait_idle(page)
        after = page.evaluate(IMAGES_JS)
        assert after[0] == before[0] == overlay, "A keeps the pinned overlay"
        assert after[half] != before[half], "B's overlay changes with the upsampling factor"
        text = page.inner_text("[data-testid='stMain']")
        assert "press Run" not in text
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "conditional_ab.png"), full_page=True)


def _upload_in(page, path: Path) -> None:
    page.locator('[data-testid="stSidebar"]').get_by_text("Upload", exact=True).click()
    page.locator('input[type="file"]').first.set_input_files(str(path))


def test_a_file_name_does_not_leak_across_sessions_in_a_real_browser(server, tmp_path):
    """One visitor uploads alice_private_scan.png; another, in a separate browser context, uploads the same bytes
    as bob.png: the second page shows bob.png only (results are shared by content, names are not)."""
    from playwright.sync_api import expect
    from PIL import Image
    from skimage import data

    alice, bob = tmp_path / "alice_private_scan.png", tmp_path / "bob.png"
    Image.fromarray(data.astronaut()[::2, ::2]).save(alice)
    bob.write_bytes(alice.read_bytes())
    with _browser(tmp_path) as browser:
        pages = []
        for photo in (alice, bob):  # each visitor in a browser context of its own
            page = browser.new_context(viewport={"width": 1400, "height": 2000}).new_page()
            page.goto(server)
            _upload_in(page, photo)
            main = page.locator('[data-testid="stMain"]')
            expect(main).to_contain_text(photo.name, timeout=WAIT_MS)
            expect(main).to_contain_text("Masked in (kept)", timeout=WAIT_MS)
            pages.append(page)
        two = pages[1]
        expect(two.locator("body")).not_to_contain_text("alice")


def test_an_uploaded_checkpoint_goes_when_its_session_ends(server, tmp_path):
    """A checkpoint uploaded in a browser session is deleted from the server within about half a minute of the
    browser closing (it stayed until another visitor loaded a page, ten minutes and more)."""
    from playwright.sync_api import expect

    shipped = ROOT / "checkpoints" / "fix_lite0.safetensors"
    uploads = lambda: sorted(SERVER["tmp"].glob("saliency-dashboard-uploads-*/session-*/*/my_masker.safetensors"))  # noqa: E731
    with _browser(tmp_path) as browser:
        context = browser.new_context(viewport={"width": 1400, "height": 2000})
        page = context.new_page()
        page.goto(f"{server}/?method=masker")
        main = page.locator('[data-testid="stMain"]')
        expect(main).to_contain_text("Masked in (kept)", timeout=WAIT_MS)  # the shipped masker's views
        sidebar = page.locator('[data-testid="stSidebar"]')
        sidebar.locator('[data-testid="stSelectbox"]').filter(has_text="Masker checkpoint").locator("input").click()
        page.get_by_role("option", name="upload a checkpoint...").click()
        expect(main).to_contain_text("Choose a masker checkpoint", timeout=WAIT_MS)  # no views until the upload
        copy = tmp_path / "my_masker.safetensors"
        copy.write_bytes(shipped.read_bytes())
        page.locator('[data-testid="stFileUploader"]').filter(has_text="Checkpoint").locator(
            'input[type="file"]').set_input_files(str(copy))
        expect(main).not_to_contain_text("Choose a masker checkpoint", timeout=WAIT_MS)
        expect(main).to_contain_text("Masked in (kept)", timeout=WAIT_MS)  # the uploaded masker's views
        assert len(uploads()) == 1, "the upload is kept while its session lives"
        context.close()
    deadline = time.monotonic() + 90  # the reaper looks every 5 s and waits 20 s for a reconnect
    while uploads() and time.monotonic() < deadline:
        time.sleep(1)
    assert not uploads(), "the uploaded checkpoint outlived its session"


VIEW_TITLES = ("Mask overlay", "Masked in (kept)", "Masked out (removed)", "Infilled")


def test_each_view_keeps_its_title_picture_and_predictions_on_a_phone(server, tmp_path):
    """At 390 px (a phone stacks Streamlit's columns) each view's title is followed by its own picture, a picture as
    wide as the phone allows, and its predictions, before the next view's title. Screenshots at 390 and 1440 px."""
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(exist_ok=True)
    with _browser(tmp_path) as browser:
        for width in (390, 1440):
            page = browser.new_context(viewport={"width": width, "height": 900}).new_page()
            page.goto(server)
            main = page.locator('[data-testid="stMain"]')
            boxes = []
            for title in VIEW_TITLES:  # the column holding the title holds its picture and its predictions
                column = main.locator('[data-testid="stColumn"]').filter(
                    has=page.get_by_text(title, exact=True)).filter(has=page.locator(".js-plotly-plot"))
                expect(column).to_have_count(1, timeout=WAIT_MS)
                heading = column.get_by_text(title, exact=True)
                picture = column.locator(".js-plotly-plot")
                predictions = column.locator("ol").first  # "1. label 37%" ...
                for part in (heading, picture, predictions):
                    expect(part).to_be_visible(timeout=WAIT_MS)
                expect(picture.locator("image").first).to_be_attached(timeout=WAIT_MS)
                boxes.append([part.bounding_box() for part in (heading, picture, predictions)])
            if width == 390:
                for (head, pic, preds), following in zip(boxes, [*boxes[1:], None]):
                    assert head["y"] < pic["y"] < preds["y"], (head, pic, preds)  # title, picture, predictions
                    assert pic["width"] > 300, pic  # not an 80-px thumbnail
                    if following is not None:
                        assert preds["y"] < following[0]["y"], "a view's predictions come before the next title"
            else:  # side by side on a wide screen
                assert len({round(b[0]["y"]) for b in boxes}) == 1, boxes
            expect(page.locator('[data-testid="stStatusWidget"]').filter(has_text="Running")).to_have_count(
                0, timeout=WAIT_MS)
            page.set_viewport_size({"width": width, "height": 3600 if width == 390 else 2000})  # the page scrolls
            page.screenshot(path=str(ARTIFACTS / f"views_{width}px.png"), full_page=True)  # inside, not the window
            page.context.close()
