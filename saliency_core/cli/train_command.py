"""``saliency train masker|label|conditional [--config run.yaml] [--FIELD VALUE ...]``: train a masker.

One sub-command per kind of masker, each with the flags of its own config only: ``masker`` (Phang et al., FIX or
CA: :class:`saliency_core.train.config.TrainConfig`), ``label`` (the per-label masker:
:class:`saliency_core.train.label_config.LabelMaskerTrainConfig`) and ``conditional``
(:class:`saliency_core.train.conditional.ConditionalTrainConfig`). Every field of the config is a flag
(``--lambda-area-out 15``, ``--stages 4,5``, ``--no-augment``), drawn from its ``option()`` declaration by the one
flag generator (:mod:`saliency_core.cli.flags`) and read by the one coercer; flags override the YAML file, which
overrides the defaults. The resolved config is written to ``<out>/config.yaml``. Several GPUs or machines:
``torchrun --nproc_per_node=N -m saliency_core.cli train masker --config run.yaml``.

The form before the sub-commands, ``saliency train [--kind masker|label|conditional] [flags]``, still works (every
kind's flags, a flag of another kind refused in one line). A kind's flags are declared only when that kind is
parsed (its config module is imported then, never torch), so ``saliency train --help`` lists the sub-commands and
``saliency train label --help`` only the label masker's flags.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from dataclasses import fields
from typing import Any, NoReturn

from saliency_core.cli.flags import add_config_flags, flag_values

#: kind -> (module, config class, summary)
KINDS = {
    "masker": ("saliency_core.train.config", "TrainConfig",
               "the Phang et al. masker: FIX (frozen classifier) or CA (classifier-agnostic, a pool of past "
               "classifiers)"),
    "label": ("saliency_core.train.label_config", "LabelMaskerTrainConfig",
              "the per-label masker (FIX or CA; objectives insertion, calibrated, gupta)"),
    "conditional": ("saliency_core.train.conditional_config", "ConditionalTrainConfig",
                    "one masker over a space of objectives, infillers, TV weights and upsampling factors (FIX)"),
}

EXAMPLES = """examples:
  saliency train masker --data ../shared/data/imagenet-samples/labels.csv --out runs/fix --epochs 8 --batch-size 16
  saliency train masker --mode ca --pool-strategy L100 --out runs/ca
  saliency train masker --config runs/fix/config.yaml --epochs 12        # resume/extend a run
  saliency train label --label-map --soundness-weight 2 --out runs/label
  saliency train conditional --out runs/conditional --epochs 6
  torchrun --nproc_per_node=4 -m saliency_core.cli train masker --config run.yaml   # 4 GPUs (DDP)
  saliency train --kind label --config run.yaml                         # the form before sub-commands
"""


#: Fields of a kind's config that are no flag of its sub-command: the conditional masker is FIX only (CA's fields do
#: nothing) and draws its objective, infiller, TV weight and upsampling per image (its config refuses them).
CA_ONLY = frozenset({"mode", "pool_strategy", "pool_size", "pool_save_every", "pool_p_latest", "classifier_loss",
                     "classifier_lr", "classifier_momentum", "classifier_weight_decay"})


def hidden_fields(kind: str) -> frozenset[str]:
    """The fields of ``kind``'s config left out of its sub-command's flags (a YAML file may still hold them)."""
    if kind != "conditional":
        return frozenset()
    module = importlib.import_module(KINDS[kind][0])
    return CA_ONLY | frozenset(getattr(module, "_UNUSED", {}))


def config_class(kind: str) -> type:
    """The config dataclass of a kind of masker (imports its module)."""
    module, name, _ = KINDS[kind]
    return getattr(importlib.import_module(module), name)


class _Parser(argparse.ArgumentParser):
    """A kind's parser: a flag it cannot parse is one line (its 60-80 flags' usage is what ``--help`` is for)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} ('{self.prog} --help' lists the flags)\n")


def _common_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=None, metavar="YAML", help="a YAML file of config fields (a run's config.yaml)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config as YAML and exit")


