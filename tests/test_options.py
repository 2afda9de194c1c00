"""Option metadata declared on config fields: kinds inferred, values coerced and checked, aliases accepted."""
from dataclasses import dataclass

import pytest

from saliency_core.options import OptionError, build_config, check_options, declared_options, option


@dataclass
class Cfg:
    steps: int = option(10, help="steps", low=1, high=100, main=True)
    weight: float = option(0.5, help="a weight", low=0.0, low_open=True, aliases=("w",))
    mode: str = option("a", help="a mode", choices=("a", "b"))
    factor: int = option(4, help="a factor", choices=(1, 2, 4, 8))
    flag: bool = option(True, help="a flag")
    name: str | None = option(None, help="a name")
    hidden: object = option(None, help="filled by code", shown=False)

    def __post_init__(self) -> None:
        check_options(self, "test")


def test_kinds_defaults_and_shown():
    opts = {o.name: o for o in declared_options(Cfg, {"steps": 20})}
    assert [opts[n].kind for n in ("steps", "weight", "mode", "factor", "flag", "name")] == \
        ["int", "float", "choice", "choice", "bool", "text"]
    assert opts["steps"].default == 20 and opts["steps"].main and opts["name"].optional
    assert not opts["hidden"].shown and opts["weight"].describe() == "a number > 0"


def test_values_from_the_command_line_are_coerced():
    cfg = build_config(Cfg, {"steps": "12", "w": "0.25", "factor": "8", "flag": "false"})
    assert (cfg.steps, cfg.weight, cfg.factor, cfg.flag) == (12, 0.25, 8, False)


@pytest.mark.parametrize("options, message", [
    ({"steps": 0}, "option 'steps' must be a whole number >= 1 and <= 100, got 0"),
    ({"steps": 2.5}, "option 'steps' must be a whole number"),
    ({"weight": 0.0}, "option 'weight' must be a number > 0, got 0.0"),
    ({"weight": float("nan")}, "option 'weight' must be a number"),
    ({"mode": "c"}, "option 'mode' must be one of a, b, got 'c'"),
    ({"factor": 3}, "option 'factor' must be one of 1, 2, 4, 8, got 3"),
    ({"flag": "maybe"}, "option 'flag' must be true or false"),
    ({"stepz": 1}, "unknown option 'stepz'"),
])
def test_bad_values_name_the_option_and_what_is_allowed(options, message):
    with pytest.raises(OptionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_config(Cfg, options)


def test_direct_construction_is_checked_too():
    with pytest.raises(OptionError, match="steps"):
        Cfg(steps=-1)


def test_a_preset_component_options_do_not_follow_the_user_to_another_component():
    """``meaningful-perturbation -o infiller=noise`` failed with "infiller 'noise': unknown option 'sigma'": the
    preset's blur sigma was carried to the noise infiller."""
    from saliency_core.options import with_defaults

    preset = {"infiller": "blur", "infiller_options": {"sigma": 10.0}, "steps": 300}
    assert with_defaults(preset, {"infiller": "noise"}) == {"infiller": "noise", "steps": 300}
    assert with_defaults(preset, {"infiller": "blur"})["infiller_options"] == {"sigma": 10.0}
    assert with_defaults(preset, {"steps": 5})["infiller_options"] == {"sigma": 10.0}
    assert with_defaults(preset, {"infiller": "noise", "infiller_options": {"std": 0.2}})["infiller_options"] == \
        {"std": 0.2}


@pytest.mark.parametrize("method", ["meaningful-perturbation", "meaningful-perturbation-paper"])
def test_meaningful_perturbation_takes_another_infiller(method):
    from saliency_core.methods import method_entry

    config = method_entry(method).make_config(infiller="noise")
    assert config.infiller == "noise" and config.infiller_options == {}
    assert method_entry(method).make_config().infiller_options == {"sigma": 10.0}


@dataclass
class Lists:
    sizes: tuple[int, ...] = option((4, 5), kind="list", low=1, help="sizes")
    pair: tuple[float, float] = option((0.2, 0.5), kind="list", length=2, low=0.0, high=1.0, high_open=True,
                                       help="a pair")
    words: tuple[str, ...] = option(("a",), kind="list", choices=("a", "b"), help="words")
    limit: int | None = option(None, low=1, help="a limit")
    flag: bool | None = option(None, help="a flag or unset")

    def __post_init__(self) -> None:
        check_options(self, "test")


def test_one_coercer_reads_lists_on_off_and_none():
    """What the train command's own coercers accepted (on/off, ``4,5``, ``none``) is the one coercer's now."""
    cfg = build_config(Lists, {"sizes": "3, 5", "pair": [0, "0.5"], "words": "b,a", "limit": "none", "flag": "on"})
    assert (cfg.sizes, cfg.pair, cfg.words, cfg.limit, cfg.flag) == ((3, 5), (0.0, 0.5), ("b", "a"), None, True)
    assert build_config(Lists, {"flag": "OFF", "limit": "null"}).flag is False
    assert build_config(Lists, {"limit": ""}).limit is None


@pytest.mark.parametrize("options, message", [
    ({"sizes": "4,0"}, "option 'sizes' must be one or more comma-separated values, each a whole number >= 1, got '4,0'"),
    ({"sizes": ""}, "option 'sizes' must be one or more"),
    ({"pair": "0.2"}, "option 'pair' must be 2 comma-separated values, each a number >= 0 and < 1"),
    ({"pair": "0.2,1"}, "option 'pair' must be 2 comma-separated values"),
    ({"words": "a,c"}, "option 'words' must be one or more comma-separated values, each one of a, b"),
    ({"flag": "maybe"}, "option 'flag' must be true or false (also yes/no, on/off, 1/0)"),
])
def test_bad_list_and_flag_values_name_the_option(options, message):
    with pytest.raises(OptionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_config(Lists, options)
