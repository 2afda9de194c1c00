"""The one plug-in mechanism: a duplicate name raises, an unknown one lists the known ones, options are validated."""
from dataclasses import dataclass

import pytest

from saliency_core.options import OptionError, check_options, option
from saliency_core.registry import Registry, RegistryError


@dataclass(frozen=True)
class _Opts:
    size: int = option(3, help="a size", low=1, high=10)

    def __post_init__(self) -> None:
        check_options(self, "thing 'box'")


def test_register_create_list_unregister():
    reg: Registry = Registry("thing")
    reg.register("box", config=_Opts, colour="red")(lambda o: ("box", o.size))
    reg.add("plain", lambda: "plain")
    assert reg.list() == ["box", "plain"] and "box" in reg and len(reg) == 2
    assert reg.create("box", size=7) == ("box", 7) and reg.create("plain") == "plain"
    assert reg.get("box").attrs["colour"] == "red" and reg.get("box").colour == "red"
    reg.unregister("box")
    assert reg.list() == ["plain"]


def test_duplicate_name_raises_and_keeps_the_first():
    reg: Registry = Registry("thing")
    first = reg.add("a", lambda: 1)
    with pytest.raises(RegistryError, match="thing 'a' is already registered"):
        reg.add("a", lambda: 2)
    assert reg.get("a") is first and reg.create("a") == 1


def test_unknown_name_and_bad_options_are_one_clear_line():
    reg: Registry = Registry("thing")
    reg.register("box", config=_Opts)(lambda o: o)
    reg.add("plain", lambda: 0)
    with pytest.raises(RegistryError, match=r"unknown thing 'ball' \(choose from box, plain\)"):
        reg.create("ball")
    with pytest.raises(OptionError, match="unknown option 'colour' \\(options: size\\)"):
        reg.create("box", colour=1)
    with pytest.raises(OptionError, match="option 'size' must be a whole number >= 1 and <= 10, got 11"):
        reg.create("box", size=11)
    with pytest.raises(RegistryError, match="takes no options"):
        reg.create("plain", size=1)


def test_a_preset_its_own_dataclass_refuses_fails_at_registration():
    reg: Registry = Registry("thing")
    with pytest.raises(OptionError, match="size"):
        reg.register("box", config=_Opts, defaults={"size": 0})(lambda o: o)
    assert "box" not in reg


def test_builtin_modules_register_on_first_use():
    from saliency_core.methods import METHODS

    assert {"masker", "fido", "grad-cam", "rise", "random"} <= set(METHODS.list())