def kind_parser(kind: str, prog: str) -> argparse.ArgumentParser:
    """The parser of ``saliency train <kind>``: its config's flags only."""
    p = _Parser(prog=prog, description=f"Train {KINDS[kind][2]}. Writes <out>/config.yaml, steps.csv, "
                "epochs.csv (validation on held-out classes), tb/, state.pt and masker.safetensors; "
                "re-running the same command resumes after a kill.",
                epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    _common_flags(p)
    add_config_flags(p, config_class(kind), skip=hidden_fields(kind))
    p.set_defaults(kind=kind, legacy=False)
    return p


def legacy_parser(prog: str) -> argparse.ArgumentParser:
    """``saliency train [--kind K] [flags]``: every kind's flags (before the sub-commands; still accepted)."""
    p = _Parser(prog=prog, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    _common_flags(p)
    p.add_argument("--kind", choices=tuple(KINDS), default="masker", help="the kind of masker")
    seen: set[str] = set()
    for kind in KINDS:
        cls = config_class(kind)
        add_config_flags(p.add_argument_group(kind), cls, skip=seen)
        seen |= {f.name for f in fields(cls)}
    p.set_defaults(legacy=True)
    return p


class TrainParser(argparse.ArgumentParser):
    """``saliency train``'s parser: it hands the arguments to the chosen kind's parser, built only then."""

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        args = list(sys.argv[1:] if args is None else args)
        if args and args[0] in KINDS:
            parser = kind_parser(args[0], f"{self.prog} {args[0]}")
            args = args[1:]
        elif any(a in ("-h", "--help") for a in args):
            self.print_help()
            self.exit()
        else:
            parser = legacy_parser(self.prog)
        ns = parser.parse_args(args, namespace)
        ns.handler = run
        return ns, []

    def error(self, message: str) -> NoReturn:  # pragma: no cover - the kind's parser reports errors
        super().error(message)


def register(sub: argparse._SubParsersAction) -> None:
    kinds = "\n".join(f"  {k:<12} {summary}" for k, (_, _, summary) in KINDS.items())
    p = sub.add_parser("train", help="train a masker (Phang et al. FIX/CA, per-label or conditional)",
                       usage="saliency train {masker,label,conditional} [--config YAML] [--FIELD VALUE ...]",
                       description="Train a masker for a classifier. One sub-command per kind of masker; "
                                   "'saliency train <kind> --help' lists its flags.\n\nkinds:\n" + kinds,
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.__class__ = TrainParser  # argparse builds sub-command parsers itself; this one defers to the kind's parser
    p.set_defaults(handler=run)


def resolve_config(args: argparse.Namespace, cls: type | None = None) -> Any:
    """Defaults <- YAML file <- flags, for the config class of ``args.kind`` (or ``cls``)."""
    cls = cls or config_class(getattr(args, "kind", "masker"))
    base = cls.from_yaml(args.config).to_dict() if args.config else {}
    names = {f.name for f in fields(cls)}
    overrides = flag_values(cls, {k: v for k, v in vars(args).items() if k in names and k != "kind"})
    if "mode" in overrides and "lambda_area_out" not in overrides and args.config:
        base.pop("lambda_area_out", None)  # a resolved YAML's mode default must not survive a mode change
    return cls.from_dict({**base, **overrides})


def _refuse_other_kinds_flags(args: argparse.Namespace) -> None:
    """In the form before sub-commands, a flag of another kind's config (``--objectives`` without ``--kind
    conditional``) is an error, not silently ignored."""
    own = {f.name for f in fields(config_class(args.kind))}
    every = {f.name for k in KINDS for f in fields(config_class(k))}
    foreign = sorted(set(vars(args)) & every - own)
    if foreign:
        raise ValueError(f"--{foreign[0].replace('_', '-')} is not an option of --kind {args.kind}")


def run(args: argparse.Namespace) -> int:
    if getattr(args, "legacy", False):
        _refuse_other_kinds_flags(args)
    cfg = resolve_config(args)
    if args.print_config:
        sys.stdout.write(cfg.to_yaml())
        return 0
    if args.kind == "label":
        from saliency_core.train.label_masker import train_label_masker as train
    elif args.kind == "conditional":
        from saliency_core.train.conditional import train_conditional as train
    else:
        from saliency_core.train.masker import train
    print(train(cfg))
    return 0
