"""``saliency explain IMAGE... [--method NAME] ...``: write masks, views and result.json per image."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tqdm.auto import tqdm


def parse_options(pairs: list[str]) -> dict:
    """``key=value`` pairs -> dict, values parsed as JSON when they can be (numbers, true, lists)."""
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise ValueError(f"option '{pair}' must look like key=value")
        key, value = pair.split("=", 1)
        try:
            out[key.strip().replace("-", "_")] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip().replace("-", "_")] = value
    return out


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("explain", help="explain images with a saliency method",
                       description="Explain images: writes DIR/<image stem>/ with mask.npy, overlay.png, "
                                   "masked_in.png, masked_out.png, infilled.png and result.json.")
    p.add_argument("images", nargs="*", help="image files")
    p.add_argument("--method", default="masker", help="method name (see --list-methods); default: masker")
    p.add_argument("--checkpoint", default=None, help="masker checkpoint (default: the shipped FIX masker)")
    p.add_argument("--infiller", default="blur", help="infiller of the infilled view (gray, mean, blur, noise, "
                                                      "random-image, local-mean, inpaint)")
    p.add_argument("--labels", default="top1", help="top1, topK (e.g. top5) or class indices ID,ID,...")
    p.add_argument("--option", "-o", action="append", default=[], metavar="KEY=VALUE",
                   help="method option, repeatable (e.g. -o steps=100 -o tv_weight=0.01)")
    p.add_argument("--out", default="explanations", help="output folder (default: explanations)")
    p.add_argument("--classifier", default="efficientnet_lite0", help="efficientnet_lite0, resnet50, "
                                                                      "timm:<arch>, torchvision:<arch>")
    p.add_argument("--classifier-weights", default=None, help="local weights file (all but the default)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: cpu)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--list-methods", action="store_true", help="list the methods and exit")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from saliency_core.classifiers import load_classifier
    from saliency_core.explanation import ExplainConfig, explain, with_seed, write_explanation
    from saliency_core.images.loading import ImageLoadError, load_image
    from saliency_core.methods.base import create_method, method_entries, method_entry

    if args.list_methods:
        for name, entry in method_entries().items():
            print(f"{name:24s} {entry.summary}")
            shown = [o for o in entry.options() if o.shown]
            if shown:
                print(" " * 25 + "options: " + ", ".join(f"{o.name}={o.default}" for o in shown))
        return 0
    if not args.images:
        raise ValueError("give at least one image file (or --list-methods)")
    options = parse_options(args.option)
    if args.checkpoint:
        options["checkpoint"] = args.checkpoint
    config = ExplainConfig(method=args.method, method_options=options, labels=args.labels,
                           infiller=args.infiller, seed=args.seed)
    classifier = load_classifier(args.classifier, args.classifier_weights, device=args.device)
    method = create_method(config.method, **with_seed(method_entry(config.method), config.method_options, args.seed))
    out = Path(args.out)
    failures = 0
    used: set[str] = set()
    for path in tqdm(args.images, desc="explaining", unit="image", disable=len(args.images) < 2):
        stem = Path(path).stem
        name = stem if stem not in used else f"{stem}_{len(used)}"
        used.add(name)
        try:
            loaded = load_image(path)
            expl = explain(loaded, config, classifier=classifier, method=method)
            folder = write_explanation(expl, out / name)
        except (ImageLoadError, ValueError, FloatingPointError) as exc:
            failures += 1
            tqdm.write(f"error: {exc}", file=sys.stderr)
            continue
        top = expl.predictions["original"][0]
        kept = expl.predictions["masked_in"][0]
        tqdm.write(f"{path}: {top.name} ({top.probability:.1%}); masked-in says {kept.name} "
                   f"({kept.probability:.1%}); mask area {expl.masks[0].mean():.1%}; "
                   f"{expl.timings['total_s']:.2f} s -> {folder}")
        for note in expl.notes:
            tqdm.write(f"  note: {note}")
    if failures:
        print(f"{failures} of {len(args.images)} images failed", file=sys.stderr)
    return 1 if failures == len(args.images) else 0
