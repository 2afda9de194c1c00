"""Model parameter randomisation test (Adebayo et al.; Phang et al. Sec. 6) on the shared images.

Re-initialises the classifier's layers from the logits down (cascading) or one at a time
(independent) and compares each method's maps with the original ones (Spearman, Spearman of
|m - 0.5|, HOG correlation, SSIM). A method whose maps stay the same ignores the model.

    .venv/bin/python bench/sanity_mprt.py --methods masker,grad-cam,center-gaussian --limit 8 \
        --out runs/eval/mprt
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
    ap.add_argument("--methods", default="masker,grad-cam,gradient-x-input,center-gaussian")
    ap.add_argument("--images", default=DEFAULT_IMAGES)
    ap.add_argument("--split", default="val", choices=["all", "val", "train"])
    ap.add_argument("--limit", type=int, default=8)
    ap.add_argument("--depth", type=int, default=2)
    ap.add_argument("--modes", default="cascading,independent")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="mprt")
    args = ap.parse_args()

    import pandas as pd
    import plotly.express as px

    from saliency_core.classifiers import load_classifier
    from saliency_core.evaluate.sanity import method_mask_fn, mprt, randomization_units

    torch.manual_seed(args.seed)
    clf = load_classifier()
    x, y, _ = load_images(args.images, clf, args.limit, args.split)
    units = randomization_units(clf.model, args.depth)
    frames = []
    specs = [m for m in args.methods.split(",") if m]
    bar = tqdm(total=len(specs) * len(args.modes.split(",")), desc="MPRT")
    for spec in specs:
        name, method = build_method(spec)
        fn = method_mask_fn(method, clf)
        for mode in args.modes.split(","):
            df = mprt(clf, fn, x, y.tolist(), mode=mode, depth=args.depth, seed=args.seed, units=units,
                      progress=lambda f, m: bar.set_postfix_str(f"{name}: {m}"))
            df.insert(0, "method", name)
            frames.append(df)
            bar.update()
    bar.close()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    allrows = pd.concat(frames)
    allrows.to_csv(out / "mprt_per_image.csv", index=False)
    summary = allrows.groupby(["method", "mode", "step", "unit"], sort=False)[
        ["spearman", "spearman_abs", "hog", "ssim"]].mean().reset_index()
    summary.to_csv(out / "mprt_summary.csv", index=False)
    long = summary.melt(id_vars=["method", "mode", "step", "unit"], var_name="measure", value_name="similarity")
    fig = px.line(long, x="unit", y="similarity", color="method", facet_row="mode", facet_col="measure",
                  markers=True, title=f"MPRT: similarity to the original maps ({len(y)} images, "
                                      "units from the logits down)", height=700)
    write_plot(fig, out / "mprt.html")
    last = summary.groupby(["method", "mode"], sort=False).tail(1)  # fully randomised (cascading)
    print(markdown_table(last[last["mode"] == "cascading"][["method", "unit", "spearman", "spearman_abs", "hog",
                                                             "ssim"]]))
    print(f"wrote {out}/mprt_per_image.csv, mprt_summary.csv, mprt.html")


if __name__ == "__main__":
    main()
