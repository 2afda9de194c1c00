"""Real-browser tests: ``saliency dashboard`` in headless Debian Chromium (Playwright, no browser download).

Every wait is one of Playwright's auto-waiting checks (``expect``, ``wait_for_function``) on a fact the page shows,
never a sleep: the script run is over when Streamlit's root element says so (``data-test-script-state`` on
``stApp``, the attribute Streamlit's own browser tests wait on), and a chart is drawn when the pictures plotly shows
are the ones of the figure it holds (it decodes a picture after the run has ended). A wait for a change names the
fact that changes (the link's parameters, a text, a picture compared with the one before), so an earlier rerun
of the same click cannot pass for the last one. See docs/testing.md (browser tests).

Screenshots and timings go to ``test-artifacts/``. Without Chromium the tests skip locally but FAIL when ``CI=true``.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest

try:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout, expect, sync_playwright
except ImportError:  # skipped (failed under CI=true) by _need_browser
    PlaywrightTimeout = expect = sync_playwright = None

pytestmark = pytest.mark.e2e

from tests.dashboard.browser_env import (  # noqa: E402 - shared by the browser tests
    ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, MAIN, ROOT, SIDEBAR, WAIT_MS, need_browser as _need_browser,
    dashboard_server, wait_until_deleted,
)
#: the views' pictures (not the overlay's hover heat map), skipping the hidden copy Streamlit keeps of a chart whose
#: figure changed until the run ends (``data-retained``: a plotly chart's element id hashes its figure)
PICTURES = '[data-testid="stElementContainer"]:not([data-retained="true"]) .js-plotly-plot .imagelayer image'

#: Page-side facts the waits read, installed in every page before the app's scripts (``window.e2e``).
PAGE_FACTS = """
window.e2e = {
  // the script run is over and the page is connected (Streamlit's own attributes on its root element)
  settled() {
    const app = document.querySelector('[data-testid="stApp"]');
    return !!app && app.dataset.testScriptState === 'notRunning' && app.dataset.testConnectionState === 'CONNECTED';
  },
  // every plotly chart shows the pictures of the figure it holds (plotly decodes a picture asynchronously, and
  // Streamlit hands it a new figure through a promise chain: both can finish after the run has ended)
  drawn() {
    return Array.from(document.querySelectorAll('.js-plotly-plot')).every(gd => {
      const want = (gd.data || []).filter(t => t.type === 'image').map(t => t.source);
      const have = Array.from(gd.querySelectorAll('.imagelayer image')).map(i => i.getAttribute('href'));
      return want.length === have.length && want.every((source, k) => source === have[k]);
    });
  },
  // every element's code and picture is loaded: Streamlit draws a grey skeleton of its own height while a
  // component's code is still coming (on a fresh page, up to 2 s after the run ended on a busy machine: the photo
  // and the top-5 beside it then grew and the views moved down 142 px), and an <img> has no height until its file
  loaded() {
    return !document.querySelector('[data-testid="stSkeleton"]')
      && Array.from(document.querySelectorAll('img')).every(i => i.complete);
  },
  ready() { return this.settled() && this.drawn() && this.loaded(); },
  pictures() { return Array.from(document.querySelectorAll('%s')).map(i => i.getAttribute('href')); },
  main() { return (document.querySelector('%s') || document.body).innerText; },
};
""" % (PICTURES, MAIN)


#: What the running server was given (its temporary folder), for tests that look at the server's side.
SERVER: dict[str, Path] = {}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``saliency dashboard --port P`` on loopback; stopped (SIGTERM, then SIGKILL) afterwards; its log must hold no
    traceback."""
    _need_browser()
    server_tmp = tmp_path_factory.mktemp("server-tmp")  # the server's temporary folder: uploads land here
    SERVER["tmp"] = server_tmp
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TMPDIR": str(server_tmp)}
    env.pop("DISPLAY", None)
    with dashboard_server(tmp_path_factory.mktemp("server") / "server.log", env) as url:
        yield url


@contextlib.contextmanager
def _browser(tmp_path: Path):
    """Headless Debian Chromium, closed afterwards (``HOME`` in a temporary folder: it writes caches there); every
    auto-waiting check and action waits up to ``WAIT_MS``."""
    _need_browser()
    expect.set_options(timeout=WAIT_MS)
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"),
                                    args=CHROMIUM_ARGS, env={**os.environ, "HOME": str(home)})
        try:
            yield browser
        finally:
            browser.close()


