"""Does each label's mask find its own object? The cat|espresso image of the "label matters" test.

Chelsea (a cat, left half) next to coffee (an espresso, right half), 300 x 300 each. For each method and
label the script prints the mean and spread of the mask, the share of its mass on the label's own half, and
the share of its 20 % highest-ranked pixels on that half (what an insertion curve inserts first). A
label-agnostic method gives both labels the same mask, so its two "own half" shares add up to 1.

    .venv/bin/python bench/label_two_objects.py --methods label-masker,masker,grad-cam \\
        [--methods masker:checkpoint=runs/x/masker.safetensors:as=x]
"""
from __future__ import annotations

import argparse

import numpy as np
import torch
from PIL import Image

CAT, ESPRESSO = 285, 967  # Egyptian cat, espresso


def two_object_image() -> Image.Image:
    from skimage import data

    both = Image.new("RGB", (600, 300))
    both.paste(Image.fromarray(data.chelsea()).resize((300, 300)), (0, 0))
    both.paste(Image.fromarray(data.coffee()).resize((300, 300)), (300, 0))
    return both


def own_half_shares(mask: np.ndarray, left: bool, top: float = 0.2) -> tuple[float, float]:
    """(share of the mask's mass, share of its top ``top`` pixels) on the label's own half."""
    half = mask.shape[1] // 2
    side = (slice(None), slice(0, half)) if left else (slice(None), slice(half, None))
    ranks = mask.argsort(axis=None, kind="stable").argsort().reshape(mask.shape) / mask.size
    first = ranks >= 1 - top
    return float(mask[side].sum() / max(mask.sum(), 1e-12)), float(first[side].sum() / max(first.sum(), 1))


def main() -> None:
    from saliency_core.classifiers import load_classifier
    from saliency_core.evaluate.runner import parse_method_spec
    from saliency_core.explanation import ExplainConfig, explain

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", action="append", default=None,
                        help="comma-separated method specs NAME[:key=value...][:as=NAME] (repeatable)")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    specs = [s for group in (args.methods or ["label-masker,masker,grad-cam"]) for s in group.split(",") if s]
    clf = load_classifier()
    image = two_object_image()
    print(f"{'method':28s} {'label':10s} {'mean':>6s} {'std':>6s} {'own half':>9s} {'top 20% on own half':>20s}")
    for raw in specs:
        spec = parse_method_spec(raw)
        e = explain(image, ExplainConfig(method=spec.name, method_options=spec.options, labels=f"{CAT},{ESPRESSO}"),
                    classifier=clf)
        for label, name, left in ((CAT, "cat", True), (ESPRESSO, "espresso", False)):
            m = np.asarray(e.mask_for(label), dtype=np.float64)
            mass, first = own_half_shares(m, left)
            print(f"{spec.display:28s} {name:10s} {m.mean():6.3f} {m.std():6.3f} {mass:9.3f} {first:20.3f}")


if __name__ == "__main__":
    main()
