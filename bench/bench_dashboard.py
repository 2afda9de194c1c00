"""Benchmark the dashboard's two latency targets on the CPU, with the models already loaded.

1. Upload to the masker's views: the uploaded bytes are decoded, hashed, classified (top-5),
   explained with the masker (mask, four views, their new top-5) and made ready for the page
   (display copies, the overlay figure), through the same ``dashboard.services`` calls the page
   makes, on a fresh result cache. Target: <= 1 s per image. ``--apptest`` also times the whole
   Streamlit script run after an upload (AppTest, curves left out), i.e. with the page's overhead.
2. Per-label curves of the top-5 labels with 16 steps (one mask per label, so 2 + 5 x 15 = 77
   distinct images, "about 85 forwards"), through ``curve_scores.run_label_scores`` with a progress
   callback, against the same forwards alone (the same images, in the same batches). Target:
   <= 1.2 x.

On a machine shared with other jobs wall-clock times mean little; ``--cpu-time`` runs torch on one
thread and measures the process's CPU time instead (what the work costs on one idle core, an upper
bound of the 2-thread wall time on an idle machine).

Run: ``python bench/bench_dashboard.py [--images 8] [--repeats 5] [--apptest] [--cpu-time]``. Uses the shipped
masker (checkpoints/fix_lite0.safetensors) when it exists, else an untrained masker of the same
architecture (the cost does not depend on the weights).
"""
from __future__ import annotations

import argparse
import io
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

from dashboard import curve_scores, inputs, menus, plots, result_cache, services
from saliency_core.classifiers import load_classifier
from saliency_core.explanation import ExplainConfig
from saliency_core.maskers.checkpoint import save_masker
from saliency_core.maskers.phang import MaskerConfig, PhangMasker
from saliency_core.methods.trained import default_checkpoint
from saliency_core.metrics.insertion import pixel_ranks, step_counts

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "data" / "imagenet-samples"  # ../shared beside the project
CLOCK = time.perf_counter  # or time.process_time with --cpu-time
LIMITS = dict(max_upload_mb=20, max_pixels=40_000_000, max_side=2048)


def upload_images(n: int) -> list[inputs.ImageInput]:
    """Gallery photos as PNG and ImageNet samples as JPEG bytes (what an upload gives)."""
    out = [inputs.gallery_input(name) for name in ("chelsea", "coffee", "astronaut", "rocket")]
    if SAMPLES.is_dir():
        for path in sorted((SAMPLES / "images").glob("*.jpg"))[: max(0, n - len(out))]:
            out.append(inputs.ImageInput.from_bytes(path.read_bytes(), path.name))
    return out[:n]


def _checkpoint(clf, folder: Path) -> tuple[str, str]:
    if default_checkpoint().exists():
        return str(default_checkpoint()), default_checkpoint().name
    torch.manual_seed(0)
    masker = PhangMasker(MaskerConfig(stage_channels=clf.stage_channels)).eval()
    path = save_masker(folder / "untrained.safetensors", masker, clf, {"note": "benchmark only"})
    return str(path), "untrained masker (fix_lite0 not shipped yet)"


def upload_to_views(image: inputs.ImageInput, clf, method, config: ExplainConfig) -> float:
    """Seconds from the uploaded bytes to the views and their new predictions, ready to draw."""
    cache = result_cache.ResultCache()
    t = CLOCK()
    loaded = inputs.load_input(image, **LIMITS)
    expl = services.run_explanation(image, loaded, config, clf, method, cache)  # also gives the top-5
    for view in expl.views.values():
        inputs.display_copy(view, 560)
    plots.views_figure([inputs.display_copy(v, 560) for v in expl.views.values()],
                       expl.masks[0]).to_json()
    return CLOCK() - t


