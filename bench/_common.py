"""Helpers shared by the bench/ scripts: images from the shared set, method specs, output folders."""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any, Iterator

import torch

DEFAULT_IMAGES = str(Path(__file__).resolve().parents[2] / "shared" / "data" / "imagenet-samples" / "labels.csv")


def load_images(source: str, classifier, limit: int | None, split: str = "val", size: int = 224, seed: int = 0,
                normalise: bool = True, shuffle_seed: int | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """N x 3 x size x size images (resize 256/224 + centre crop; normalised for the classifier unless
    ``normalise`` is False, then in [0, 1]), labels and names.

    ``split``: all, or the class-disjoint val/train part that ``saliency train`` uses (seed 0, 1/8).
    """
    from saliency_core.datasets import ImageDataset, class_disjoint_split, eval_transform, read_samples

    samples = read_samples(source)
    if split != "all":
        train, val = class_disjoint_split(samples, 0.125, seed)
        samples = val if split == "val" else train
    if shuffle_seed is not None:  # a random subset (balanced over the class range) instead of the first N
        import random

        samples = list(samples)
        random.Random(shuffle_seed).shuffle(samples)
    samples = samples[:limit] if limit else samples
    ds = ImageDataset(samples, eval_transform(size), cache=False)
    xs, ys = zip(*(ds[i] for i in range(len(ds))))
    x = torch.stack(xs)
    x = classifier.preprocessing.normalize(x) if normalise else x
    return x, torch.tensor(ys), [Path(s.path).stem for s in samples]


def build_method(spec: str):
    """(display name, method) from a spec NAME[:key=value...] as `saliency evaluate` takes it."""
    from saliency_core.evaluate.runner import parse_method_spec
    from saliency_core.methods.base import create_method

    s = parse_method_spec(spec)
    return s.display, create_method(s.name, **s.options)


def write_plot(fig, path: Path) -> None:
    """A plotly figure as a stand-alone offline HTML file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.write_html(str(path), include_plotlyjs=True)


def markdown_table(df, floatfmt: str = ".3f") -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(str(c) for c in cols) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        cells = [format(v, floatfmt) if isinstance(v, float) else str(v) for v in r.tolist()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def interleaved(fns: list, repeats: int) -> list[float]:
    """Median seconds of each of ``fns``, called in turn ``repeats`` times (after one warm-up round)."""
    for fn in fns:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, ts in zip(fns, times):
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
    return [statistics.median(ts) for ts in times]


def parse_bench_args(parser: "argparse.ArgumentParser") -> "argparse.Namespace":
    """Add ``--json``, parse, refuse a ``--json`` path that exists (results are never overwritten) and give torch
    the ``--threads`` the parser declares."""
    parser.add_argument("--json", default=None, help="write every figure to this file (refused if it exists)")
    args = parser.parse_args()
    if args.json and Path(args.json).exists():
        parser.error(f"{args.json} exists: give another --json path (results are never overwritten)")
    torch.set_num_threads(args.threads)
    return args


def photos_and_top1(classifier, x: torch.Tensor) -> Iterator[tuple[torch.Tensor, Any, int]]:
    """For each normalised photo of ``x``: (1 x 3 x H x W photo, its clean ClassifierOutput, its top-1 class), the
    class the fixed-area benches explain (unlabelled photos would do)."""
    for i in range(len(x)):
        xi = x[i:i + 1]
        with torch.no_grad():
            clean = classifier.forward_features(xi)
        yield xi, clean, int(clean.logits.argmax())


def held_out_photos(parser: "argparse.ArgumentParser", limit: int, threads: int
                    ) -> tuple["argparse.Namespace", Any, torch.Tensor, list[str]]:
    """Add ``--images``, ``--limit`` and ``--threads`` (these defaults) to ``parser``, parse it as
    :func:`parse_bench_args` does, and load the default classifier and the first ``--limit`` held-out photos:
    (args, classifier, N x 3 x 224 x 224 normalised photos, their names)."""
    from saliency_core.classifiers import load_classifier

    parser.add_argument("--images", default=DEFAULT_IMAGES)
    parser.add_argument("--limit", type=int, default=limit)
    parser.add_argument("--threads", type=int, default=threads)
    args = parse_bench_args(parser)
    clf = load_classifier()
    x, _, names = load_images(args.images, clf, args.limit)
    return args, clf, x, names