def _page(browser, width: int, height: int):
    """A page in a browser context of its own (a visitor of its own), with ``window.e2e`` installed."""
    context = browser.new_context(viewport={"width": width, "height": height})
    context.set_default_timeout(WAIT_MS)
    context.add_init_script(PAGE_FACTS)
    return context.new_page()


def _ready(page, condition: str = "true", arg=None, what: str = "the page to settle") -> None:
    """Until the script run is over, every chart is drawn, and the JS ``condition`` (on ``arg``) holds. A change is
    waited for by its own fact in ``condition``: right after a click the page is still settled, on the old run."""
    try:
        page.wait_for_function(f"(arg) => window.e2e && e2e.ready() && ({condition})", arg=arg, polling=100,
                               timeout=WAIT_MS)
    except PlaywrightTimeout:
        raise AssertionError(f"timed out after {WAIT_MS // 1000} s waiting for {what}") from None


def _pick(page, selectbox: str, option: str) -> None:
    """Choose ``option`` in the sidebar selectbox whose label holds ``selectbox`` (typed, then the option clicked)."""
    box = page.locator(SIDEBAR).locator('[data-testid="stSelectbox"]').filter(has_text=selectbox).first
    box.locator("input").click()
    page.keyboard.type(option)
    page.get_by_role("option", name=option, exact=True).click()


def _expected_top1(path: Path) -> str:
    from saliency_core.classifiers import load_classifier
    from saliency_core.explanation import predict
    from saliency_core.images.loading import load_image

    return predict(load_image(path), load_classifier(), k=1)[0].name


def test_dashboard_in_a_real_browser(server, tmp_path):
    """Two visitors at once: one uploads a photo, the other picks another sample photo. Each page shows its own
    photo's views, curves and scores with the core's top-1 label, names only its own photo, shows no error or other
    message box, and the pages make no off-host request."""
    from PIL import Image
    from skimage import data

    photo = tmp_path / "my_cat.jpg"
    Image.fromarray(data.chelsea()).save(photo, quality=92)
    coffee = tmp_path / "coffee.png"
    Image.fromarray(data.coffee()).save(coffee)
    expected_cat, expected_coffee = _expected_top1(photo), _expected_top1(coffee)
    ARTIFACTS.mkdir(exist_ok=True)
    off_host: list[str] = []
    timings: dict[str, float] = {}
    with _browser(tmp_path) as browser:
        one, two = _page(browser, 1400, 2600), _page(browser, 1400, 2600)
        for page in (one, two):
            page.on("request", lambda r: off_host.append(r.url) if not r.url.startswith(
                (server, "data:", "blob:", "about:")) else None)
            page.goto(server)
        for page in (one, two):  # the first sample photo is explained before anything is chosen: let it finish,
            expect(page.locator(MAIN)).to_contain_text("Explain an image")  # so that the upload is timed alone
            _ready(page, "e2e.main().includes('worst completeness')", what="the first photo's curves")

        # session one uploads a photo; session two, at the same time, picks another sample photo
        first = one.evaluate("e2e.pictures()")
        one.locator(SIDEBAR).get_by_text("Upload", exact=True).click()
        upload = one.locator('input[type="file"]').first
        t0 = time.monotonic()
        upload.set_input_files(str(photo))
        two.locator(SIDEBAR).locator('[data-testid="stSelectbox"]').first.click()
        two.get_by_role("option", name="coffee: a cup of coffee").click()

        expect(one.locator(MAIN)).to_contain_text("my_cat.jpg")
        one.wait_for_function("(before) => { const now = e2e.pictures(); return now.length === 4 && "
                              "now.every((p, k) => p && p !== before[k]); }", arg=first, polling=100)
        timings["upload_to_views_s"] = round(time.monotonic() - t0, 2)  # all four pictures are the new photo's
        _ready(one, what="the uploaded photo's run to end")
        timings["upload_to_curves_s"] = round(time.monotonic() - t0, 2)
        expect(two.locator(MAIN)).to_contain_text("coffee.png")
        _ready(two, what="the coffee photo's run to end")
        one.screenshot(path=str(ARTIFACTS / "dashboard_e2e_upload.png"), full_page=True)
        two.screenshot(path=str(ARTIFACTS / "dashboard_e2e_second_session.png"), full_page=True)

        text_one, text_two = one.inner_text(MAIN), two.inner_text(MAIN)
        assert "The classifier says" in text_one
        assert expected_cat in text_one, (expected_cat, text_one[:1500])
        assert expected_coffee in text_two, (expected_coffee, text_two[:1500])
        assert "my_cat.jpg" not in two.inner_text("body") and "coffee.png" not in one.inner_text("body")
        for page, text in ((one, text_one), (two, text_two)):  # the run that ended is the new photo's, in full
            for part in ("Masked in (kept)", "Masked out (removed)", "Infilled", "Per-label insertion curves",
                         "worst completeness", "worst soundness"):
                assert part in text, (part, text[:1500])
            assert page.locator(PICTURES).count() == 4
            assert page.locator('[data-testid="stException"]').count() == 0 and "Traceback" not in text
            alerts = page.locator('[data-testid="stAlert"]').all_inner_texts()
            assert not alerts, alerts  # no error (or any other message) box on a normal run
            assert page.locator(".js-plotly-plot .scatterlayer .trace").count() >= 1  # the curves are drawn
        assert one.locator(".js-plotly-plot .legend").count() >= 1
    (ARTIFACTS / "dashboard_e2e_timings.json").write_text(json.dumps(timings, indent=2) + "\n")
    print(f"\nbrowser timings: {timings}")
    assert not off_host, f"the page made off-host requests: {sorted(set(off_host))[:5]}"


