"""The one plug-in mechanism: a duplicate name raises, an unknown one lists the known ones, options are validated,
traits are declared once per registry and checked at ``register``, masker kinds are classes."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

import pytest
import torch
from torch import nn

from saliency_core.options import OptionError, check_options, option
from saliency_core.registry import Registry, RegistryError, conforms, trait


@dataclass(frozen=True)
class _Opts:
    size: int = option(3, help="a size", low=1, high=10)

    def __post_init__(self) -> None:
        check_options(self, "thing 'box'")


@dataclass(frozen=True)
class _Traits:
    colour: str = trait("grey", help="its colour")
    heavy: bool = trait(False, help="two people lift it")
    weight: float = trait(1.0, help="in kilograms")
    count: int = trait(0, help="how many")
    shape: Literal["cube", "ball"] | None = trait(None, help="its shape")
    labels: tuple[str, ...] = trait((), help="what is written on it")
    sizes: dict[str, int] = trait({}, help="named sizes")
    opener: Callable[[], bool] | None = trait(None, help="opens it")


def _reg() -> Registry:
    return Registry("thing", traits=_Traits)


def test_register_create_list_unregister():
    reg = _reg()
    reg.register("box", config=_Opts, colour="red")(lambda o: ("box", o.size))
    reg.add("plain", lambda: "plain")
    assert reg.list() == ["box", "plain"] and "box" in reg and len(reg) == 2
    assert reg.create("box", size=7) == ("box", 7) and reg.create("plain") == "plain"
    reg.unregister("box")
    assert reg.list() == ["plain"]


def test_traits_are_typed_with_their_declared_defaults():
    reg = _reg()
    reg.add("box", lambda: 0, colour="red", labels=("fragile",))
    entry = reg.get("box")
    assert isinstance(entry.traits, _Traits)
    assert entry.traits.colour == "red" and entry.traits.heavy is False and entry.traits.labels == ("fragile",)
    assert entry.given == {"colour", "labels"}  # what the registration named; the rest are defaults
    # the older reads keep working: attrs (every declared trait) and attribute access
    assert entry.attrs["colour"] == "red" and entry.attrs.get("weight") == 1.0 and entry.colour == "red"
    reg.add("other", lambda: 0)
    reg.get("other").traits.sizes["x"] = 1  # a mutable default is a fresh copy per entry
    assert reg.get("box").traits.sizes == {}
    assert [t.name for t in reg.declared_traits()][:3] == ["colour", "heavy", "weight"]
    assert reg.declared_traits()[1].help == "two people lift it" and reg.declared_traits()[1].default is False


def test_a_misspelt_trait_raises_at_register_naming_it_and_the_declared_ones():
    reg = _reg()
    with pytest.raises(RegistryError) as err:
        reg.register("box", colur="red")
    msg = str(err.value)
    assert msg.startswith("unknown trait 'colur' for thing 'box'; did you mean 'colour'?")
    assert "declared: colour, heavy, weight, count, shape, labels, sizes, opener" in msg and "\n" not in msg
    with pytest.raises(RegistryError, match=r"unknown trait 'zzz' for thing 'box' declared: colour"):
        reg.add("box", lambda: 0, zzz=1)  # no close match: no guess
    assert "box" not in reg  # nothing half-registered


@pytest.mark.parametrize("trait_name, value, words", [
    ("heavy", "yes", "trait 'heavy' must be bool, got 'yes' (str)"),
    ("heavy", 1, "trait 'heavy' must be bool, got 1 (int)"),
    ("count", True, "trait 'count' must be int, got True (bool)"),
    ("count", 1.5, "trait 'count' must be int"),
    ("weight", "2", "trait 'weight' must be float"),
    ("shape", "pyramid", "trait 'shape' must be 'cube' or 'ball' or None, got 'pyramid'"),
    ("labels", ["a"], "trait 'labels' must be a tuple of str, got ['a'] (list)"),
    ("labels", ("a", 2), "trait 'labels' must be a tuple of str"),
    ("sizes", {"a": "big"}, "trait 'sizes' must be a dict of str to int"),
    ("opener", True, "trait 'opener' must be a callable or None"),
])
def test_a_trait_of_the_wrong_type_raises_at_register(trait_name, value, words):
    reg = _reg()
    with pytest.raises(RegistryError) as err:
        reg.add("box", lambda: 0, **{trait_name: value})
    assert str(err.value).startswith("thing 'box': ") and words in str(err.value)
    assert "box" not in reg


def test_good_values_of_every_declared_type_pass():
    reg = _reg()
    reg.add("box", lambda: 0, heavy=True, count=2, weight=3, shape="cube", labels=("a", "b"), sizes={"s": 1},
            opener=lambda: True)
    assert reg.get("box").traits.weight == 3 and reg.get("box").traits.opener() is True
    assert conforms(None, int | None) and not conforms("x", int | None) and conforms(2, float)


def test_a_registry_that_declares_no_traits_refuses_any():
    reg: Registry = Registry("plain thing")
    with pytest.raises(RegistryError, match="unknown trait 'colour' for plain thing 'box' declared: none"):
        reg.add("box", lambda: 0, colour="red")


def test_duplicate_name_raises_and_keeps_the_first():
    reg = _reg()
    first = reg.add("a", lambda: 1)
    with pytest.raises(RegistryError, match="thing 'a' is already registered"):
        reg.add("a", lambda: 2)
    assert reg.get("a") is first and reg.create("a") == 1


def test_unknown_name_and_bad_options_are_one_clear_line():
    reg = _reg()
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
    reg = _reg()
    with pytest.raises(OptionError, match="size"):
        reg.register("box", config=_Opts, defaults={"size": 0})(lambda o: o)
    assert "box" not in reg


def test_builtin_modules_register_on_first_use():
    from saliency_core.methods import METHODS

    assert {"masker", "fido", "grad-cam", "rise", "random"} <= set(METHODS.list())


def test_the_built_in_registrations_read_as_typed_traits():
    import saliency_core as sc
    from saliency_core.evaluate.metrics import METRICS
    from saliency_core.methods.base import MethodTraits

    rise = sc.method_entry("rise")
    assert isinstance(rise.traits, MethodTraits) and rise.traits.on_request and rise.traits.per_label
    assert rise.traits.takes_area is False and sc.method_entry("random").traits.on_request is False
    assert sc.infiller_entry("blur").traits.static and sc.infiller_entry("none").traits.alias_of == "gray"
    assert METRICS.get("wsol").traits.needs == "boxes" and METRICS.get("deletion").traits.flag == "deletion"
    assert sc.CLASSIFIERS.get("timm").traits.takes_arch and not sc.CLASSIFIERS.get("efficientnet_lite0").traits.needs_weights


# ------------------------------------------------------------------------------------------------ masker kinds
class _Doubler(nn.Module):
    def __init__(self, gain: float) -> None:
        super().__init__()
        self.gain = gain

    def forward(self, stages: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        return torch.sigmoid(self.gain * stages[0].mean(1, keepdim=True))


def test_masker_kinds_are_classes_with_explain_and_fixed_options():
    from saliency_core.maskers.base import MASKER_KINDS, MaskerKind, masker_kind
    from saliency_core.maskers.checkpoint import build_masker
    from saliency_core.maskers.phang import PhangKind, PhangMasker

    phang = masker_kind("phang")
    assert isinstance(phang, PhangKind) and isinstance(phang, MaskerKind) and phang.fixed_options({}) == {}
    net = build_masker("phang", {"stage_channels": [4, 8], "stages": [1, 2]})
    assert isinstance(net, PhangMasker)
    stages = [torch.randn(1, 4, 8, 8), torch.randn(1, 8, 4, 4)]
    masks, per_label = phang.explain(net.eval(), None, stages, None, (16, 16), [3, 5])
    assert masks.shape == (1, 16, 16) and per_label is False
    # the traits repeat the class's methods for callers that read traits
    assert MASKER_KINDS.get("phang").traits.explain == phang.explain
    assert MASKER_KINDS.get("conditional").traits.takes_setting and masker_kind("conditional").takes_setting
    assert masker_kind("label").explain.__func__ is not phang.explain.__func__


def test_a_new_masker_kind_class_and_the_older_function_form(registered):
    from saliency_core.maskers.base import MASKER_KINDS, MaskerKind, masker_kind, register_masker_kind
    from saliency_core.maskers.checkpoint import MaskerCheckpoint, build_masker

    class GainKind(MaskerKind):
        """a test kind: the sigmoid of the first stage's mean times a gain"""

        def build(self, config: dict) -> nn.Module:
            return _Doubler(float(config["gain"]))

        def explain(self, masker, classifier, stages, head, size, labels, **setting):
            return masker(stages, size)[:, 0], False

        def fixed_options(self, config: dict) -> dict:
            return {"gain": config["gain"]}

    stages = [torch.ones(1, 2, 4, 4)]
    try:
        register_masker_kind("test-gain")(GainKind)
        register_masker_kind("test-fn", explain=lambda m, c, s, h, z, lab: (m(s, z)[:, 0] * 0, True),
                             fixed_options=lambda cfg: {"x": 1}, takes_setting=False)(lambda cfg: _Doubler(1.0))
        assert MASKER_KINDS.get("test-gain").summary == "a test kind: the sigmoid of the first stage's mean times a gain"
        ckpt = MaskerCheckpoint(build_masker("test-gain", {"gain": 2.0}), None, {"kind": "test-gain"})
        masks, per_label = ckpt.explain(stages, None, (4, 4), [0])
        assert torch.allclose(masks, torch.full((1, 4, 4), torch.sigmoid(torch.tensor(2.0)).item()))
        assert masker_kind("test-gain").fixed_options({"gain": 3}) == {"gain": 3} and not ckpt.takes_setting
        fn_kind = masker_kind("test-fn")  # the function form, wrapped into a kind
        assert isinstance(fn_kind, MaskerKind) and fn_kind.fixed_options({}) == {"x": 1}
        ckpt = MaskerCheckpoint(build_masker("test-fn", {}), None, {"kind": "test-fn"})
        assert ckpt.explain(stages, None, (4, 4), [0])[1] is True
        with pytest.raises(RegistryError, match="do not pass them"):
            register_masker_kind("test-bad", takes_setting=True)(GainKind)
        with pytest.raises(RegistryError, match="register a MaskerKind subclass"):
            register_masker_kind("test-bad")(lambda cfg: None)
        assert "test-bad" not in MASKER_KINDS
    finally:
        MASKER_KINDS.unregister("test-gain")
        MASKER_KINDS.unregister("test-fn")
