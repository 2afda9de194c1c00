"""Benchmark the dashboard's area curve (issue 25): target <= 1.0 s for the 8-point curve on this CPU.

Times what the Explain page does when the area curve is not cached, through the same ``dashboard`` calls, with the
classifier and the masker already loaded and the unmasked image already classified (the page has done both for the
views): the area-aware masker's masks at the 8 areas 5 .. 60 % in ONE batched pass (``services.masks_for`` with
``area.curve_config``), then the 16 kept and removed pictures through the classifier (``area.run_area_curve`` ->
``saliency_core.area_curve``, in chunks of ``area.AREA_CURVE_BATCH_PIXELS``: one picture at a time at 224 x 352).
For comparison, in the same run: one classifier forward of the image, the masker's one-mask pass (what a slider move costs), and a map-only curve (Grad-CAM's map, the top a of it: the forward only).

The masker: ``--checkpoint`` (an area-conditioned ``conditional`` checkpoint), else the shipped
``checkpoints/conditional_lite0`` when it takes an area, else an untrained area-conditioned masker of the shipped
architecture (the cost does not depend on the weights; said in the output).

Run: ``python bench/bench_area_curve.py [--images 8] [--repeats 5] [--threads N] [--checkpoint PATH]``.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from dashboard import area, inputs, menus, result_cache, services
from saliency_core import ExplainConfig, load_classifier, working_input
from saliency_core.maskers.checkpoint import read_metadata, save_masker
from saliency_core.methods.trained import default_checkpoint

from bench_dashboard import LIMITS, upload_images  # the same photos and upload limits as the dashboard bench

METHOD = "conditional-masker"
CLOCK = time.perf_counter  # time.process_time with --cpu-time


def _takes_area(path: Path) -> bool:
    try:
        return float(read_metadata(path)["masker_config"].get("target_area_high", 0)) > 0
    except Exception:  # noqa: BLE001 - unreadable or another kind: not an area masker
        return False


def _checkpoint(arg: str | None, clf, folder: Path) -> tuple[Path, str]:
    """The area-conditioned checkpoint to time, and what it is."""
    if arg:
        return Path(arg), Path(arg).name
    shipped = default_checkpoint("conditional")
    if shipped.exists() and _takes_area(shipped):
        return shipped, shipped.name
    from saliency_core.maskers.conditional import ConditionalMasker, ConditionalMaskerConfig

    config = dict(read_metadata(shipped)["masker_config"]) if shipped.exists() else {}
    config.update(stage_channels=clf.stage_channels, target_area_low=0.05, target_area_high=0.6, default_area=0.2)
    torch.manual_seed(0)
    masker = ConditionalMasker(ConditionalMaskerConfig.from_dict(config)).eval()
    path = save_masker(folder / "area_untrained.safetensors", masker, clf, {}, kind="conditional")
    return path, "untrained, area-conditioned, shipped architecture"


def _median(values: list[float]) -> float:
    return statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--checkpoint", default=None, help="an area-conditioned conditional checkpoint")
    parser.add_argument("--cpu-time", action="store_true",
                        help="one torch thread and the process's CPU time: what the work costs on one idle core, "
                             "whatever else the machine runs")
    args = parser.parse_args()
    global CLOCK
    if args.cpu_time:
        CLOCK = time.process_time
        args.threads = 1
    if args.threads:
        torch.set_num_threads(args.threads)
    clf = load_classifier()
    catalog = menus.method_catalog()
    folder = Path(tempfile.mkdtemp(prefix="bench-area-"))
    ckpt, what = _checkpoint(args.checkpoint, clf, folder)
    print(f"masker: {what}; torch threads {torch.get_num_threads()}; {args.images} images x {args.repeats} repeats; "
          f"{'process CPU time' if args.cpu_time else 'wall clock'}")
    rows = {"forward (1 image)": [], "one mask (a slider move)": [], "masks at 8 areas (one pass)": [],
            "16 kept/removed images (the forward)": [], "area curve, area masker": [],
            "area curve, Grad-CAM map": []}
    for image in upload_images(args.images):
        loaded = inputs.load_input(image, **LIMITS)
        base = ExplainConfig(method=METHOD, method_options={"checkpoint": str(ckpt), "area": 0.2}, labels="top1")
        x = working_input(loaded, clf)
        for _ in range(args.repeats):
            cache = result_cache.ResultCache()
            method = menus.build_method(METHOD, base.method_options)
            expl = services.run_explanation(image, loaded, base, clf, method, cache)  # the views: done before
            masks = services.cached_masks(image, base, clf, cache)
            with torch.no_grad():
                t = CLOCK()
                clf(x)
                rows["forward (1 image)"].append(CLOCK() - t)
            moved = replace(base, method_options={**base.method_options, "area": 0.3})
            t = CLOCK()
            services.masks_for(image, loaded, moved, clf, menus.build_method(METHOD, moved.method_options), cache)
            rows["one mask (a slider move)"].append(CLOCK() - t)
            label = expl.labels[0]
            curve_cfg = area.curve_config(base, label)
            curve_method = menus.build_method(METHOD, curve_cfg.method_options)
            curve_method(clf, x, [label], services.clean_output(image, loaded, clf, cache))  # loads the checkpoint

            timing: dict[str, float] = {}

            def curve_masks(progress=None):
                t0 = CLOCK()
                out = services.masks_for(image, loaded, curve_cfg, clf, curve_method, cache, progress)
                timing["masks"] = CLOCK() - t0
                return out

            t = CLOCK()
            curve = area.run_area_curve(image, base, expl, masks, catalog[METHOD], clf, cache, curve_masks=curve_masks)
            total = CLOCK() - t
            rows["area curve, area masker"].append(total)
            rows["masks at 8 areas (one pass)"].append(timing["masks"])
            rows["16 kept/removed images (the forward)"].append(total - timing["masks"])
            assert curve.own_masks and len(curve.kept) == 8
            gc_cfg = ExplainConfig(method="grad-cam", labels="top1")
            gc_expl = services.run_explanation(image, loaded, gc_cfg, clf, menus.build_method("grad-cam", {}), cache)
            gc_masks = services.cached_masks(image, gc_cfg, clf, cache)
            t = CLOCK()
            area.run_area_curve(image, gc_cfg, gc_expl, gc_masks, catalog["grad-cam"], clf, cache)
            rows["area curve, Grad-CAM map"].append(CLOCK() - t)
        last = rows["area curve, area masker"][-args.repeats:]
        print(f"{image.name}: working input {tuple(x.shape[-2:])}, curve {_median(last):.3f} s")
    fwd = _median(rows["forward (1 image)"])
    print("\n| step | median (s) | max (s) | x one forward |\n|---|---|---|---|")
    for name, values in rows.items():
        print(f"| {name} | {_median(values):.3f} | {max(values):.3f} | {_median(values) / fwd:.1f} |")
    ok = _median(rows["area curve, area masker"]) <= 1.0
    print(f"\narea curve (8 areas) median {_median(rows['area curve, area masker']):.3f} s, "
          f"max {max(rows['area curve, area masker']):.3f} s: target <= 1.0 s {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
