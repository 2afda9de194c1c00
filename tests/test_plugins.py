"""Plug-ins from another installed package (docs/architecture.md, "Plug-ins from another package"): a package that
declares an entry point in the group ``saliency_core.plugins`` adds a method without any edit of this repository;
a broken one is skipped with one warning line and the built-ins stay as they are."""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

import saliency_core as sc
from saliency_core import plugins
from saliency_core.plugins import PLUGIN_GROUP, load_entry_point

ROOT = Path(__file__).resolve().parents[1]

BAND = '''
    from dataclasses import dataclass

    import torch

    from saliency_core.methods import MethodResult, register_method
    from saliency_core.options import check_options, option


    @dataclass(frozen=True)
    class BandOptions:
        width: float = option(0.5, help="width of the band, as a fraction of the image", low=0.0, low_open=True,
                              high=1.0, main=True)

        def __post_init__(self) -> None:
            check_options(self, "method 'plugin-band'")


    @register_method("plugin-band", summary="a vertical band (from an installed plug-in)", config=BandOptions,
                     group="Control", per_label=False)
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

#: Registers one method, then fails: the method must not stay registered.
BROKEN = '''
    from saliency_core.methods import register_method

    register_method("plugin-half", summary="registered before the failure")(lambda config: None)
    raise RuntimeError("no GPU found\\nsecond line of the reason")
'''

#: A callable entry point (``module:function``) whose registration misspells a trait.
MISSPELT = '''
    from saliency_core.infill import register_infiller


    def register():
        register_infiller("plugin-flat", statc=True)(lambda: None)
