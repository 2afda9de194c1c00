"""docs/architecture.md's three recipes, each proven: a new method, infiller or metric is one file plus its
registration. Each test writes that file into a temporary folder, imports it, and uses the new component
through the public API, the CLI's option parsing and (for the metric) ``saliency evaluate``'s tables."""
from __future__ import annotations

import importlib.util
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from PIL import Image

import saliency_core as sc


def _load(tmp_path: Path, name: str, source: str):
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def plugin(tmp_path):
    """Import a plug-in module; afterwards remove whatever it registered (the suite runs in any order)."""
    before = {reg: set(reg.list()) for reg in _registries()}
    loaded = []

    def load(name: str, source: str):
        loaded.append(name)
        return _load(tmp_path, name, source)

    yield load
    for reg, names in before.items():
        for name in set(reg.list()) - names:
            reg.unregister(name)
    for name in loaded:
        sys.modules.pop(name, None)


def _registries():
    from saliency_core.evaluate.metrics import METRICS

    return [sc.METHODS, sc.INFILLERS, METRICS]


METHOD = '''
    from dataclasses import dataclass

    import torch

    from saliency_core.methods import MethodResult, register_method
    from saliency_core.options import check_options, option


    @dataclass(frozen=True)
    class BandOptions:
        width: float = option(0.5, help="width of the band, as a fraction of the image", low=0.0, low_open=True,
                              high=1.0, main=True)

        def __post_init__(self) -> None:
            check_options(self, "method 'band'")


    @register_method("band", summary="a vertical band in the middle (test plug-in)", config=BandOptions,
                     group="Control", per_label=False, on_request=False)
    class BandMethod:
        def __init__(self, options: BandOptions) -> None:
            self.width = options.width

        def __call__(self, classifier, x, labels, clean, progress=None):
            w = x.shape[-1]
            half = int(round(self.width * w / 2))
            m = torch.zeros(1, *x.shape[-2:])
            m[..., w // 2 - half: w // 2 + half] = 1
            return MethodResult(m, per_label=False)
'''

INFILLER = '''
    from dataclasses import dataclass

    import torch

    from saliency_core.infill import register_infiller
    from saliency_core.options import check_options, option


    @dataclass(frozen=True)
    class FlatOptions:
        level: float = option(1.0, help="the constant, in normalised units", low=-3.0, high=3.0, main=True)

        def __post_init__(self) -> None:
            check_options(self, "infiller 'flat'")


    @register_infiller("flat", config=FlatOptions, static=True, deterministic=True)
    class FlatInfiller:
        def __init__(self, options: FlatOptions) -> None:
            self.level = options.level

        def __call__(self, x, keep):
            return torch.full_like(x, self.level)
'''

METRIC = '''
    from saliency_core.evaluate.metrics import MetricOutput, register_metric


    @register_metric("peak", summary="the mask's largest value (test plug-in)", averaged=("mask_peak",),
                     table={"mask_peak": "peak"}, report=("mask_peak",))
    def peak(inp):
        return MetricOutput(image={"mask_peak": float(inp.masks.max())})
'''


def test_a_new_method_is_one_file(plugin, tiny_classifier):
    plugin("band_method", METHOD)
    assert "band" in sc.list_methods() and sc.method_entry("band").options()[0].name == "width"
    img = Image.new("RGB", (64, 48), (120, 90, 60))
    e = sc.explain(img, sc.ExplainConfig(method="band", method_options={"width": 0.25}, infiller="gray"),
                   classifier=tiny_classifier)
    assert e.masks.shape == (1, 48, 64) and e.masks[0, :, 32].min() == 1 and e.masks[0, :, 0].max() == 0
    with pytest.raises(sc.MethodError, match="option 'width' must be a number > 0 and <= 1"):
        sc.create_method("band", width=2)


def test_a_new_infiller_is_one_file(plugin, tiny_classifier):
    plugin("flat_infiller", INFILLER)
    assert "flat" in sc.list_infillers()
    fill = sc.create_infiller("flat", level=0.5)(torch.zeros(1, 3, 8, 8), torch.ones(1, 1, 8, 8))
    assert torch.equal(fill, torch.full((1, 3, 8, 8), 0.5))
    # the optimisation engine reads its capabilities (static: computed once) from the registration
    res = sc.create_method("optimize", infiller="flat", steps=2, samples=4)(
        tiny_classifier, torch.zeros(1, 3, 32, 32), [0], None)
    assert res.masks.shape == (1, 32, 32)


def test_a_new_metric_is_one_file(plugin, tiny_classifier, tmp_path):
    plugin("peak_metric", METRIC)
    from saliency_core.evaluate.runner import EvalConfig, evaluate
    from saliency_core.evaluate.tables import main_table

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(2):
        Image.new("RGB", (40, 32), (40 * i, 90, 60)).save(folder / f"img{i}.png")
    (tmp_path / "labels.csv").write_text("file,label\nimgs/img0.png,1\nimgs/img1.png,2\n")
    cfg = EvalConfig(images=str(tmp_path / "labels.csv"), methods=["center-gaussian"], steps=3,
                     out=str(tmp_path / "out"), deletion=False, saliency_metric=False)
    result = evaluate(cfg, classifier=tiny_classifier)
    assert result.aggregate.loc[0, "mask_peak"] == pytest.approx(1.0)  # the centre Gaussian peaks at 1
    assert "mask_peak" in main_table(result.aggregate)
    assert "mask_peak" in (result.out / "report.html").read_text()


def test_a_misspelt_trait_fails_at_import_naming_it(plugin):
    """The slow method that a typo would once have run at once (``on_requst=True``) now stops its file's import."""
    with pytest.raises(sc.RegistryError) as err:
        plugin("band_typo", METHOD.replace("on_request=False", "on_requst=True"))
    assert str(err.value).startswith("unknown trait 'on_requst' for method 'band'; did you mean 'on_request'? "
                                     "declared: group, per_label, on_request,")
    assert "band" not in sc.list_methods()
