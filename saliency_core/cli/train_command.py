"""``saliency train [--config run.yaml] [--FIELD VALUE ...]``: train a masker (FIX or CA).

Every field of :class:`saliency_core.train.config.TrainConfig` is a flag (``--lambda-area-out 15``,
``--stages 4,5``, ``--no-augment``); flags override the YAML file, which overrides the defaults.
The resolved config is written to ``<out>/config.yaml``. Several GPUs or machines:
``torchrun --nproc_per_node=N -m saliency_core.cli train --config run.yaml``.
"""
from __future__ import annotations

import argparse
import sys
import types
import typing
from dataclasses import MISSING, fields
from typing import Any, Callable

from saliency_core.train.config import TrainConfig

EXAMPLES = """examples:
  saliency train --data ../shared/data/imagenet-samples/labels.csv --out runs/fix --epochs 8 --batch-size 16
  saliency train --mode ca --pool-strategy L100 --out runs/ca
  saliency train --config runs/fix/config.yaml --epochs 12        # resume/extend a run
  saliency train --objective MaxClass+MaxEnt --stages 3 --few-shot-per-class 10
  torchrun --nproc_per_node=4 -m saliency_core.cli train --config run.yaml   # 4 GPUs (DDP)
"""


def _none_or(conv):
    def parse(text: str):
        return None if text.strip().lower() in ("none", "null", "") else conv(text)

    parse.__name__ = getattr(conv, "__name__", "value")
    return parse


def _parse_bool(text: str) -> bool:
    t = text.strip().lower()
    if t in ("1", "true", "yes", "on"):
        return True
    if t in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got '{text}'")


def _parse_stages(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(s) for s in text.replace(" ", "").split(",") if s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"stages must look like 4,5 (got '{text}')") from None


def _comma_list(item: type) -> Callable[[str], tuple]:
    def parse(text: str) -> tuple:
        try:
            return tuple(item(v) for v in text.replace(" ", "").split(",") if v)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of {item.__name__}, got '{text}'") \
                from None
    return parse


def _field_kind(tp: Any) -> tuple[Any, bool]:
    """(base type, optional?) of a dataclass field annotation."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0], True
    return tp, False


def add_config_flags(parser: argparse.ArgumentParser, cls: type = TrainConfig, skip: frozenset = frozenset()) -> None:
    """One flag per field of the config dataclass ``cls`` (default SUPPRESS, so only given flags override)."""
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        base, optional = _field_kind(hints[f.name])
        default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
        help_text = f"{f.metadata.get('help', '')} (default: {default})"
        kw: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": help_text}
        if base is bool and not optional:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
        elif base is bool:
            parser.add_argument(flag, type=_none_or(_parse_bool), metavar="BOOL", **kw)
        elif f.name == "stages":
            parser.add_argument(flag, type=_parse_stages, metavar="N,N", **kw)
        elif typing.get_origin(base) is tuple:
            item = (typing.get_args(base) or (str,))[0]
            parser.add_argument(flag, type=_comma_list(item), metavar="A,B", **kw)
        elif f.name == "infiller_options":
            parser.add_argument(flag, nargs="*", metavar="KEY=VALUE", **kw)
        else:
            conv = {int: int, float: float, str: str}.get(base, str)
            parser.add_argument(flag, type=_none_or(conv) if optional else conv,
                                metavar=conv.__name__.upper(), **kw)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a masker (FIX or classifier-agnostic)",
                       description="Train a Phang et al. masker for a classifier: FIX (frozen classifier) or CA "
                                   "(classifier-agnostic, with a pool of past classifiers). Writes "
                                   "<out>/config.yaml, steps.csv, epochs.csv, tb/, state.pt and masker.safetensors; "
                                   "re-running the same command resumes after a kill.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=None, metavar="YAML", help="a YAML file of config fields")
    p.add_argument("--print-config", action="store_true", help="print the resolved config as YAML and exit")
    p.add_argument("--kind", choices=("masker", "label", "conditional"), default="masker",
                   help="masker: the Phang et al. masker (FIX or CA); label: the per-label masker (FIX or CA with "
                        "--mode; its own objectives: --objective insertion|calibrated|gupta); conditional: one masker "
                        "over a space of objectives, infillers, TV weights and upsampling factors (FIX)")
    add_config_flags(p)
    from saliency_core.train.label_config import LabelMaskerTrainConfig

    add_config_flags(p.add_argument_group("per-label masker (--kind label)"), LabelMaskerTrainConfig,
                     skip=frozenset(f.name for f in fields(TrainConfig)))
    from saliency_core.train.conditional import ConditionalTrainConfig

    add_config_flags(p.add_argument_group("conditional masker (--kind conditional)"), ConditionalTrainConfig,
                     skip=frozenset(f.name for f in fields(TrainConfig)) | frozenset(
                         f.name for f in fields(LabelMaskerTrainConfig)))
    p.set_defaults(handler=run)


def resolve_config(args: argparse.Namespace, cls: type = TrainConfig) -> TrainConfig:
    """Defaults <- YAML file <- flags."""
    base = cls.from_yaml(args.config).to_dict() if args.config else {}
    names = {f.name for f in fields(cls)}
    overrides = {k: v for k, v in vars(args).items() if k in names}
    if "infiller_options" in overrides:
        from saliency_core.cli.explain_command import parse_options

        overrides["infiller_options"] = parse_options(overrides["infiller_options"] or [])
    if "mode" in overrides and "lambda_area_out" not in overrides and args.config:
        base.pop("lambda_area_out", None)  # a resolved YAML's mode default must not survive a mode change
    return cls.from_dict({**base, **overrides})


def _refuse_other_kinds_flags(args: argparse.Namespace) -> None:
    """A flag of another masker kind's config (``--objectives`` without ``--kind conditional``) is an error, not
    silently ignored."""
    from saliency_core.train.conditional import ConditionalTrainConfig
    from saliency_core.train.label_config import LabelMaskerTrainConfig

    cls = {"label": LabelMaskerTrainConfig, "conditional": ConditionalTrainConfig}.get(args.kind, TrainConfig)
    every = {f.name for c in (TrainConfig, LabelMaskerTrainConfig, ConditionalTrainConfig) for f in fields(c)}
    foreign = sorted(set(vars(args)) & every - {f.name for f in fields(cls)})
    if foreign:
        raise ValueError(f"--{foreign[0].replace('_', '-')} is not an option of --kind {args.kind}")


def run(args: argparse.Namespace) -> int:
    _refuse_other_kinds_flags(args)
    if args.kind == "label":
        from saliency_core.train.label_config import LabelMaskerTrainConfig

        cfg_label = resolve_config(args, LabelMaskerTrainConfig)
        if args.print_config:
            sys.stdout.write(cfg_label.to_yaml())
            return 0
        from saliency_core.train.label_masker import train_label_masker

        print(train_label_masker(cfg_label))
        return 0
    if args.kind == "conditional":
        from saliency_core.train.conditional import ConditionalTrainConfig, train_conditional

        cfg_c = resolve_config(args, ConditionalTrainConfig)
        if args.print_config:
            sys.stdout.write(cfg_c.to_yaml())
            return 0
        print(train_conditional(cfg_c))
        return 0
    cfg = resolve_config(args)
    if args.print_config:
        sys.stdout.write(cfg.to_yaml())
        return 0
    from saliency_core.train.masker import train

    print(train(cfg))
    return 0
