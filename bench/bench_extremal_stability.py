"""Is a per-image extremal region a well-defined target? Two nearly identical runs compared (issue 25).

On the first N held-out photos, ``extremal-fast`` (15 steps from Grad-CAM's region) is run for each game (``ssr``,
``sdr``) at a = 0.1 and 0.2 three ways: its defaults, without the paper's left-right flip every other step
(``jitter=False``), and with a smaller step (``lr=0.02`` instead of 0.03). Printed: the IoU of each pair of the three
runs' regions, and of each run's region with Grad-CAM's (its start), means with 95 % bootstrap intervals. If two
runs agree with each other no better than each agrees with its start, the cells a run moves are a property of the
run's path, not of the photo, and a one-pass masker trained to predict them can only learn their mean: the start.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_extremal_stability.py --limit 25 --threads 1
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import held_out_photos, markdown_table, photos_and_top1  # noqa: E402
from saliency_core.files import atomic_write_bytes  # noqa: E402
from saliency_core.methods.base import create_method  # noqa: E402
from saliency_core.metrics.fixed_area import bootstrap_ci, region_iou, top_area_regions  # noqa: E402

AREAS = (0.1, 0.2)
VARIANTS: dict[str, dict] = {"defaults": {}, "no jitter": {"jitter": False}, "lr 0.02": {"lr": 0.02}}
PAIRS = (("defaults", "no jitter"), ("defaults", "lr 0.02"), ("no jitter", "lr 0.02"),
         ("defaults", "Grad-CAM"), ("no jitter", "Grad-CAM"), ("lr 0.02", "Grad-CAM"))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    args, clf, x, _ = held_out_photos(p, limit=25, threads=1)
    cam = create_method("grad-cam")
    iou: dict[tuple[str, float, str], list[float]] = {}
    t0 = time.perf_counter()
    for xi, clean, label in photos_and_top1(clf, x):
        start = top_area_regions(cam(clf, xi, [label], clean).masks[0], list(AREAS))
        for game in ("ssr", "sdr"):
            regions = {"Grad-CAM": start}
            for name, options in VARIANTS.items():
                method = create_method("extremal-fast", objective=game, area=AREAS[0],
                                       areas=",".join(str(a) for a in AREAS[1:]), **options)
                method.show_progress = False
                res = method(clf, xi, [label], clean)
                regions[name] = (torch.cat([res.masks[None], res.area_masks])[:, 0] > 0.5).float()
            for a_i, a in enumerate(AREAS):
                for u, v in PAIRS:
                    iou.setdefault((game, a, f"{u} / {v}"), []).append(
                        float(region_iou(regions[u][a_i], regions[v][a_i])))
    rows = []
    for game in ("ssr", "sdr"):
        for a in AREAS:
            row = {"game": game, "area": a}
            for u, v in PAIRS:
                mean, lo, hi = bootstrap_ci(iou[(game, a, f"{u} / {v}")])
                row[f"{u} / {v}"] = f"{mean:.3f} [{lo:.3f}, {hi:.3f}]"
            rows.append(row)
    print(f"\n## IoU of the regions of three runs of extremal-fast, {len(x)} held-out photos "
          f"({time.perf_counter() - t0:.0f} s)\n")
    print(markdown_table(pd.DataFrame(rows)))
    if args.json:
        out = {"images": len(x), "rows": rows, "per_image": {f"{g}@{a:g}@{n}": v for (g, a, n), v in iou.items()},
               "command": " ".join(["bench/bench_extremal_stability.py", *sys.argv[1:]])}
        atomic_write_bytes(Path(args.json), (json.dumps(out, indent=1) + "\n").encode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
