"""A wheel carries the shipped maskers, and an installed (non-editable) copy finds them."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from zipfile import ZipFile

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_the_package_list_names_every_package_folder():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in ROOT.glob("saliency_core/**/__init__.py")}
    found |= {".".join(p.parent.relative_to(ROOT).parts) for p in ROOT.glob("dashboard/**/__init__.py")}
    assert found <= listed, f"add to pyproject's [tool.setuptools] packages: {sorted(found - listed)}"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out),
                    str(ROOT)], check=True, capture_output=True, cwd=out)
    return next(out.glob("*.whl"))


def test_the_wheel_carries_the_shipped_checkpoints_and_the_dashboard_pages(wheel):
    names = set(ZipFile(wheel).namelist())
    for ckpt in (ROOT / "checkpoints").glob("*.safetensors"):
        assert f"saliency_core/shipped_checkpoints/{ckpt.name}" in names
        assert f"saliency_core/shipped_checkpoints/{ckpt.with_suffix('.json').name}" in names
    assert {"dashboard/app.py", "dashboard/app_pages/explain.py"} <= names


def test_an_installed_copy_finds_them(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", str(target),
                    str(wheel)], check=True, capture_output=True)
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from saliency_core.maskers import catalog;"
            "import saliency_core; assert saliency_core.__file__.startswith(sys.argv[1]), saliency_core.__file__;"
            "print(catalog.default_checkpoint('phang')); print([c.label for c in catalog.find_checkpoints()])")
    out = subprocess.run([sys.executable, "-I", "-c", code, str(target)], check=True, capture_output=True, text=True,
                         cwd=tmp_path).stdout.splitlines()
    assert out[0].startswith(str(target)) and Path(out[0]).is_file()
    assert "fix_lite0" in out[1] and "label_lite0" in out[1] and "conditional_lite0" in out[1]
