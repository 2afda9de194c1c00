"""The dashboard's speed as a user sees it, in a real browser (headless Debian Chromium through Playwright).

1. Upload -> the masker's four views drawn: a photo is uploaded on the Explain page (shipped FIX masker,
   curves still coming) and the clock stops when the linked views figure shows its four pictures. Three
   different photos (nothing cached), median.
2. Toggle -> the four views redrawn: the infilled view's infiller is switched between blur and gray ten
   times; the clock stops when the page shows the infilled view's new predictions and the figure's pictures
   have changed. Median of 10.
3. Conditional masker toggle -> the four views redrawn: on the shipped conditional masker, the TV weight
   slider is moved one notch up (five times) and the upsampling factor set to 2, 4, 8, 1, 2 (five times), each
   a setting not seen before (nothing cached: the mask is computed anew, no Run), each from an idle page (the
   last run and its curves finished); the clock stops when the figure's pictures have changed, and again when
   the predictions under them are redrawn too, and again when the whole page has settled (no script run, nothing
   stale: the curves are drawn). Median of 10. Then the same with the top-5 labels on another photo (six
   toggles), and twice back to a TV weight seen before (the curves come from the cache). While each toggle
   runs, the page is sampled every 50 ms: how far the views moved (the overlay's figure, found by its key), how far
   the section under them moved (the curves' heading), and how far the curves chart moved under its heading.
Each upload starts from an idle page (the last photo's curves finished). The load average is printed before
and after.

Streamlit 1.67 gives a plotly chart a new element id whenever its figure changes (the id hashes the figure), and
keeps the old chart on the page, hidden (``data-retained``, ``display: none``), until the run ends. A hidden copy's
box is at y = 0, so "the first ``.js-plotly-plot`` on the page" is no way to find the views: every selector here
skips retained copies, and the views are found by their key (``st-key-explain_views_overlay``).

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_dashboard_browser.py   # starts its own server
    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_dashboard_browser.py --conditional-only --toggles 6 --top5-toggles 4
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
#: an element on the page, not a hidden copy Streamlit keeps of a chart the run replaced (see the module's docstring)
SHOWN = '[data-testid="stElementContainer"]:not([data-retained="true"])'
#: the overlay view's figure (its chart's key is the views block's key and the view's name)
OVERLAY = '[data-testid="stMain"] .st-key-explain_views_overlay:not([data-retained="true"]) .js-plotly-plot'
#: a fingerprint of each picture in the plotly figures (length and tail of its data URL: cheap to poll, unlike the URL)
IMAGES_JS = ("() => Array.from(document.querySelectorAll('%s .js-plotly-plot image')).map(i => i.getAttribute('href'))"
             ".map(h => h ? h.length + ':' + h.slice(-48) : '')" % SHOWN)


# whether anything above the curves (the views, their predictions, the timings) is still the last run's (the views are
# one plotly figure per view, each in its own column with its predictions)
VIEWS_STALE_JS = """() => {
  const all = Array.from(document.querySelectorAll('[data-testid="stMain"] [data-testid="stElementContainer"]'));
  const head = all.find(e => (e.innerText || '').trim().startsWith('Per-label insertion curves'));
  if (!head) return true;
  // the views' plotly charts keep data-stale until the script run ends even with their new pictures drawn, and
  // the status line's empty slot too: the text around them (titles, predictions, captions) is what is checked; a
  // view's predictions read "1. …" while they are computed
  if (all.some(e => /^1\. …$/m.test(e.innerText || '') && (e.compareDocumentPosition(head) & Node.DOCUMENT_POSITION_FOLLOWING)))
    return true;
  return all.some(e => e.getAttribute('data-stale') === 'true' && !e.querySelector('.stPlotlyChart, [data-testid="stEmpty"]')
                       && (e.compareDocumentPosition(head) & Node.DOCUMENT_POSITION_FOLLOWING));
}"""
#: the drawn insertion curves (their SVG paths): they change when a new mask's curves are on the page
CURVES_JS = """() => Array.from(document.querySelectorAll('%s .js-plotly-plot .scatterlayer path.js-line'))
  .map(p => p.getAttribute('d')).join('|')""" % SHOWN
#: everything a toggle's clock looks at, in one round trip (polling costs the 2-core machine little)
STATE_JS = """() => ({images: (%s)(), viewsStale: (%s)(), pageStale: (%s)(), busyLines: (%s)(), curves: (%s)(),
  y: (p => p ? p.getBoundingClientRect().y : null)(document.querySelector('%s')),
  below: (h => h ? h.getBoundingClientRect().y : null)(Array.from(document.querySelectorAll('[data-testid="stMain"] h3'))
    .find(h => h.innerText.startsWith('Per-label insertion curves'))),
  curvesChart: (c => c ? c.getBoundingClientRect().y : null)(
    document.querySelector('[data-testid="stMain"] .st-key-curves_chart:not([data-retained="true"]) .js-plotly-plot')),
  hiddenFirst: (p => !!p && !!p.closest('[data-retained="true"]'))(
    document.querySelector('[data-testid="stMain"] .js-plotly-plot'))})""" % ("%s", "%s", "%s", "%s", "%s", OVERLAY)


def state(page) -> dict:
    return page.evaluate(STATE_JS % (IMAGES_JS, VIEWS_STALE_JS, PAGE_STALE_JS, BUSY_LINES_JS, CURVES_JS))


#: anything in the main area still the last run's (the page settled: views, predictions and curves redrawn)
PAGE_STALE_JS = """() => document.querySelectorAll(
  '[data-testid="stMain"] [data-testid="stElementContainer"][data-stale="true"]').length > 0"""


def busy(page) -> bool:
    """Whether a script run is going on: Streamlit's "Running" widget, a stale element, or our status lines."""
    return (page.locator('[data-testid="stStatusWidget"]').filter(has_text="Running").count() > 0
            or page.evaluate(PAGE_STALE_JS) or page.evaluate(BUSY_LINES_JS))


