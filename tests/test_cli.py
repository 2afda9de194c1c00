"""The ``saliency`` command's flags come from the declared configs (one place for each default), and a bad value is
one line before any work starts. (``--help`` without torch: tests/test_packaging.py.)"""
from __future__ import annotations

import argparse

import pytest

from saliency_core.cli import COMMANDS, build_parser, main
from saliency_core.dashboard_settings import DashboardSettings
from saliency_core.evaluate.config import EvalConfig
from saliency_core.explain_config import ExplainConfig
from saliency_core.options import declared_options


def _defaults(command: str) -> dict[str, object]:
    sub = next(a for a in build_parser([command])._actions if a.dest == "command").choices[command]
    return {a.dest: a.default for a in sub._actions}


@pytest.mark.parametrize("command, config, names", [
    ("explain", ExplainConfig, ("method", "labels", "infiller", "seed")),
    ("evaluate", EvalConfig, ("labels", "out", "steps", "eps1", "eps2", "infiller", "fixed_area_fill", "split",
                              "classifier", "device", "seed", "limit")),
    ("dashboard", DashboardSettings, ("classifier", "classifier_weights", "device", "max_upload_mb", "max_pixels",
                                      "max_side", "curve_steps", "cache_entries")),
])
def test_flags_take_their_defaults_from_the_declarations(command, config, names):
    declared = {o.name: o.default for o in declared_options(config)}
    flags = _defaults(command)
    for name in names:
        # an unset dashboard flag sets nothing: the declared default stands (settings_from_args)
        assert flags[name] == (argparse.SUPPRESS if command == "dashboard" else declared[name]), name


def test_only_the_command_run_is_built_and_the_rest_are_listed():
    parser = build_parser(["explain"])
    choices = next(a for a in parser._actions if a.dest == "command").choices
    assert set(choices) == set(COMMANDS)
    assert "--labels" in choices["explain"].format_help() and "--epochs" not in choices["train"].format_help()


def test_dashboard_flags_reach_the_app_and_a_bad_one_is_one_line(capsys):
    assert main(["dashboard", "--curve-steps", "8", "--max-side", "1024", "--print-command"]) == 0
    env_line = capsys.readouterr().out.splitlines()[0]
    env = dict(kv.split("=", 1) for kv in env_line.split(" "))
    assert DashboardSettings.from_env(env) == DashboardSettings(curve_steps=8, max_side=1024)
    assert main(["dashboard", "--max-side", "0", "--print-command"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: dashboard setting: option 'max_side' must be a whole number >= 1, got '0'"]


def test_a_bad_labels_choice_is_refused_before_the_classifier_loads(tmp_path, capsys, monkeypatch):
    import saliency_core.classifiers as classifiers

    def never(*args, **kwargs):
        raise AssertionError("the classifier was loaded for a command that cannot run")

    monkeypatch.setattr(classifiers, "load_classifier", never)
    assert main(["explain", str(tmp_path / "x.jpg"), "--labels", "top-1", "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.strip() == ("error: labels 'top-1' must be top1, topK or comma-separated class "
                                               "indices")
