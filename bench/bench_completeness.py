"""Benchmark: completeness + soundness of the top-5 labels with 32-step curves vs the bare forwards.

The computation needs 5 x 33 = 165 images through the classifier. The reference is those 165
forwards alone (images built beforehand, untimed) in one batch loop; the target is that the whole
``label_scores`` call (ranking, compositing, forwards, softmax, scores) takes at most 1.2 x that.
Each timing is the best of ``--repeats`` runs (the CPU may be shared).

    .venv/bin/python bench/bench_completeness.py [--classifier efficientnet_lite0] [--repeats 3]
"""
from __future__ import annotations

import argparse
import time

import torch
from PIL import Image


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--classifier", default="efficientnet_lite0")
    ap.add_argument("--labels", type=int, default=5)
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from skimage import data

    from saliency_core.classifiers import load_classifier
    from saliency_core.metrics.completeness import label_scores
    from saliency_core.metrics.insertion import pixel_ranks, step_counts

    clf = load_classifier(args.classifier)
    x = clf.preprocessing.pil_to_input(Image.fromarray(data.chelsea()), size=(224, 224))
    with torch.no_grad():
        labels = clf(x).softmax(-1)[0].topk(args.labels).indices.tolist()
    gen = torch.Generator().manual_seed(0)
    coarse = torch.rand(args.labels, 1, 14, 14, generator=gen)
    masks = torch.nn.functional.interpolate(coarse, size=(224, 224), mode="bilinear", align_corners=False)[:, 0]
    n_images = args.labels * (args.steps + 1)

    # reference: the same number of composites, built beforehand, through the classifier in one batch loop
    ranks = pixel_ranks(masks).view(args.labels, 1, 224, 224)
    counts = step_counts(224 * 224, args.steps)
    batch = torch.cat([x * (ranks[k] < c).float() for k in range(args.labels) for c in counts])
    assert batch.shape[0] == n_images

    def reference() -> float:
        t = time.perf_counter()
        with torch.inference_mode():
            for i in range(0, n_images, args.batch_size):
                clf(batch[i:i + args.batch_size]).softmax(-1)
        return time.perf_counter() - t

    def full() -> float:
        t = time.perf_counter()
        label_scores(clf, x, masks, labels, steps=args.steps, batch_size=args.batch_size)
        return time.perf_counter() - t

    reference()  # warm-up
    ref_times, full_times = [], []
    for _ in range(args.repeats):  # interleaved, so a load change hits both
        ref_times.append(reference())
        full_times.append(full())
    ref, tot = min(ref_times), min(full_times)
    print(f"classifier {args.classifier}, {args.labels} labels x {args.steps + 1} points = {n_images} forwards, "
          f"batch {args.batch_size}, {torch.get_num_threads()} threads")
    print(f"bare forwards (one batch loop):       {ref:.2f} s  ({1000 * ref / n_images:.1f} ms/image)")
    print(f"completeness + soundness, all labels: {tot:.2f} s")
    print(f"ratio {tot / ref:.2f} (target <= 1.2); runs: ref {[round(v, 2) for v in ref_times]}, "
          f"full {[round(v, 2) for v in full_times]}")


if __name__ == "__main__":
    main()