'''


def _module(folder: Path, name: str, source: str) -> None:
    (folder / f"{name}.py").write_text(textwrap.dedent(source))


@pytest.fixture
def plugin_folder(tmp_path, monkeypatch):
    """A folder on sys.path for plug-in modules; what they register and import is removed afterwards."""
    registries = [sc.METHODS, sc.INFILLERS]
    before = {r: set(r.list()) for r in registries}
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for reg, names in before.items():
        for name in set(reg.list()) - names:
            reg.unregister(name)
    for name in ("band_saliency", "broken_saliency", "misspelt_saliency"):
        sys.modules.pop(name, None)


def test_a_plug_in_module_registers_a_method_that_records_its_origin(plugin_folder, tiny_classifier):
    import torch

    _module(plugin_folder, "band_saliency", BAND)
    assert load_entry_point(EntryPoint("band", "band_saliency", PLUGIN_GROUP))
    entry = sc.method_entry("plugin-band")
    assert "plugin-band" in sc.list_methods() and entry.origin == "plug-in 'band'"
    assert entry.traits.group == "Control" and entry.options()[0].name == "width"
    res = sc.create_method("plugin-band", width=0.5)(tiny_classifier, torch.zeros(1, 3, 8, 16), [0], None)
    assert res.masks[0, :, 8].min() == 1 and res.masks[0, :, 0].max() == 0
    assert sc.method_entry("grad-cam").origin == ""  # the built-ins are the package's own


def test_a_broken_plug_in_is_one_warning_line_and_leaves_nothing_registered(plugin_folder, caplog):
    _module(plugin_folder, "broken_saliency", BROKEN)
    before = sc.list_methods()
    with caplog.at_level(logging.WARNING, logger="saliency_core.plugins"):
        assert not load_entry_point(EntryPoint("broken", "broken_saliency", PLUGIN_GROUP))
    assert sc.list_methods() == before and "plugin-half" not in sc.METHODS  # its partial registration removed
    [record] = caplog.records
    line = record.getMessage()
    assert line == "saliency_core: skipped plug-in 'broken' (broken_saliency): RuntimeError: no GPU found"


def test_a_plug_in_cannot_take_a_built_in_name_or_misspell_a_trait(plugin_folder, caplog):
    grad_cam = sc.method_entry("grad-cam")
    _module(plugin_folder, "band_saliency", BAND.replace('"plugin-band"', '"grad-cam"'))
    _module(plugin_folder, "misspelt_saliency", MISSPELT)
    with caplog.at_level(logging.WARNING, logger="saliency_core.plugins"):
        assert not load_entry_point(EntryPoint("thief", "band_saliency", PLUGIN_GROUP))
        assert not load_entry_point(EntryPoint("typo", "misspelt_saliency:register", PLUGIN_GROUP))
    assert sc.method_entry("grad-cam") is grad_cam and "plugin-flat" not in sc.INFILLERS
    first, second = (r.getMessage() for r in caplog.records)
    assert "plug-in 'thief'" in first and "method 'grad-cam' is already registered" in first
    assert "plug-in 'typo'" in second and "unknown trait 'statc' for infiller 'plugin-flat'; did you mean 'static'?" \
        in second


def test_plugins_can_be_switched_off(monkeypatch):
    monkeypatch.setitem(plugins._state, "phase", "new")
    monkeypatch.setenv(plugins.PLUGINS_ENV, "0")
    monkeypatch.setattr(plugins, "_entry_points", lambda: pytest.fail("entry points read although switched off"))
    assert plugins.load_plugins() and plugins._state["phase"] == "done"


def _dist_info(site: Path, dist: str, entry_points: str) -> None:
    """What pip leaves for an installed distribution: enough for importlib.metadata to find its entry points."""
    info = site / f"{dist}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{PLUGIN_GROUP}]\n{entry_points}\n")


def _list_methods(site: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)]), "OMP_NUM_THREADS": "1"}
    env.pop(plugins.PLUGINS_ENV, None)
    return subprocess.run([sys.executable, "-m", "saliency_core.cli", "explain", "--list-methods"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def _check_listing(run: subprocess.CompletedProcess) -> None:
    assert run.returncode == 0, run.stderr
    names = [line.split()[0] for line in run.stdout.splitlines() if line and not line.startswith(" ")]
    assert "plugin-band" in names and {"masker", "grad-cam", "rise"} <= set(names) and "plugin-half" not in names
    assert "a vertical band (from an installed plug-in)" in run.stdout
    warned = [line for line in run.stderr.splitlines() if "plug-in" in line]
    assert warned == ["saliency_core: skipped plug-in 'broken' (broken_saliency): RuntimeError: no GPU found"]
    assert "Traceback" not in run.stderr


def test_installed_plug_ins_show_in_saliency_explain_list_methods(tmp_path):
    """Two packages 'installed' in a temporary folder (their modules and .dist-info), one good and one broken."""
    site = tmp_path / "site"
    site.mkdir()
    _module(site, "band_saliency", BAND)
    _module(site, "broken_saliency", BROKEN)
    _dist_info(site, "band_saliency", "band = band_saliency")
    _dist_info(site, "broken_saliency", "broken = broken_saliency")
    _check_listing(_list_methods(site, tmp_path))


@pytest.mark.slow
def test_a_plug_in_built_as_a_wheel_and_installed_with_pip(tmp_path):
    """The real route: a plug-in project with its own pyproject.toml, built and installed by pip (offline) into a
    temporary folder, shows in the listing."""
    for dist, module, source in (("band-saliency", "band_saliency", BAND), ("broken-saliency", "broken_saliency", BROKEN)):
        project = tmp_path / dist
        project.mkdir()
        _module(project, module, source)
        name = "band" if module == "band_saliency" else "broken"
        (project / "pyproject.toml").write_text(textwrap.dedent(f'''
            [build-system]
            requires = ["setuptools>=68"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "{dist}"
            version = "0.1"

            [project.entry-points."{PLUGIN_GROUP}"]
            {name} = "{module}"

            [tool.setuptools]
            py-modules = ["{module}"]
        '''))
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                        "--no-build-isolation", "--target", str(tmp_path / "site"), str(project)],
                       check=True, capture_output=True, timeout=300)
    _check_listing(_list_methods(tmp_path / "site", tmp_path))


def test_plug_ins_load_after_every_built_in_even_when_a_built_in_uses_another_registry(tmp_path, monkeypatch, caplog):
    """A built-in module that asks another registry for its entries at import must not let the plug-ins in before
    the rest of the built-ins: a plug-in claiming a built-in's name is refused, the built-in keeps it."""
    files = {
        "pl_regs": "from saliency_core.registry import Registry\nA = Registry('gadget', builtin_modules=('pl_a1', "
                   "'pl_a2'))\nB = Registry('widget', builtin_modules=('pl_b',))\n",
        "pl_a1": "from pl_regs import A, B\nB.list()\nA.add('first', lambda: 1)\n",
        "pl_a2": "from pl_regs import A\nA.add('taken', lambda: 'built-in')\n",
        "pl_b": "from pl_regs import B\nB.add('wheel', lambda: 0)\n",
        "pl_thief": "from pl_regs import A\nA.add('taken', lambda: 'plug-in')\n",
    }
    for name, source in files.items():
        (tmp_path / f"{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(plugins._state, "phase", "new")
    monkeypatch.delenv(plugins.PLUGINS_ENV, raising=False)
    monkeypatch.setattr(plugins, "_entry_points", lambda: [EntryPoint("thief", "pl_thief", PLUGIN_GROUP)])
    try:
        from pl_regs import A, B

        with caplog.at_level(logging.WARNING, logger="saliency_core.plugins"):
            assert A.list() == ["first", "taken"] and A.create("taken") == "built-in" and B.list() == ["wheel"]
        assert ["gadget 'taken' is already registered" in r.getMessage() for r in caplog.records] == [True]
    finally:
        for name in files:
            sys.modules.pop(name, None)
