"""Localisation without annotations: objects pasted at random positions on blurred backgrounds.

Each object image (resize 256 + centre crop 224) is shrunk to a square of ``--scale`` x 224 and
pasted at a random position on a strongly blurred other image; the square is the ground-truth box.
For every method and image: energy of the mask inside the box, the pointing game (is the mask's
maximum inside the box), and the IoU of the mask's WSOL box with the square (hit = IoU >= 0.5).
Masks are computed for the object's true label. The classifier's accuracy on the composites says
how often it still sees the object.

Issue 25 ("energy in box at a = box area"): an option value ``box`` (``area=box``) is replaced by each image's box
area (side^2 / H W), so an area-conditioned masker draws a region as large as the pasted object; ``energy@box`` is
the energy in box of every map's binary top-a region at that area (the share of the top box-area pixels inside the
box: what a map says *where* when all are made the same size). ``--reference`` names the row the others are paired
with (per-image differences, 95 % percentile bootstrap, 2000 resamples, seed 0); ``--json`` writes all of it.

    OMP_NUM_THREADS=1 .venv/bin/python bench/localisation_check.py --methods masker,grad-cam,center-gaussian,random \
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

from saliency_core.metrics.fixed_area import bootstrap_ci  # noqa: E402


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
    ap.add_argument("--reference", default="masker", help="the method (display name) the others are paired with")
    ap.add_argument("--json", default=None, help="summary and paired intervals as JSON (paths relative)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    import pandas as pd

    from saliency_core.classifiers import load_classifier
    from saliency_core.metrics.fixed_area import top_area_regions
    from saliency_core.metrics.localisation import energy_in_box, localisation_scores, paste_objects

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
    h, w = x.shape[-2:]
    box_area = ((boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)).double() / (h * w)
    for spec in specs:
        by_area: dict[float, tuple[str, object]] = {}  # one method per distinct box area (all equal at one scale)
        masks = []
        for i in tqdm(range(len(y)), desc=spec, leave=False):
            a = round(float(box_area[i]), 6)
            if a not in by_area:
                by_area[a] = build_method(spec.replace("=box", f"={a}"))
            name, method = by_area[a]
            name = name.replace(f"={a}", "=box") if "=box" in spec else name
            masks.append(method(clf, x[i:i + 1], [int(y[i])], cleans[i]).masks[0].detach().float().clamp(0, 1))
        masks_t = torch.stack(masks)
        s = localisation_scores(masks_t, boxes, tolerance=args.tolerance)
        s["energy@box"] = torch.stack([energy_in_box(top_area_regions(masks_t[i:i + 1], float(box_area[i])),
                                                     boxes[i:i + 1])[0] for i in range(len(y))])
        s["area>0.5"] = (masks_t > 0.5).flatten(1).float().mean(1)
        for i in range(len(y)):
            rows.append({"method": name, "image": names[i], "label": int(y[i]), "correct": bool(pred[i] == y[i]),
                         **{k: float(v[i]) for k, v in s.items()}})
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    df = pd.DataFrame(rows)
    df.to_csv(out / "localisation_per_image.csv", index=False)
    cols = ["energy", "energy@box", "pointing", "iou", "hit", "area>0.5"]
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
    paired = paired_intervals(df, args.reference, ["energy", "energy@box", "pointing", "hit"])
    if paired:
        print(f"\nPaired with {args.reference} (method - {args.reference}, mean [95 % bootstrap interval], "
              f"{len(y)} images; box area {float(box_area.mean()):.4f}):")
        for name, d in paired.items():
            print(f"  {name}: " + "; ".join(f"{k} {v[0]:+.3f} [{v[1]:+.3f}, {v[2]:+.3f}]" for k, v in d.items()))
    if args.json:
        import json

        from saliency_core.files import atomic_write_text

        def ci(v) -> list[float]:
            return [round(t, 4) for t in bootstrap_ci(torch.tensor(v.to_numpy(dtype=float)))]

        summary_ci = {m: {c: ci(g[c]) for c in cols} for m, g in df.groupby("method", sort=False)}
        argv = {k: v for k, v in vars(args).items() if k not in ("images", "out", "json")}
        atomic_write_text(Path(args.json), json.dumps(
            {"args": argv, "images": len(y), "correct_images": int((pred == y).sum()),
             "box_area": float(box_area.mean()), "summary": summary_ci,
             "paired_with_reference": {m: {k: [round(t, 4) for t in v] for k, v in d.items()}
                                       for m, d in paired.items()}}, indent=1) + "\n")
    print(f"wrote {out}/localisation_per_image.csv, localisation_summary.csv" + (f", {args.json}" if args.json else ""))


def paired_intervals(df, reference: str, cols: list[str]) -> dict[str, dict[str, tuple[float, float, float]]]:
    """Per method: the mean of (method - reference) over the same images with its 95 % bootstrap interval."""
    ref = df[df["method"] == reference].set_index("image")
    if ref.empty:
        return {}
    out = {}
    for name, g in df[df["method"] != reference].groupby("method", sort=False):
        g = g.set_index("image")
        out[name] = {c: bootstrap_ci(torch.tensor((g[c] - ref.loc[g.index, c]).to_numpy(dtype=float)))
                     for c in cols}
    return out


if __name__ == "__main__":
    main()
