"""``saliency explain IMAGE... [--method NAME] ...``: write masks, views and result.json per image."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from saliency_core.cli import COMMANDS
from saliency_core.cli.flags import add_option_flag, flag_values
from saliency_core.explain_config import ExplainConfig
from saliency_core.options import declared_options, parse_pairs

#: The fields of :class:`ExplainConfig` that are flags (defaults, help and accepted values from their declarations).
FLAGS = ("method", "infiller", "labels", "seed")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("explain", help=COMMANDS["explain"],
                       description="Explain images: writes DIR/<image stem>/ with mask.npy, overlay.png, "
                                   "masked_in.png, masked_out.png, infilled.png and result.json.")
    p.add_argument("images", nargs="*", help="image files")
    declared = {o.name: o for o in declared_options(ExplainConfig)}  # defaults and help declared once, there

    def flag(name: str) -> None:
        add_option_flag(p, declared[name])

    flag("method")
    p.add_argument("--checkpoint", default=None, help="masker checkpoint (default: the shipped FIX masker)")
    flag("infiller")
    flag("labels")
    p.add_argument("--option", "-o", action="append", default=[], metavar="KEY=VALUE",
                   help="method option, repeatable (e.g. -o steps=100 -o tv_weight=0.01)")
    p.add_argument("--out", default="explanations", help="output folder (default: explanations)")
    p.add_argument("--classifier", default="efficientnet_lite0", help="efficientnet_lite0, resnet50, "
                                                                      "timm:<arch>, torchvision:<arch>")
    p.add_argument("--classifier-weights", default=None, help="local weights file (all but the default)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: cpu)")
    flag("seed")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an image's existing output folder (default: refuse, so nothing is lost)")
    p.add_argument("--list-methods", action="store_true", help="list the methods and their options, and exit")
    p.add_argument("--list-infillers", action="store_true", help="list the infillers and their options, and exit")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from saliency_core.classifiers import load_classifier
    from saliency_core.explanation import check_output, explain, write_explanation
    from saliency_core.seeding import with_seed
    from saliency_core.images.loading import ImageLoadError, load_image
    from saliency_core.methods.base import create_method, method_entries, method_entry

    if args.list_methods or args.list_infillers:  # the registries: the work starts here (they import torch)
        from saliency_core.infill.base import INFILLERS

        for name, entry in (method_entries() if args.list_methods else INFILLERS.entries()).items():
            print(f"{name:24s} {entry.summary}")
            shown = [o for o in entry.options() if o.shown]
            if shown:
                print(" " * 25 + "options: " + ", ".join(f"{o.name}={o.default}" for o in shown))
        return 0
    if not args.images:
        raise ValueError("give at least one image file (or --list-methods)")
    vars(args).update(flag_values(ExplainConfig, {name: getattr(args, name) for name in FLAGS}))
    options = parse_pairs(args.option, "-o")
    if args.checkpoint:
        options["checkpoint"] = args.checkpoint
        if args.method == "masker":  # a checkpoint of a kind another method reads (per-label, conditional) picks it
            from saliency_core.methods.trained import method_for_checkpoint

            args.method = method_for_checkpoint(args.checkpoint)
    config = ExplainConfig(method=args.method, method_options=options, labels=args.labels,
                           infiller=args.infiller, seed=args.seed)
    classifier = load_classifier(args.classifier, args.classifier_weights, device=args.device)
    method = create_method(config.method, **with_seed(method_entry(config.method), config.method_options, args.seed))
    out = Path(args.out)
    failures: list[str] = []
    images = list(dict.fromkeys(args.images))  # the same file twice is explained once
    names = output_names(images)
    for path in tqdm(images, desc="explaining", unit="image", disable=len(images) < 2):
        try:
            check_output(out / names[path], args.overwrite)  # refused before any work is done
            loaded = load_image(path)
            expl = explain(loaded, config, classifier=classifier, method=method)
            folder = write_explanation(expl, out / names[path], overwrite=args.overwrite)
        except (ImageLoadError, ValueError, FloatingPointError, OSError) as exc:
            failures.append(str(path))
            tqdm.write(f"error: {exc}", file=sys.stderr)
            continue
        top = expl.predictions["overlay"][0]
        kept = expl.predictions["masked_in"][0]
        tqdm.write(f"{path}: {top.name} ({top.probability:.1%}); masked-in says {kept.name} "
                   f"({kept.probability:.1%}); mask area {expl.masks[0].mean():.1%}; "
                   f"{expl.timings['total_s']:.2f} s -> {folder}")
        for note in expl.notes:
            tqdm.write(f"  note: {note}")
    if failures:
        print(f"{len(failures)} of {len(images)} images failed: {', '.join(failures[:5])}"
              + (" ..." if len(failures) > 5 else ""), file=sys.stderr)
        return 1
    return 0


def output_names(paths: list[str]) -> dict[str, str]:
    """A distinct output folder name per image: its stem, or ``<stem>_<n>`` with the first n that no other
    image's stem or name takes (``a/x.jpg x_2.jpg b/x.jpg`` -> x, x_2, x_3)."""
    stems = [Path(p).stem or "image" for p in paths]
    taken = set(stems)
    out: dict[str, str] = {}
    used: set[str] = set()
    for path, stem in zip(paths, stems):
        if path in out:
            continue
        name, n = stem, 1
        while name in used or (name != stem and name in taken):
            n += 1
            name = f"{stem}_{n}"
        used.add(name)
        out[path] = name
    return out
