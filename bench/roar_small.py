"""Remove-and-retrain (ROAR, Hooker et al.; Phang et al. Fig. 4) at a scale this CPU can run.

Task: the shared images in ``--groups`` coarse classes (ImageNet index ranges, which follow the
WordNet order: fish, birds, reptiles, dogs, ...), split in halves per class. For each method the
top t of every image's pixels (ranked by its mask for the image's true label) are set to gray, a
linear head (logistic regression) is retrained on the frozen classifier's pooled features of the
degraded training half and tested on the degraded test half; ``random`` removes pixels at random.

    .venv/bin/python bench/roar_small.py --methods random,masker,grad-cam,center-gaussian --limit 200 \
        --out runs/eval/roar
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from tqdm.auto import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DEFAULT_IMAGES, build_method, load_images, markdown_table, write_plot  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", default="random,masker,grad-cam,center-gaussian")
    ap.add_argument("--images", default=DEFAULT_IMAGES)
    ap.add_argument("--limit", type=int, default=200)
    ap.add_argument("--groups", type=int, default=8)
    ap.add_argument("--fractions", default="0,0.1,0.3,0.5,0.7,0.9")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="roar")
    args = ap.parse_args()

    import pandas as pd
    import plotly.express as px

    from saliency_core.classifiers import load_classifier
    from saliency_core.metrics.roar import random_masks, roar_curve

    clf = load_classifier()
    x, y_fine, _ = load_images(args.images, clf, args.limit, "all", shuffle_seed=args.seed)
    y = (y_fine * args.groups) // 1000
    test = torch.zeros(len(y), dtype=torch.bool)
    for g in y.unique():  # half of every coarse class is held out
        members = torch.nonzero(y == g)[:, 0]
        test[members[: len(members) // 2]] = True
    fractions = tuple(float(v) for v in args.fractions.split(","))
    cleans: list = []  # clean forwards, computed once and shared by the methods
    rows = []
    for spec in [m for m in args.methods.split(",") if m]:
        if spec == "random":
            name, masks = "random (ROAR baseline)", random_masks(len(y), *x.shape[-2:], seed=args.seed)
        else:
            name, method = build_method(spec)
            out_masks = []
            for i in tqdm(range(len(y)), desc=f"{name} masks", leave=False):
                if len(cleans) <= i:
                    with torch.no_grad():
                        cleans.append(clf.forward_features(x[i:i + 1]))
                out_masks.append(method(clf, x[i:i + 1], [int(y_fine[i])], cleans[i]).masks[0].detach().float())
            masks = torch.stack(out_masks)
        bar = tqdm(total=len(fractions), desc=f"{name} ROAR", leave=False)
        acc = roar_curve(clf, x[~test], y[~test], masks[~test], x[test], y[test], masks[test], fractions,
                         seed=args.seed, progress=lambda f, m: bar.update(1))
        bar.close()
        rows += [{"method": name, "removed": t, "accuracy": a} for t, a in zip(fractions, acc)]
        tqdm.write(f"{name}: " + ", ".join(f"{t:.0%}: {a:.3f}" for t, a in zip(fractions, acc)))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    df = pd.DataFrame(rows)
    df.to_csv(out / "roar.csv", index=False)
    fig = px.line(df, x="removed", y="accuracy", color="method", markers=True,
                  title=f"ROAR (linear head retrained; {int((~test).sum())} train / {int(test.sum())} test images, "
                        f"{args.groups} coarse classes)")
    write_plot(fig, out / "roar.html")
    table = df.pivot(index="method", columns="removed", values="accuracy").reset_index()
    table.columns = ["method"] + [f"{c:.0%}" for c in table.columns[1:]]
    print(markdown_table(table))
    print(f"wrote {out}/roar.csv, roar.html")


if __name__ == "__main__":
    main()
