"""The area-conditioned conditional masker against Grad-CAM at fixed areas, on the 100 held-out classes (issue 25).

For each held-out photo and area a (0.05, 0.1, 0.2, 0.4): the top-1 class probability (of the clean image's top-1)
with only the region kept and with it removed, gray fill, the region being the top round(a N) pixels of each map
(saliency_core.metrics.fixed_area.top_area_regions): the masker's own mask at area a for ``ssr``, ``sdr`` and
``both`` (all areas in one batched masker pass per objective), Grad-CAM's map, and, when given, an older conditional
checkpoint's default mask. Means with 95 % bootstrap intervals, and the paired differences the targets name
(``ssr`` kept minus Grad-CAM's, Grad-CAM removed minus ``sdr``'s, ``ssr`` vs ``sdr`` on their own tasks). Also the
masks' area error and half-transparent share, and the speed of one mask and of the 8-point area curve.

    .venv/bin/python bench/bench_conditional_area.py --threads 2 --json bench/results/conditional_area.json
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

from bench._common import (  # noqa: E402
    DEFAULT_IMAGES,
    interleaved,
    load_images,
    markdown_table,
    parse_bench_args,
    photos_and_top1,
)
from saliency_core.classifiers import load_classifier  # noqa: E402
from saliency_core.files import atomic_write_bytes  # noqa: E402
from saliency_core.maskers.area_prior import prior_for  # noqa: E402
from saliency_core.maskers.catalog import checkpoints_dir  # noqa: E402
from saliency_core.maskers.checkpoint import CheckpointError, load_masker  # noqa: E402
from saliency_core.maskers.conditional import Setting  # noqa: E402
from saliency_core.methods.base import create_method  # noqa: E402
from saliency_core.metrics.fixed_area import bootstrap_ci, kept_and_removed, top_area_regions  # noqa: E402

AREAS = (0.05, 0.1, 0.2, 0.4)
CURVE_AREAS = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6)


def ci(values) -> str:
    mean, lo, hi = bootstrap_ci(values)
    return f"{mean:+.3f} [{lo:+.3f}, {hi:+.3f}]" if min(values) < 0 else f"{mean:.3f} [{lo:.3f}, {hi:.3f}]"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--images", default=DEFAULT_IMAGES)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--split", choices=("val", "train"), default="val",
                   help="the held-out classes (val) or the masker's own training photos (train: does it fit them?)")
    p.add_argument("--conditional", default=str(checkpoints_dir() / "conditional_area_lite0.safetensors"),
                   help="an area-conditioned conditional checkpoint (default: the shipped one)")
    p.add_argument("--older", default=None, help="an older conditional checkpoint scored at its default setting")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--sections", default="fixed_area,speed")
    args = parse_bench_args(p)
    clf = load_classifier()
    x, _, _ = load_images(args.images, clf, args.limit, split=args.split)
    try:
        cond = load_masker(args.conditional, classifier=clf)
    except CheckpointError as exc:
        p.error(str(exc))
    cfg = cond.masker.config
    if not cfg.target_conditioned:
        p.error(f"{args.conditional} takes no area: this bench scores area-conditioned maskers")
    default = cfg.default_setting
    out: dict = {"images": len(x), "split": args.split, "conditional": Path(args.conditional).name, "areas": AREAS}
    sections = set(args.sections.split(","))

    if "fixed_area" in sections:
        cam = create_method("grad-cam")
        older = load_masker(args.older, classifier=clf) if args.older else None
        per: dict[tuple[str, float], list[tuple[float, float]]] = {}
        area_err, half = [], []
        t0 = time.perf_counter()
        for xi, clean, label in photos_and_top1(clf, x):
            maps: dict[str, torch.Tensor] = {}  # name -> A x h x w (one map per area)
            with torch.no_grad():
                for obj in [o for o in ("ssr", "sdr", "both") if o in cfg.objectives]:  # a dedicated one: its own
                    settings = [cfg.check_setting(Setting(obj, "gray", default.tv_weight, default.upsample,
                                                          default.area_weight, a)) for a in AREAS]
                    stages = [s.expand(len(AREAS), *s.shape[1:]) for s in clean.stages]
                    prior = prior_for(cond.masker, clf, clean.head, [label], len(AREAS))  # score_prior cam
                    m = cond.masker(stages, (224, 224), settings, prior=prior)[:, 0]  # one pass, every area
                    maps[obj] = m
                    area_err.append(((m > 0.5).float().flatten(1).mean(1) - torch.tensor(AREAS)).abs().max())
                    half.append(((m > 0.1) & (m < 0.9)).float().mean())
                if older is not None:
                    maps["older (default)"] = older.masker(clean.stages, (224, 224))[0, 0].expand(len(AREAS), -1, -1)
            maps["grad-cam"] = cam(clf, xi, [label], clean).masks[0].expand(len(AREAS), -1, -1)
            for name, m in maps.items():
                regions = torch.stack([top_area_regions(m[k], a) for k, a in enumerate(AREAS)])
                kr = kept_and_removed(clf, xi, label, regions)
                for k, a in enumerate(AREAS):
                    per.setdefault((name, a), []).append((float(kr.kept[k]), float(kr.removed[k])))
        seconds = time.perf_counter() - t0
        rows, diffs = [], []
        for (name, a), v in per.items():
            kept, removed = [k for k, _ in v], [r for _, r in v]
            rows.append({"map": name, "area": a, "kept": ci(kept), "removed": ci(removed)})
        for a in AREAS:
            g = per[("grad-cam", a)]
            s, d = per[("ssr", a)], per[("sdr", a)]
            diffs.append({"area": a,
                          "ssr kept - Grad-CAM kept": ci([p[0] - q[0] for p, q in zip(s, g)]),
                          "Grad-CAM removed - sdr removed": ci([q[1] - p[1] for p, q in zip(d, g)]),
                          "ssr kept - sdr kept": ci([p[0] - q[0] for p, q in zip(s, d)]),
                          "ssr removed - sdr removed": ci([p[1] - q[1] for p, q in zip(s, d)])})
        which = "held-out" if args.split == "val" else "training"
        print(f"\n## Fixed areas, {len(x)} {which} photos, gray fill ({seconds:.0f} s)\n")
        print(markdown_table(pd.DataFrame(rows)))
        print("\n## Paired differences (95 % bootstrap intervals; the targets: first two >= 0.05, last two > 0)\n")
        print(markdown_table(pd.DataFrame(diffs)))
        figures = {"max area error": float(torch.stack(area_err).max()),
                   "half-transparent share (mean)": float(torch.stack(half).mean()),
                   "half-transparent share (worst image and area)": float(torch.stack(half).max())}
        print("\n" + ", ".join(f"{k} {v:.4f}" for k, v in figures.items()))
        out.update(fixed_area=rows, paired=diffs, masks=figures,
                   per_image={f"{n}@{a:g}": v for (n, a), v in per.items()})

    if "speed" in sections:
        x1 = x[:1]
        setting = cfg.check_setting(Setting("ssr", "gray", default.tv_weight, default.upsample,
                                            default.area_weight, 0.2 if cfg.target_conditioned else None))
        curve = [Setting("ssr", "gray", default.tv_weight, default.upsample, default.area_weight, a)
                 for a in CURVE_AREAS] if cfg.target_conditioned else []

        @torch.no_grad()
        def forward():
            clf(x1)

        @torch.no_grad()
        def one_mask():
            out = clf.forward_features(x1)
            cond.masker(out.stages, (224, 224), setting, prior=prior_for(cond.masker, clf, out.head, None))

        @torch.no_grad()
        def area_curve():  # 8 masks in one pass, then their 16 kept / removed views in one forward
            out = clf.forward_features(x1)
            m = cond.masker([s.expand(len(curve), *s.shape[1:]) for s in out.stages], (224, 224), curve,
                            prior=prior_for(cond.masker, clf, out.head, None, len(curve)))[:, 0]
            regions = torch.stack([top_area_regions(m[k], a) for k, a in enumerate(CURVE_AREAS)])
            kept_and_removed(clf, x1, int(out.logits.argmax()), regions)

        fns = [forward, one_mask] + ([area_curve] if curve else [])
        times = interleaved(fns, repeats=20)
        figures = {"threads": args.threads, "forward_ms": 1000 * times[0], "mask_ms": 1000 * times[1],
                   "ratio": times[1] / times[0]}
        if curve:
            figures["area_curve_s"] = times[2]
        print(f"\n## Speed (batch 1, {args.threads} threads)\n\none forward {figures['forward_ms']:.1f} ms; one mask "
              f"{figures['mask_ms']:.1f} ms: **{figures['ratio']:.2f}x** a forward"
              + (f"; the 8-point area curve {figures['area_curve_s']:.2f} s" if curve else ""))
        out["speed"] = figures
    if args.json:
        out["command"] = " ".join(["bench/bench_conditional_area.py", *sys.argv[1:]])
        atomic_write_bytes(Path(args.json), (json.dumps(out, indent=1, default=float) + "\n").encode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