def test_phone_and_view_changes_in_a_real_browser(server, tmp_path):
    """At 390 x 844 (a phone) the Explain page has no horizontal scroll, and the four views are drawn."""
    with _browser(tmp_path) as browser:
        phone = _page(browser, 390, 844)
        phone.goto(server)
        expect(phone.locator(MAIN)).to_contain_text("Masked in (kept)")
        _ready(phone)
        expect(phone.locator(PICTURES)).to_have_count(4)
        widths = phone.evaluate("""() => [document.documentElement.scrollWidth,
            (document.querySelector('[data-testid="stMain"]') || document.body).scrollWidth]""")
        assert max(widths) <= 390, f"horizontal overflow on a phone: {widths}"


def _view_column(page, title: str):
    """The column holding the view titled ``title``: its title, its picture and its predictions."""
    return page.locator(MAIN).locator('[data-testid="stColumn"]').filter(
        has=page.get_by_text(title, exact=True)).filter(has=page.locator(".js-plotly-plot"))


def test_links_slow_methods_and_view_changes_in_a_real_browser(server, tmp_path):
    """A link with a method and labels opens with them; a change of the infilled view's infiller redraws the
    infilled view and its predictions at once (no Run) and leaves the mask's views alone; a per-label method shows
    the label picked in "Show the mask of"; a slow method waits for Run with its estimate."""
    with _browser(tmp_path) as browser:
        page = _page(browser, 1440, 1400)
        main, sidebar = page.locator(MAIN), page.locator(SIDEBAR)
        page.goto(f"{server}/?image=coffee&method=gradient-x-input&labels=top1")
        expect(main).to_contain_text("coffee.png")  # the photo the link names
        _ready(page, "e2e.main().includes('Masked in (kept)')", what="the link's views")
        expect(sidebar).to_contain_text("InputXGradient")  # the method's summary: the link's method is chosen
        expect(page).to_have_url(re.compile(r"method=gradient-x-input"))
        # the view's infiller: the infilled view and its predictions change, and no Run is asked for
        infilled = _view_column(page, "Infilled").locator("ol").first
        before, before_text = page.evaluate("e2e.pictures()"), infilled.inner_text()
        _pick(page, "Infiller of the infilled view", "gray")
        expect(page).to_have_url(re.compile(r"view_infiller=gray"))  # the run with gray has started
        _ready(page, "e2e.pictures()[3] !== arg", arg=before[3], what="the infilled view to change with its infiller")
        after = page.evaluate("e2e.pictures()")
        assert after[:3] == before[:3], "the infiller of the infilled view must leave the mask's views alone"
        assert infilled.inner_text() != before_text, "the infilled view's predictions must change with the infiller"
        assert "press Run" not in page.inner_text(MAIN)
        # labels: a per-label method's "Show the mask of" draws another label's mask
        page.goto(f"{server}/?image=coffee&method=gradient-x-input&labels=top3")
        expect(main).to_contain_text("Show the mask of")
        _ready(page)
        overlay = page.evaluate("e2e.pictures()[0]")
        page.locator('[data-testid="stSelectbox"]').filter(has_text="Show the mask of").locator("input").click()
        page.keyboard.press("ArrowDown")
        page.keyboard.press("Enter")
        _ready(page, "e2e.pictures()[0] !== arg", arg=overlay, what="another label's mask to be drawn")
        # a slow method waits for Run and says about how long it takes
        _pick(page, "Method", "fido (per-image optimisation)")
        expect(main).to_contain_text("press Run")
        expect(main).to_contain_text(" on this machine")
        expect(page.get_by_role("button", name=re.compile(r"^Run fido"))).to_be_visible()