def curve_timings(clf, image: inputs.ImageInput, steps: int, repeats: int) -> dict:
    """label_scores of the top-5 labels (one grad-cam mask each) vs the same forwards alone."""
    loaded = inputs.load_input(image, **LIMITS)
    config = ExplainConfig(method="grad-cam", labels="top5")
    expl = services.run_explanation(image, loaded, config, clf, menus.build_method("grad-cam", {}),
                                    result_cache.ResultCache())
    labels = list(expl.labels)
    request = curve_scores.CurveRequest(steps=steps)  # the labels are the explained top 5
    calls = []

    def progress(fraction: float, message: str, **_) -> None:
        calls.append(fraction)

    def dashboard_call() -> None:
        curve_scores.run_label_scores(expl, labels, request, clf, result_cache.ResultCache(), "bench",
                                      progress=progress)

    # the same distinct images the curves need, built beforehand: only the forwards are timed
    x = expl.working_input
    masks = expl.working_masks
    h, w = x.shape[-2:]
    ranks = pixel_ranks(masks).view(len(labels), h, w)
    counts = step_counts(h * w, steps)
    keeps = [torch.zeros(1, h, w), torch.ones(1, h, w)]
    keeps += [(ranks[k] < counts[j]).float()[None] for k in range(len(labels)) for j in range(1, steps)]
    batch = x * torch.stack(keeps)
    n_images = batch.shape[0]

    @torch.no_grad()
    def forwards_alone() -> None:
        for start in range(0, n_images, 64):
            clf(batch[start:start + 64]).softmax(-1)

    # interleaved, so a change in the machine's load hits both alike
    alone, full = [], []
    forwards_alone(), dashboard_call()  # warm-up
    calls.clear()
    for _ in range(repeats):
        alone.append(_once(forwards_alone))
        full.append(_once(dashboard_call))
    a, f = statistics.median(alone), statistics.median(full)
    return {"labels": len(labels), "steps": steps, "forwards": n_images, "forwards_alone_s": round(a, 3),
            "dashboard_curves_s": round(f, 3), "ratio": round(f / a, 3), "progress_calls_per_run": len(calls) // repeats}


def _once(fn) -> float:
    t = CLOCK()
    fn()
    return CLOCK() - t


def apptest_upload(image: inputs.ImageInput, ckpt: str, repeats: int) -> list[float]:
    """Whole Streamlit script runs after an upload (curves left out), models already loaded."""
    import os

    from streamlit.testing.v1 import AppTest

    app = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
    os.environ["SALIENCY_DASHBOARD_CHECKPOINT_DIRS"] = str(Path(ckpt).parent)
    curve_scores.curves_available = lambda: False  # time the views only
    times = []
    for i in range(repeats + 1):
        at = AppTest.from_file(app, default_timeout=300).run()  # loads the models once (not timed)
        at.sidebar.radio(key="image_source").set_value("Upload").run()
        if Path(ckpt).name != "fix_lite0.safetensors":
            at.sidebar.selectbox(key="checkpoint_masker").set_value(str(Path(ckpt).resolve())).run()
        # a fresh image each time: one changed pixel row gives a new hash (no cached result)
        img = Image.open(io.BytesIO(image.data)).convert("RGB")
        img.putpixel((0, 0), (i, 0, 0))
        buf = io.BytesIO()
        img.save(buf, "PNG")
        at.file_uploader(key="upload").set_value((f"bench{i}.png", buf.getvalue(), "image/png"))
        t = CLOCK()
        at.run()
        if i:
            times.append(CLOCK() - t)
        assert not at.exception and any("Masked in" in m.value for m in at.markdown), [e.message for e in at.exception]
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=8, help="images for the upload-to-views timing")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--apptest", action="store_true", help="also time whole Streamlit runs (AppTest)")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    parser.add_argument("--cpu-time", action="store_true", help="one torch thread, process CPU time as the clock")
    args = parser.parse_args()
    global CLOCK
    if args.cpu_time:
        torch.set_num_threads(1)
        CLOCK = time.process_time

    t = time.perf_counter()
    clf = load_classifier()
    load_s = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp:
        ckpt, ckpt_name = _checkpoint(clf, Path(tmp))
        method = menus.build_method("masker", {"checkpoint": ckpt})
        config = ExplainConfig(method="masker", method_options={"checkpoint": ckpt}, labels="top5")
        images = upload_images(args.images)
        upload_to_views(images[0], clf, method, config)  # warm-up: loads the masker (cached afterwards)
        per_image, ratios = {}, []
        x1 = torch.randn(1, 3, 224, 224)

        @torch.no_grad()
        def forward() -> None:
            clf(x1)

        forward()
        for im in images:  # each upload timed next to a plain 224 px forward, so the load hits both
            views, fwd = [], []
            for _ in range(args.repeats):
                fwd.append(_once(forward))
                views.append(upload_to_views(im, clf, method, config))
            per_image[im.name] = round(statistics.median(views), 3)
            ratios.append(statistics.median(views) / statistics.median(fwd))
        forward_s = statistics.median(_once(forward) for _ in range(max(5, args.repeats)))
        curves = curve_timings(clf, images[0], args.steps, args.repeats)
        result = {
            "torch_threads": torch.get_num_threads(), "clock": "process CPU time" if args.cpu_time else "wall",
            "classifier_load_s": round(load_s, 2),
            "checkpoint": ckpt_name,
            "forward_224_batch1_s": round(forward_s, 4),
            "upload_to_views_s": {"median": round(statistics.median(per_image.values()), 3),
                                  "max": max(per_image.values()), "per_image": per_image, "target": 1.0,
                                  "in_forward_times_median": round(statistics.median(ratios), 1),
                                  "in_forward_times_max": round(max(ratios), 1)},
            "curves": {**curves, "target_ratio": 1.2},
        }
        if args.apptest:
            times = apptest_upload(images[0], ckpt, args.repeats)
            result["apptest_upload_to_views_s"] = {"median": round(statistics.median(times), 3),
                                                   "max": round(max(times), 3)}
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
