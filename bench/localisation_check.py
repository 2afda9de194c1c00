"""Localisation without annotations: objects pasted at random positions on blurred backgrounds.

Each object image (resize 256 + centre crop 224) is shrunk to a square of ``--scale`` x 224 and
pasted at a random position on a strongly blurred other image; the square is the ground-truth box.
For every method and image: energy of the mask inside the box, the pointing game (is the mask's
maximum inside the box), and the IoU of the mask's WSOL box with the square (hit = IoU >= 0.5).
Masks are computed for the object's true label. The classifier's accuracy on the composites says
how often it still sees the object.

    .venv/bin/python bench/localisation_check.py --methods masker,grad-cam,center-gaussian,random \
        --limit 50 --out runs/eval/localisation
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from tqdm.auto import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DEFAULT_IMAGES, build_method, load_images, markdown_table  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", default="masker,grad-cam,gradient-x-input,center-gaussian,random")
    ap.add_argument("--images", default=DEFAULT_IMAGES)
    ap.add_argument("--split", default="val", choices=["all", "val", "train"])
    ap.add_argument("--limit", type=int, default=50)
    ap.add_argument("--scale", type=float, default=0.35,
                    help="side of the pasted square / image side (0.35: 12%% of the area; at 0.5 the centre pixel "
                         "is inside almost every square, so a centred prior wins the pointing game)")
    ap.add_argument("--blur", type=float, default=8.0, help="sigma of the background blur (pixels)")
    ap.add_argument("--tolerance", type=int, default=0, help="pointing-game tolerance in pixels")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="localisation")
    args = ap.parse_args()

    import pandas as pd

    from saliency_core.classifiers import load_classifier
    from saliency_core.metrics.localisation import localisation_scores, paste_objects

    clf = load_classifier()
    x01, y, names = load_images(args.images, clf, args.limit, args.split, normalise=False)
    gen = torch.Generator().manual_seed(args.seed)
    perm = torch.randperm(len(y), generator=gen)
    perm = torch.where(perm == torch.arange(len(y)), (perm + 1) % len(y), perm)  # never its own background
    comp01, boxes = paste_objects(x01, x01[perm], scale=args.scale, blur_sigma=args.blur, generator=gen)
    x = clf.preprocessing.normalize(comp01)
    with torch.no_grad():  # one clean forward per image, shared by all methods
        cleans = [clf.forward_features(x[i:i + 1]) for i in tqdm(range(len(y)), desc="clean", leave=False)]
    pred = torch.cat([c.logits.argmax(-1) for c in cleans])
    rows = []
    specs = [m for m in args.methods.split(",") if m]
    for spec in specs:
        name, method = build_method(spec)
        masks = []
        for i in tqdm(range(len(y)), desc=name, leave=False):
            masks.append(method(clf, x[i:i + 1], [int(y[i])], cleans[i]).masks[0].detach().float().clamp(0, 1))
        s = localisation_scores(torch.stack(masks), boxes, tolerance=args.tolerance)
        for i in range(len(y)):
            rows.append({"method": name, "image": names[i], "label": int(y[i]), "correct": bool(pred[i] == y[i]),
                         **{k: float(v[i]) for k, v in s.items()}})
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    df = pd.DataFrame(rows)
    df.to_csv(out / "localisation_per_image.csv", index=False)
    cols = ["energy", "pointing", "iou", "hit"]
    summary = df.groupby("method", sort=False)[cols].mean().reset_index()
    summary["images"] = len(y)
    right = df[df["correct"]].groupby("method", sort=False)[cols].mean()
    for c in cols:  # the same on the composites the classifier still classifies correctly
        summary[f"{c} (correct)"] = summary["method"].map(right[c]) if len(right) else float("nan")
    summary["correct images"] = int((pred == y).sum())
    summary.to_csv(out / "localisation_summary.csv", index=False)
    print(f"classifier top-1 accuracy on the composites: {float((pred == y).float().mean()):.3f}; "
          f"pasted square = {args.scale:.0%} of the side ({args.scale ** 2:.0%} of the area)")
    print(markdown_table(summary))
    print(f"wrote {out}/localisation_per_image.csv, localisation_summary.csv")


if __name__ == "__main__":
    main()
