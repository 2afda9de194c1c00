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
   the predictions under them are redrawn too. Median of 10.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_dashboard_browser.py   # starts its own server
"""
from __future__ import annotations

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
IMAGES_JS = "() => Array.from(document.querySelectorAll('.js-plotly-plot image')).map(i => i.getAttribute('href'))"


# whether anything between the views figure and the curves (the predictions, the timings) is still the last run's
VIEWS_STALE_JS = """() => {
  let seen = false;
  for (const el of document.querySelectorAll('[data-testid="stMain"] [data-testid="stElementContainer"]')) {
    if (el.querySelectorAll('.js-plotly-plot image').length >= 4) { seen = true; continue; }
    if (!seen) continue;
    if (el.innerText.includes('Per-label insertion curves')) return false;
    if (el.getAttribute('data-stale') === 'true') return true;
  }
  return !seen;
}"""


def wait_idle(page, timeout: float = 240.0) -> None:
    """Until the page's script run is over (no "Running" widget) and a moment has passed: an idle CPU."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if page.locator('[data-testid="stStatusWidget"]').filter(has_text="Running").count() == 0:
            time.sleep(0.5)
            if page.locator('[data-testid="stStatusWidget"]').filter(has_text="Running").count() == 0:
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
        if len(now) >= 4 and (before is None or now[:4] != before[:4]):
            return now
        time.sleep(0.02)
    page.screenshot(path="/tmp/bench_browser_timeout.png")
    raise TimeoutError("the views were not drawn")


def main() -> None:
    from playwright.sync_api import sync_playwright
    from PIL import Image
    from skimage import data

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
            page.locator('[data-testid="stSidebar"]').get_by_text("Upload", exact=True).click()
            upload = page.locator('input[type="file"]').first
            upload.wait_for(state="attached", timeout=60_000)
            uploads = []
            for photo in photos:
                before = page.evaluate(IMAGES_JS)
                t0 = time.monotonic()
                upload.set_input_files(str(photo))
                wait_views(page, before)
                uploads.append(time.monotonic() - t0)
                page.get_by_text("worst completeness").first.wait_for(timeout=240_000)
            toggles = []
            box = page.get_by_label("Selected blur. Infiller of the infilled view").or_(
                page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').filter(
                    has_text="Infiller of the infilled view").locator("input"))
            for i in range(10):
                before = page.evaluate(IMAGES_JS)
                text = page.inner_text("[data-testid='stMain']")
                box.first.click()
                page.keyboard.type("gray" if i % 2 == 0 else "blur")
                t0 = time.monotonic()
                page.keyboard.press("Enter")
                while time.monotonic() - t0 < 60:  # the infilled view's new predictions are on the page
                    if page.inner_text("[data-testid='stMain']") != text and page.evaluate(IMAGES_JS) != before:
                        break
                    time.sleep(0.02)
                toggles.append(time.monotonic() - t0)
            page.goto(f"{url}?image=chelsea&method=conditional-masker&labels=top1")
            page.get_by_text("Masked in (kept)").first.wait_for(timeout=240_000)
            page.get_by_text("worst completeness").first.wait_for(timeout=240_000)
            sidebar = page.locator('[data-testid="stSidebar"]')
            slider = sidebar.locator('[data-testid="stSlider"]').filter(has_text="TV weight").get_by_role("slider")
            upsample = sidebar.locator('[data-testid="stSelectbox"]').filter(has_text="upsampling factor s") \
                .locator("input")
            conditional, with_predictions = [], []
            for i in range(10):  # every toggle a setting not seen before: TV one notch up, s 2, 4, 8, 1, 2
                wait_idle(page)
                before = page.evaluate(IMAGES_JS)
                if i % 2 == 0:
                    slider.focus()
                    t0 = time.monotonic()
                    page.keyboard.press("ArrowRight")
                else:
                    upsample.click()
                    page.keyboard.type(("2", "4", "8", "1", "2")[i // 2])
                    t0 = time.monotonic()
                    page.keyboard.press("Enter")
                wait_views(page, before, timeout=30)
                conditional.append(time.monotonic() - t0)
                while page.evaluate(VIEWS_STALE_JS) and time.monotonic() - t0 < 30:
                    time.sleep(0.01)
                with_predictions.append(time.monotonic() - t0)
            browser.close()
    finally:
        server.terminate()
        server.wait()
    print(f"threads: {env['OMP_NUM_THREADS']}, 451 x 300 photos, Explain page, shipped FIX masker")
    print("| what | median | all |")
    print("|---|---|---|")
    print(f"| upload -> four views drawn | {statistics.median(uploads):.2f} s | "
          + ", ".join(f"{t:.2f}" for t in uploads) + " |")
    print(f"| toggle the view's infiller -> four views redrawn | {statistics.median(toggles):.2f} s | "
          + ", ".join(f"{t:.2f}" for t in toggles) + " |")
    print(f"| conditional masker: TV weight or upsampling -> mask and four views redrawn | "
          f"{statistics.median(conditional):.2f} s | " + ", ".join(f"{t:.2f}" for t in conditional) + " |")
    print(f"| the same, until the views' predictions are redrawn too | "
          f"{statistics.median(with_predictions):.2f} s | " + ", ".join(f"{t:.2f}" for t in with_predictions) + " |")


if __name__ == "__main__":
    sys.exit(main())
