"""How closely an area masker fits its per-image teacher, on the teacher's own training photos (issue 25).

For each training photo the teacher files cover (``python -m saliency_core.train.teacher``), each teacher game
(``ssr``, ``sdr``) and each teacher area a: the overlap (IoU) of the masker's top-a region with the teacher's region,
next to the overlap of Grad-CAM's top-a region with it (on a classifier whose head is global pooling and a linear
layer, as EfficientNet-Lite0's, the class activation map's region: where the teacher and a masker trained with the
CAM prior both start; measured identical here), and the game's score of each region (gray fill, the clean top-1's
probability: kept for ``ssr``, removed for ``sdr``), as margins over Grad-CAM's region with 95 % bootstrap
intervals. A student that fitted its teacher would overlap it far more than Grad-CAM does and share its margin; this
says how far a run got.

    .venv/bin/python bench/bench_teacher_fit.py --conditional runs/x/masker.safetensors \
        --teacher runs/teacher/teacher15_0.pt,runs/teacher/teacher15_1.pt --limit 100
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

from bench._common import DEFAULT_IMAGES, load_images, markdown_table, parse_bench_args  # noqa: E402
from saliency_core.classifiers import load_classifier  # noqa: E402
from saliency_core.files import atomic_write_bytes  # noqa: E402
from saliency_core.maskers.area_prior import prior_for  # noqa: E402
from saliency_core.maskers.checkpoint import CheckpointError, load_masker  # noqa: E402
from saliency_core.maskers.conditional import Setting  # noqa: E402
from saliency_core.methods.base import create_method  # noqa: E402
from saliency_core.metrics.fixed_area import bootstrap_ci, kept_and_removed, region_iou, top_area_regions  # noqa: E402
from saliency_core.train.teacher import TEACHER_OBJECTIVES, Teacher, TeacherError  # noqa: E402


def ci(values) -> str:
    mean, lo, hi = bootstrap_ci(values)
    return f"{mean:+.3f} [{lo:+.3f}, {hi:+.3f}]"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--images", default=DEFAULT_IMAGES)
    p.add_argument("--conditional", required=True, help="an area masker checkpoint")
    p.add_argument("--teacher", required=True, help="teacher files, comma-separated")
    p.add_argument("--limit", type=int, default=100, help="score the first N training photos the teacher covers")
    p.add_argument("--threads", type=int, default=2)
    args = parse_bench_args(p)
    clf = load_classifier()
    try:
        cond = load_masker(args.conditional, classifier=clf)
    except CheckpointError as exc:
        p.error(str(exc))
    cfg = cond.masker.config
    if not cfg.target_conditioned:
        p.error(f"{args.conditional} takes no area: this bench scores area-conditioned maskers")
    try:
        teacher = Teacher.load(args.teacher.split(","), clf.identity, 224)
    except TeacherError as exc:
        p.error(str(exc))
    areas = teacher.areas
    x01, _, _ = load_images(args.images, clf, None, split="train", normalise=False)
    cam = create_method("grad-cam")
    default = cfg.default_setting
    per: dict[tuple[str, float], dict[str, list[float]]] = {}
    scored, t0 = 0, time.perf_counter()
    for i in range(len(x01)):
        if scored >= args.limit:
            break
        if teacher.region(x01[i], TEACHER_OBJECTIVES[0], 0) is None:
            continue
        scored += 1
        xi = clf.preprocessing.normalize(x01[i:i + 1])
        with torch.no_grad():
            clean = clf.forward_features(xi)
        label = int(clean.logits.argmax())
        gradcam = cam(clf, xi, [label], clean).masks[0]
        for obj in TEACHER_OBJECTIVES:
            settings = [cfg.check_setting(Setting(obj, "gray", default.tv_weight, default.upsample,
                                                  default.area_weight, a)) for a in areas]
            with torch.no_grad():
                stages = [s.expand(len(areas), *s.shape[1:]) for s in clean.stages]
                prior = prior_for(cond.masker, clf, clean.head, [label], len(areas))
                m = cond.masker(stages, (224, 224), settings, prior=prior)[:, 0]
            student = torch.stack([top_area_regions(m[k], a) for k, a in enumerate(areas)])
            base = top_area_regions(gradcam, list(areas))
            taught = torch.stack([teacher.region(x01[i], obj, k) for k in range(len(areas))])
            regions = torch.cat([student, base, taught])
            kr = kept_and_removed(clf, xi, label, regions)
            score = kr.kept if obj == "ssr" else -kr.removed  # higher is better for the game
            n = len(areas)
            iou_s, iou_g = region_iou(student, taught), region_iou(base, taught)
            for k, a in enumerate(areas):
                row = per.setdefault((obj, a), {"iou_s": [], "iou_g": [], "m_s": [], "m_t": []})
                row["iou_s"].append(float(iou_s[k]))
                row["iou_g"].append(float(iou_g[k]))
                row["m_s"].append(float(score[k] - score[n + k]))
                row["m_t"].append(float(score[2 * n + k] - score[n + k]))
    seconds = time.perf_counter() - t0
    if not scored:
        p.error("the teacher files cover none of the training photos (another image set or size?)")
    rows = [{"game": obj, "area": a,
             "IoU masker-teacher": ci(v["iou_s"]), "IoU Grad-CAM-teacher": ci(v["iou_g"]),
             "masker margin over Grad-CAM": ci(v["m_s"]), "teacher margin over Grad-CAM": ci(v["m_t"])}
            for (obj, a), v in per.items()]
    print(f"\n## Teacher fit, {scored} training photos, gray fill ({seconds:.0f} s)\n")
    print("margin: `ssr` kept probability minus Grad-CAM's; `sdr` Grad-CAM's removed probability minus the region's\n")
    print(markdown_table(pd.DataFrame(rows)))
    if args.json:
        out = {"images": scored, "conditional": Path(args.conditional).name,
               "teacher": [Path(t).name for t in args.teacher.split(",")], "rows": rows,
               "per_image": {f"{o}@{a:g}": v for (o, a), v in per.items()},
               "command": " ".join(["bench/bench_teacher_fit.py", *sys.argv[1:]])}
        atomic_write_bytes(Path(args.json), (json.dumps(out, indent=1) + "\n").encode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
