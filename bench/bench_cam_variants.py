"""Free class-activation-map variants at a fixed area (issue 25): does any map the clean forward already gives beat
Grad-CAM's region, so that the area masker could start from it instead?

For EfficientNet-Lite0 Grad-CAM of the last layer is the class activation map CAM_t = w_t . head, the area masker's
prior (``score_prior: cam``). Each variant below is as free (no backward pass, no extra forward):

- ``cam``: CAM_t, bilinear to the photo (the prior; = Grad-CAM's region);
- ``cam bicubic``: the same map, bicubic;
- ``contrastive``: Grad-CAM of log p_t instead of the logit, CAM_t - sum_k p_k CAM_k (evidence for t against the
  classes the classifier weighs against it);
- ``minus second``: CAM_t - CAM_s, s the clean second class.

On the 100 held-out photos (the class-disjoint val split), the top-a region of each map is scored as
``bench_fixed_area.py`` scores it (gray fill, the clean top-1's probability, kept and removed at a = 0.1, 0.2), and
each variant's gain over ``cam`` is printed with a 95 % paired bootstrap interval (positive = better: more kept,
less left after removal).

    .venv/bin/python bench/bench_cam_variants.py --threads 2      # 30 s
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import held_out_photos, photos_and_top1  # noqa: E402
from saliency_core.files import atomic_write_bytes  # noqa: E402
from saliency_core.maskers.area_prior import class_activation_maps, head_channels  # noqa: E402
from saliency_core.metrics.fixed_area import bootstrap_ci, kept_and_removed, top_area_regions  # noqa: E402

AREAS = (0.1, 0.2)
COLUMNS = [f"kept {a}" for a in AREAS] + [f"removed {a}" for a in AREAS]


def variant_maps(classifier, clean, top1: int) -> dict[str, tuple[torch.Tensor, str]]:
    """{name: (h x w map at the head's resolution, upsampling mode)} of one photo."""
    every = torch.arange(clean.logits.shape[-1])
    cams = class_activation_maps(classifier, clean.head.expand(len(every), -1, -1, -1), every)[:, 0]
    p = clean.logits.float()[0].softmax(-1)
    second = int(p.topk(2).indices[1])
    return {
        "cam": (cams[top1], "bilinear"),
        "cam bicubic": (cams[top1], "bicubic"),
        "contrastive": (cams[top1] - torch.einsum("k,khw->hw", p, cams), "bilinear"),
        "minus second": (cams[top1] - cams[second], "bilinear"),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    args, clf, x, names = held_out_photos(p, limit=100, threads=2)
    head_channels(clf)  # a classifier without a linear last layer is refused in one line
    scores: dict[str, list[torch.Tensor]] = {}
    for xi, clean, top1 in photos_and_top1(clf, x):
        for name, (m, mode) in variant_maps(clf, clean, top1).items():
            up = F.interpolate(m[None, None].float(), size=xi.shape[-2:], mode=mode, align_corners=False)[0, 0]
            kr = kept_and_removed(clf, xi, top1, top_area_regions(up, list(AREAS)))
            scores.setdefault(name, []).append(torch.cat([kr.kept, kr.removed]))
    table = {name: torch.stack(v) for name, v in scores.items()}
    base = table["cam"]
    out: dict = {"photos": len(names), "areas": list(AREAS), "fill": "gray", "rows": {}}
    print(f"{len(names)} held-out photos, gray fill; gain over cam (kept: more is better; removed: less is better)")
    print("| map | " + " | ".join(COLUMNS) + " | " + " | ".join(f"gain {c}" for c in COLUMNS) + " |")
    print("|---" * (1 + 2 * len(COLUMNS)) + "|")
    for name, v in table.items():
        sign = torch.tensor([1.0] * len(AREAS) + [-1.0] * len(AREAS))
        gains = [bootstrap_ci((v[:, j] - base[:, j]) * sign[j]) for j in range(len(COLUMNS))]
        means = [float(v[:, j].mean()) for j in range(len(COLUMNS))]
        cells = ["" if name == "cam" else f"{m:+.3f} [{lo:+.3f}, {hi:+.3f}]" for m, lo, hi in gains]
        print(f"| {name} | " + " | ".join(f"{m:.3f}" for m in means) + " | " + " | ".join(cells) + " |")
        out["rows"][name] = {"mean": dict(zip(COLUMNS, means)),
                             "gain_over_cam": dict(zip(COLUMNS, [list(g) for g in gains]))}
    if args.json:
        atomic_write_bytes(Path(args.json), json.dumps(out, indent=1).encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