def test_conditional_masker_toggles_in_a_real_browser(server, tmp_path):
    """The shipped conditional masker: moving the TV slider and choosing another upsampling factor redraw the
    overlay with no Run button, and "Pin as A" keeps the earlier setting on screen."""
    with _browser(tmp_path) as browser:
        page = _page(browser, 1440, 1400)
        main = page.locator(MAIN)
        page.goto(f"{server}/?image=chelsea&method=conditional-masker&labels=top1")
        expect(main).to_contain_text("Masked in (kept)")
        _ready(page)
        expect(page.locator(PICTURES)).to_have_count(4)
        overlay = page.evaluate("e2e.pictures()[0]")
        slider = page.locator(SIDEBAR).locator('[data-testid="stSlider"]').filter(has_text="TV weight") \
            .get_by_role("slider")
        slider.focus()
        for _ in range(3):  # 0.001 -> 0.002 -> 0.005 -> 0.01: up to three reruns, the link says which is the last
            page.keyboard.press("ArrowRight")
        _ready(page, "location.search.includes('tv_weight=0.01') && e2e.pictures()[0] !== arg", arg=overlay,
               what="the overlay to change with the TV weight")
        overlay = page.evaluate("e2e.pictures()[0]")
        page.get_by_role("button", name="Pin as A").click()
        expect(main).to_contain_text("B (now)")
        expect(page.get_by_role("button", name="Unpin A")).to_be_visible()
        _ready(page)
        expect(page.locator(PICTURES)).to_have_count(8)  # A's four views, then B's
        before = page.evaluate("e2e.pictures()")
        _pick(page, "upsampling factor s", "8")
        expect(main).to_contain_text("upsample 8")  # B's setting, said above B's views
        _ready(page, "e2e.pictures()[4] !== arg", arg=before[4], what="B's overlay to change with the upsampling")
        after = page.evaluate("e2e.pictures()")
        assert after[0] == before[0] == overlay, "A keeps the pinned overlay"
        assert after[4] != before[4], "B's overlay changes with the upsampling factor"
        assert "press Run" not in page.inner_text(MAIN)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "conditional_ab.png"), full_page=True)


def _upload_in(page, path: Path) -> None:
    page.locator(SIDEBAR).get_by_text("Upload", exact=True).click()
    page.locator('input[type="file"]').first.set_input_files(str(path))


def test_a_file_name_does_not_leak_across_sessions_in_a_real_browser(server, tmp_path):
    """One visitor uploads alice_private_scan.png; another, in a separate browser context, uploads the same bytes
    as bob.png: the second page shows bob.png only (results are shared by content, names are not)."""
    from PIL import Image
    from skimage import data

    alice, bob = tmp_path / "alice_private_scan.png", tmp_path / "bob.png"
    Image.fromarray(data.astronaut()[::2, ::2]).save(alice)
    bob.write_bytes(alice.read_bytes())
    with _browser(tmp_path) as browser:
        pages = []
        for photo in (alice, bob):  # each visitor in a browser context of its own
            page = _page(browser, 1400, 2000)
            page.goto(server)
            expect(page.locator(MAIN)).to_contain_text("Masked in (kept)")
            _ready(page)  # the first sample photo's run is over: the upload is the next run
            _upload_in(page, photo)
            expect(page.locator(MAIN)).to_contain_text(photo.name)
            _ready(page, what=f"the run of {photo.name} to end")
            expect(page.locator(MAIN)).to_contain_text("Masked in (kept)")
            pages.append(page)
        assert "alice" not in pages[1].inner_text("body")  # the whole page, once its run has ended


