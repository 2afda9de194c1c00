"""``saliency evaluate --images DIR|CSV --methods NAME[,NAME...]``: metrics tables and an HTML report."""
from __future__ import annotations

import argparse
import sys

from saliency_core.cli import COMMANDS
from saliency_core.cli.flags import add_option_flag, flag_values
from saliency_core.evaluate.config import EvalConfig
from saliency_core.options import declared_options


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate", help=COMMANDS["evaluate"],
        description="Evaluate methods: insertion/deletion AUC, completeness and soundness (Gupta et al.), "
                    "Saliency Metric, mask statistics, masked-view accuracy, WSOL (--boxes) and PxAP "
                    "(--pixel-masks). Writes per_image.jsonl/.csv, per_label.csv, aggregate.csv/.json, "
                    "failures.csv and report.html into --out; a rerun with the same settings resumes. Exits 1 when "
                    "any image failed (each one is named, with the reason, in every output).")
    declared = {o.name: o for o in declared_options(EvalConfig)}  # defaults and help declared once, there

    flags: list[str] = []

    def flag(name: str) -> None:
        add_option_flag(p, declared[name])
        flags.append(name)

    add_option_flag(p, declared["images"], required=True)
    p.add_argument("--methods", required=True,
                   help="comma-separated method specs NAME[:key=value...], e.g. "
                        "masker,grad-cam,rise:num_masks=500,masker:checkpoint=checkpoints/ca_lite0.safetensors")
    flag("labels")
    flag("out")
    flag("boxes")
    flag("pixel_masks")
    flag("limit")
    flag("split")
    flag("steps")
    flag("eps1")
    flag("eps2")
    p.add_argument("--restrict-labels", default=None,
                   help="ID,ID,...: probabilities from a softmax over these labels only (Gupta's ImageNet runs)")
    p.add_argument("--no-deletion", action="store_true", help="skip deletion curves")
    p.add_argument("--no-saliency-metric", action="store_true", help="skip the Saliency Metric")
    p.add_argument("--no-masked-accuracy", action="store_true", help="skip masked-view accuracy")
    flag("infiller")
    p.add_argument("--no-fixed-area", action="store_true",
                   help="skip the fixed-area scores (top-a regions kept / removed, a = 0.05, 0.1, 0.2, 0.4)")
    flag("fixed_area_fill")
    p.add_argument("--extra-classifier", action="append", default=[], metavar="NAME[=WEIGHTS]",
                   help="another classifier for the masked-view accuracy check (repeatable)")
    flag("classifier")
    flag("classifier_weights")
    flag("device")
    flag("seed")
    p.add_argument("--no-resume", action="store_true", help="start again even if --out holds results")
    p.set_defaults(handler=run, flags=tuple(flags))


def run(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from saliency_core.evaluate.runner import evaluate
    from saliency_core.evaluate.tables import fixed_area_table, main_table

    vars(args).update(flag_values(EvalConfig, {name: getattr(args, name) for name in args.flags}))
    restrict = None
    if args.restrict_labels:
        from saliency_core.labels import LabelSpecError, parse_labels

        try:
            restrict = list(parse_labels(args.restrict_labels).ids)
        except LabelSpecError:
            raise ValueError("--restrict-labels must be comma-separated class indices") from None
    cfg = EvalConfig(images=args.images, methods=args.methods, labels=args.labels, out=args.out, boxes=args.boxes,
                     pixel_masks=args.pixel_masks, classifier=args.classifier,
                     classifier_weights=args.classifier_weights, extra_classifiers=args.extra_classifier,
                     steps=args.steps, eps1=args.eps1, eps2=args.eps2, restrict_labels=restrict,
                     deletion=not args.no_deletion, saliency_metric=not args.no_saliency_metric,
                     masked_accuracy=not args.no_masked_accuracy, infiller=args.infiller, limit=args.limit,
                     fixed_area=not args.no_fixed_area, fixed_area_fill=args.fixed_area_fill,
                     split=args.split, device=args.device, seed=args.seed, resume=not args.no_resume)
    bar = tqdm(total=1000, desc="evaluating", unit="‰", bar_format="{l_bar}{bar}| {elapsed}<{remaining} {postfix}")

    def progress(fraction: float, message: str) -> None:
        bar.n = int(round(fraction * 1000))
        bar.set_postfix_str(message, refresh=False)
        bar.refresh()

    try:
        result = evaluate(cfg, progress=progress)
    finally:
        bar.close()
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for failure in result.failures:
        print(f"failed: {failure.line}", file=sys.stderr)
    print(main_table(result.aggregate))
    if fixed_area_table(result.aggregate):
        print("\nFixed area (mean [95 % bootstrap interval over images]):\n" + fixed_area_table(result.aggregate))
    print(f"wrote {result.out}/aggregate.csv, per_image.csv, per_label.csv, failures.csv and {result.report}")
    if result.summary:
        print(result.summary)  # exit 1, as `saliency explain` does when an image failed
        return 1
    return 0 if result.records else 1
