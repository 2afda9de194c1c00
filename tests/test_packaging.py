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


_HELP_PROBE = """
import sys
from saliency_core.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
heavy = sorted(m for m in ("torch", "torchvision", "streamlit", "pandas", "matplotlib") if m in sys.modules)
print("exit", code, "heavy", ",".join(heavy) or "none", file=sys.stderr)
"""


@pytest.mark.parametrize("argv", [["--help"], ["explain", "--help"], ["evaluate", "--help"], ["dashboard", "--help"],
                                  ["train", "--help"], ["train", "masker", "--help"], ["train", "label", "--help"],
                                  ["train", "conditional", "--help"]])
def test_help_answers_without_importing_torch(argv):
    """``saliency --help`` and each command's ``--help`` print their flags without importing torch (or any other
    heavy library): they answer in a fraction of a second, where importing torch took 5-12 s. Torch is imported
    when the work starts, inside the handler."""
    run = subprocess.run([sys.executable, "-c", _HELP_PROBE, *argv], capture_output=True, text=True, cwd=ROOT,
                         timeout=120)
    assert run.stderr.strip().splitlines()[-1] == "exit 0 heavy none", run.stderr[-2000:]
    assert "usage: saliency" in run.stdout
    if argv == ["--help"]:
        assert all(name in run.stdout for name in ("explain", "train", "evaluate", "dashboard"))


def test_a_command_imports_torch_once_its_work_starts(tmp_path):
    """The other side of the lazy imports: running a command does load the core (here ``explain`` on a missing
    image fails after its handler started, with one line)."""
    probe = _HELP_PROBE.replace('"torch", ', '"torch", "saliency_core.explanation", ')
    run = subprocess.run([sys.executable, "-c", probe, "explain", str(tmp_path / "missing.jpg"), "--method",
                          "center-gaussian", "--out", str(tmp_path / "o")], capture_output=True, text=True, cwd=ROOT,
                         timeout=300)
    lines = run.stderr.strip().splitlines()
    assert lines[-1].startswith("exit 1 heavy ") and "torch" in lines[-1], run.stderr[-2000:]
    assert any("missing.jpg" in line for line in lines[:-1]), "the failure is one line naming the image"


def test_the_public_api_costs_no_torch_until_a_name_is_used():
    """``import saliency_core`` and its torch-free names (the dashboard's settings, the label parser) load no
    torch; the first use of a name that needs it does."""
    code = ("import sys, saliency_core as sc; sc.DashboardSettings(); sc.parse_labels('top5'); "
            "print('torch' in sys.modules); sc.load_classifier; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.stdout.split() == ["False", "True"], out.stderr[-2000:]