BUSY_LINES_JS = """() => !!document.querySelector('.saliency-status') || Array.from(
  document.querySelectorAll('[data-testid="stMain"] [data-testid="stCaptionContainer"]')).some(
  e => e.innerText.includes('hourglass_top'))"""


def wait_idle(page, timeout: float = 240.0) -> None:
    """Until the page's script run is over (not busy twice, 0.5 s apart): an idle CPU."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if not busy(page):
            time.sleep(0.5)
            if not busy(page):
                return
        time.sleep(0.05)
    raise TimeoutError("the page kept running")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_views(page, before: list | None, timeout: float = 120.0) -> list:
    """The figure's four pictures, once they differ from ``before`` (None: once there are four)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        now = page.evaluate(IMAGES_JS)
        if len(now) >= 4 and all(now[:4]) and (before is None or now[:4] != before[:4]):
            return now
        time.sleep(0.02)
    page.screenshot(path="/tmp/bench_browser_timeout.png")
    raise TimeoutError("the views were not drawn")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--conditional-only", action="store_true",
                        help="only the conditional-masker toggles (no uploads, no infiller toggles)")
    parser.add_argument("--toggles", type=int, default=10, help="conditional toggles with the top-1 curves")
    parser.add_argument("--top5-toggles", type=int, default=6, help="conditional toggles with the top-5 curves")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright
    from PIL import Image
    from skimage import data

    load_before = Path("/proc/loadavg").read_text().strip()
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    server = subprocess.Popen([str(ROOT / ".venv/bin/saliency"), "dashboard", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tmp = Path(tempfile.mkdtemp())
    photos = []
    for i, arr in enumerate((data.chelsea(), data.coffee(), data.astronaut())):
        path = tmp / f"photo{i}.jpg"
        Image.fromarray(arr).resize((451, 300)).save(path, quality=92)
        photos.append(path)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            url = f"http://127.0.0.1:{port}/"
            for _ in range(120):
                try:
                    page.goto(url)
                    break
                except Exception:  # noqa: BLE001 - the server is still starting
                    time.sleep(0.5)
            page.get_by_text("Masked in (kept)").first.wait_for(timeout=240_000)
            page.get_by_text("worst completeness").first.wait_for(timeout=240_000)  # warm: everything loaded once
            uploads, busy_uploads, toggles = [], [], []
            if not args.conditional_only:
                page.locator('[data-testid="stSidebar"]').get_by_text("Upload", exact=True).click()
                upload = page.locator('input[type="file"]').first
                upload.wait_for(state="attached", timeout=60_000)
            for photo in photos if not args.conditional_only else ():
                wait_idle(page)  # from an idle page: the last photo's curves are not still being computed
                before = page.evaluate(IMAGES_JS)
                t0 = time.monotonic()
                upload.set_input_files(str(photo))
                wait_views(page, before)
                uploads.append(time.monotonic() - t0)
                page.get_by_text("worst completeness").first.wait_for(timeout=240_000)
            # the protocol before: the next photo while the last one's curves are computed
            for photo in photos if not args.conditional_only else ():
                page.get_by_text("worst completeness").first.wait_for(timeout=240_000)
                wait_idle(page)
                other = tmp / f"again_{photo.name}"
                Image.open(photo).resize((452, 300)).save(other, quality=92)  # new bytes: nothing cached
                before = page.evaluate(IMAGES_JS)
                upload.set_input_files(str(other))
                wait_views(page, before)  # its views are drawn; its curves are being computed now
                before = page.evaluate(IMAGES_JS)
                third = tmp / f"third_{photo.name}"
                Image.open(photo).resize((453, 300)).save(third, quality=92)
                t0 = time.monotonic()
                upload.set_input_files(str(third))
                wait_views(page, before)
                busy_uploads.append(time.monotonic() - t0)
            wait_idle(page)
            box = page.get_by_label("Selected blur. Infiller of the infilled view").or_(
                page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').filter(
                    has_text="Infiller of the infilled view").locator("input"))
            for i in range(10 if not args.conditional_only else 0):
                before = page.evaluate(IMAGES_JS)
                text = page.inner_text("[data-testid='stMain']")
                box.first.click()
                page.keyboard.type("gray" if i % 2 == 0 else "blur")
                t0 = time.monotonic()
                page.keyboard.press("Enter")
                while time.monotonic() - t0 < 60:  # the infilled view's new predictions are on the page
                    now = page.evaluate(IMAGES_JS)
                    if page.inner_text("[data-testid='stMain']") != text and all(now) and now != before:
                        break
                    time.sleep(0.02)
                toggles.append(time.monotonic() - t0)
            conditional, with_predictions = [], []
            settled: dict[str, list[float]] = {"top1": [], "top5": []}
            back: list[float] = []
            jumps: list[float] = []  # how far the views (the overlay's figure) moved
            below: list[float] = []  # how far the section under the views (the curves' heading) moved
            chart: list[float] = []  # how far the curves chart moved under its heading
            gone: list[int] = []  # polls (every 50 ms) that found no overlay figure on the page
            hidden: list[int] = []  # polls whose first plotly figure was a hidden copy (what the old measure took)
            for labels, photo in (("top1", "chelsea"), ("top5", "coffee")):  # top-5 on another photo: all unseen
                page.goto(f"{url}?image={photo}&method=conditional-masker&labels={labels}")
                page.get_by_text("Masked in (kept)").first.wait_for(timeout=240_000)
                page.get_by_text("worst completeness").first.wait_for(timeout=240_000)
                sidebar = page.locator('[data-testid="stSidebar"]')
                slider = sidebar.locator('[data-testid="stSlider"]').filter(has_text="TV weight").get_by_role("slider")
                upsample = sidebar.locator('[data-testid="stSelectbox"]').filter(has_text="upsampling factor s") \
                    .locator("input")
                for i in range(args.toggles if labels == "top1" else args.top5_toggles):  # a setting not seen before:
                    wait_idle(page)  # TV one notch up, s 2, 4, 8, 1, 2
                    start = state(page)
                    before, y0, curves0 = start["images"], start["y"], start["curves"]
                    below0, chart0 = start["below"], start["curvesChart"] - start["below"]
                    if i % 2 == 0:
                        slider.focus()
                        t0 = time.monotonic()
                        page.keyboard.press("ArrowRight")
                    else:
                        upsample.click()
                        page.keyboard.type(("2", "4", "8", "1", "2")[(i // 2) % 5])
                        t0 = time.monotonic()
                        page.keyboard.press("Enter")
                    moved, moved_below, moved_chart, missing, first_hidden = 0.0, 0.0, 0.0, 0, 0
                    t_views = t_pred = None
                    while time.monotonic() - t0 < 60:  # views, then the whole page (curves too) settled
                        now = state(page)
                        if now["y"] is None:  # the overlay's figure not on the page at all: say so
                            missing += 1
                        else:
                            moved = max(moved, abs(now["y"] - y0))
                        if now["below"] is not None:
                            moved_below = max(moved_below, abs(now["below"] - below0))
                            if now["curvesChart"] is not None:
                                moved_chart = max(moved_chart, abs(now["curvesChart"] - now["below"] - chart0))
                        first_hidden += now["hiddenFirst"]
                        if t_views is None and len(now["images"]) >= 4 and all(now["images"][:4]) and now["images"][:4] != before[:4]:
                            t_views = time.monotonic() - t0
                        if t_views is not None and t_pred is None and not now["viewsStale"]:
                            t_pred = time.monotonic() - t0
                        if t_pred is not None and now["curves"] != curves0 and not (now["pageStale"] or
                                                                                   now["busyLines"]):
                            break
                        time.sleep(0.05)
                    settled[labels].append(time.monotonic() - t0)
                    jumps.append(moved)
                    below.append(moved_below)
                    chart.append(moved_chart)
                    gone.append(missing)
                    hidden.append(first_hidden)
                    if labels == "top1":
                        conditional.append(t_views)
                        with_predictions.append(t_pred if t_pred is not None else float("nan"))
                if labels == "top1":  # TV one notch down (new), then up and down again: both seen, curves cached
                    for key in ("ArrowLeft", "ArrowRight", "ArrowLeft"):
                        wait_idle(page)
                        slider.focus()
                        before = page.evaluate(IMAGES_JS)
                        curves0 = page.evaluate(CURVES_JS)
                        t0 = time.monotonic()
                        page.keyboard.press(key)
                        wait_views(page, before, timeout=30)
                        while (busy(page) or page.evaluate(CURVES_JS) == curves0) and time.monotonic() - t0 < 30:
                            time.sleep(0.02)
                        back.append(time.monotonic() - t0)
                    back = back[1:]  # the first was a new setting
            browser.close()
    finally:
        server.terminate()
        server.wait()
    print("load average before:", load_before)
    print(f"threads: {env['OMP_NUM_THREADS']}, 451 x 300 photos, Explain page, shipped FIX masker")
    print("| what | median | all |")
    print("|---|---|---|")
    if not args.conditional_only:
        print(f"| upload -> four views drawn | {statistics.median(uploads):.2f} s | "
              + ", ".join(f"{t:.2f}" for t in uploads) + " |")
        print(f"| upload while the last photo's curves are computed -> four views drawn | "
              f"{statistics.median(busy_uploads):.2f} s | " + ", ".join(f"{t:.2f}" for t in busy_uploads) + " |")
        print(f"| toggle the view's infiller -> four views redrawn | {statistics.median(toggles):.2f} s | "
              + ", ".join(f"{t:.2f}" for t in toggles) + " |")
    print(f"| conditional masker: TV weight or upsampling -> mask and four views redrawn | "
          f"{statistics.median(conditional):.2f} s | " + ", ".join(f"{t:.2f}" for t in conditional) + " |")
    print(f"| the same, until the views' predictions are redrawn too | "
          f"{statistics.median(with_predictions):.2f} s | " + ", ".join(f"{t:.2f}" for t in with_predictions) + " |")
    for labels, times in settled.items():
        print(f"| the same ({labels}), until the page settled with the curves | {statistics.median(times):.2f} s | "
              + ", ".join(f"{t:.2f}" for t in times) + " |")
    print(f"| TV weight back to a seen setting -> settled (curves cached) | {statistics.median(back):.2f} s | "
          + ", ".join(f"{t:.2f}" for t in back) + " |")
    print(f"| the views figure moved during a toggle (px) | {statistics.median(jumps):.0f} | "
          + ", ".join(f"{t:.0f}" for t in jumps) + " |")
    print(f"| the section under the views (curves' heading) moved during a toggle (px) | {statistics.median(below):.0f} | "
          + ", ".join(f"{t:.0f}" for t in below) + " |")
    print(f"| the curves chart moved under its heading during a toggle (px) | {statistics.median(chart):.0f} | "
          + ", ".join(f"{t:.0f}" for t in chart) + " |")
    print(f"| polls (50 ms) without the overlay figure on the page, per toggle | {statistics.median(gone):.0f} | "
          + ", ".join(str(n) for n in gone) + " |")
    print(f"| polls whose first plotly figure was a hidden retained copy (y = 0), per toggle | "
          f"{statistics.median(hidden):.0f} | " + ", ".join(str(n) for n in hidden) + " |")
    print("load average after:", Path("/proc/loadavg").read_text().strip())


if __name__ == "__main__":
    sys.exit(main())