def test_an_uploaded_checkpoint_goes_when_its_session_ends(server, tmp_path):
    """A checkpoint uploaded in a browser session is deleted from the server within about half a minute of the
    browser closing (it stayed until another visitor loaded a page, ten minutes and more)."""
    shipped = ROOT / "checkpoints" / "fix_lite0.safetensors"
    uploads = lambda: sorted(SERVER["tmp"].glob("saliency-dashboard-uploads-*/session-*/*/my_masker.safetensors"))  # noqa: E731
    with _browser(tmp_path) as browser:
        page = _page(browser, 1400, 2000)
        page.goto(f"{server}/?method=masker")
        main = page.locator(MAIN)
        expect(main).to_contain_text("Masked in (kept)")  # the shipped masker's views
        _ready(page)
        _pick(page, "Masker checkpoint", "upload a checkpoint...")
        expect(main).to_contain_text("Choose a masker checkpoint")  # no views until the upload
        _ready(page)
        expect(page.locator(PICTURES)).to_have_count(0)
        copy = tmp_path / "my_masker.safetensors"
        copy.write_bytes(shipped.read_bytes())
        page.locator('[data-testid="stFileUploader"]').filter(has_text="Checkpoint").locator(
            'input[type="file"]').set_input_files(str(copy))
        _ready(page, "e2e.pictures().length === 4", what="the uploaded masker's views")
        expect(main).not_to_contain_text("Choose a masker checkpoint")
        kept = uploads()
        assert len(kept) == 1, "the upload is kept while its session lives"
        session_folder = kept[0].parents[1]  # .../session-<id>/<content hash>/my_masker.safetensors
        page.context.close()
    # the server's side, with no browser left to wait on: the reaper looks every 5 s and waits 20 s for a reconnect;
    # one blocking wait (inotify) for the session's folder to be deleted, bounded at 90 s
    assert wait_until_deleted(session_folder, timeout_s=90), "the uploaded checkpoint's session folder outlived it"
    assert not uploads(), "the uploaded checkpoint outlived its session"


VIEW_TITLES = ("Mask overlay", "Masked in (kept)", "Masked out (removed)", "Infilled")


def test_each_view_keeps_its_title_picture_and_predictions_on_a_phone(server, tmp_path):
    """At 390 px (a phone stacks Streamlit's columns) each view's title is followed by its own picture, a picture as
    wide as the phone allows, and its predictions, before the next view's title. Screenshots at 390 and 1440 px."""
    ARTIFACTS.mkdir(exist_ok=True)
    with _browser(tmp_path) as browser:
        for width in (390, 1440):
            page = _page(browser, width, 900)
            page.goto(server)
            expect(page.locator(MAIN)).to_contain_text("Masked in (kept)")
            _ready(page)  # measured once the run is over: nothing moves any more
            boxes = []
            for title in VIEW_TITLES:  # the column holding the title holds its picture and its predictions
                column = _view_column(page, title)
                expect(column).to_have_count(1)
                heading = column.get_by_text(title, exact=True)
                picture = column.locator(".js-plotly-plot")
                predictions = column.locator("ol").first  # "1. label 37%" ...
                for part in (heading, picture, predictions):
                    expect(part).to_be_visible()
                expect(picture.locator(".imagelayer image")).to_have_count(1)
                boxes.append([part.bounding_box() for part in (heading, picture, predictions)])
            if width == 390:
                for (head, pic, preds), following in zip(boxes, [*boxes[1:], None]):
                    assert head["y"] < pic["y"] < preds["y"], (head, pic, preds)  # title, picture, predictions
                    assert pic["width"] > 300, pic  # not an 80-px thumbnail
                    if following is not None:
                        assert preds["y"] < following[0]["y"], "a view's predictions come before the next title"
            else:  # side by side on a wide screen
                assert len({round(b[0]["y"]) for b in boxes}) == 1, boxes
            page.set_viewport_size({"width": width, "height": 3600 if width == 390 else 2000})  # the page scrolls
            page.screenshot(path=str(ARTIFACTS / f"views_{width}px.png"), full_page=True)  # inside, not the window
            page.context.close()
