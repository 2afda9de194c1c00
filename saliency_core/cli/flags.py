"""The one flag generator: command-line flags drawn from a config's :func:`~saliency_core.options.option` declarations.

``saliency explain``, ``evaluate`` and ``train masker|label|conditional`` declare no flag's default, help or choices
of their own: :func:`add_option_flag` turns one declared option into one flag (a flag pair ``--x/--no-x`` for a
true/false option, ``KEY=VALUE ...`` for an options dict), and :func:`add_config_flags` does it for every field of a
config. A flag keeps the text it was given; :func:`flag_values` passes it through the one coercer
(:func:`saliency_core.options.coerce_option`), so ``--stages 4,5``, ``--channels-last on`` and ``--max-steps none``
read as they would from a YAML file, and a bad value is one line naming the flag and what it accepts. Nothing here
imports torch: ``--help`` answers at once.
"""
from __future__ import annotations

import argparse
from typing import Any, Iterable

from saliency_core.errors import OptionError
from saliency_core.options import Option, coerce_option, declared_options

_METAVAR = {"int": "INT", "float": "FLOAT", "list": "A,B", "bool": "BOOL"}


def flag_name(name: str) -> str:
    """``lambda_tv`` -> ``--lambda-tv``."""
    return "--" + name.replace("_", "-")


def is_pairs(opt: Option) -> bool:
    """An options dict (``--infiller-options sigma=2 ...``)."""
    return not opt.typed and isinstance(opt.default, dict)


def option_help(opt: Option, default: bool = True) -> str:
    """The option's help, its default and (for numbers with a range and lists) what it accepts, escaped for argparse."""
    extra = [] if opt.default in (None, "") or not default else [f"default: {_shown(opt.default)}"]
    if opt.kind == "list" or (opt.kind in ("int", "float") and (opt.low is not None or opt.high is not None)):
        extra.append(opt.describe())
    text = opt.help + (f" ({'; '.join(extra)})" if extra else "")
    return text.replace("%", "%%")


def _shown(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return ",".join(map(str, value))
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def add_option_flag(parser: argparse.ArgumentParser | argparse._ArgumentGroup, opt: Option, *,
                    suppress: bool = False, required: bool = False) -> None:
    """One flag for one declared option. ``suppress``: an absent flag sets nothing (a YAML file or the config's own
    default decides), else the flag's default is the option's."""
    kw: dict[str, Any] = {"dest": opt.name, "help": option_help(opt, not required), "required": required}
    if not required:
        kw["default"] = argparse.SUPPRESS if suppress else opt.default
    if opt.kind == "bool" and not opt.optional:
        parser.add_argument(flag_name(opt.name), action=argparse.BooleanOptionalAction, **kw)
    elif is_pairs(opt):
        parser.add_argument(flag_name(opt.name), nargs="*", metavar="KEY=VALUE", **kw)
    else:
        metavar = ("{" + ",".join(map(str, opt.choices)) + "}" if opt.kind == "choice"
                   else _METAVAR.get(opt.kind, "TEXT"))
        parser.add_argument(flag_name(opt.name), metavar=metavar, **kw)


def add_config_flags(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type, *,
                     skip: Iterable[str] = (), suppress: bool = True) -> list[str]:
    """One flag per declared option of the config class ``cls`` (in field order, but those in ``skip``); returns
    the names given a flag."""
    skip = set(skip)
    names = []
    for opt in declared_options(cls):
        if opt.name not in skip:
            add_option_flag(parser, opt, suppress=suppress)
            names.append(opt.name)
    return names


def flag_values(cls: type, values: dict[str, Any]) -> dict[str, Any]:
    """Flag values (text as given) coerced by the one coercer against ``cls``'s declarations; a bad one raises a
    ``ValueError`` of one line naming the flag and what it accepts. Names ``cls`` does not declare pass unchanged."""
    from saliency_core.options import parse_pairs

    declared = {o.name: o for o in declared_options(cls)}
    out = {}
    for name, value in values.items():
        opt = declared.get(name)
        if opt is None:
            out[name] = value
        elif is_pairs(opt):
            out[name] = parse_pairs(value or [], flag_name(name))
        else:
            try:
                out[name] = coerce_option(opt, value, flag_name(name))
            except OptionError:
                raise ValueError(f"{flag_name(name)} must be {opt.describe()}, got {value!r}") from None
    return out
