"""Training survives kill -9 at any point (log and state agree, the result equals an uninterrupted run), a
fresh run never mixes with an earlier one's files, and bad data is found before step 1."""
from __future__ import annotations

import dataclasses

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from saliency_core.train.config import TrainConfig
from saliency_core.train.masker import train
from tests.train.conftest import TINY


def _cfg(data: Path, out: Path, **kw) -> TrainConfig:
    return TrainConfig(data=str(data), out=str(out), **{**TINY, **kw})


def _steps(out: Path) -> list[int]:
    with (out / "steps.csv").open(newline="") as f:
        return [int(r["step"]) for r in csv.DictReader(f)]


def _kill_9_repeatedly(cfg, out: Path, tmp_path: Path, kind: str, attempts: int = 4) -> None:
    """Start ``saliency train <kind> --config`` on ``cfg`` and ``kill -9`` it at a random moment, ``attempts`` times;
    after each kill the saved state and steps.csv agree (the log holds exactly the steps up to the saved one)."""
    (tmp_path / "run.yaml").write_text(cfg.to_yaml())
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    gen = torch.Generator().manual_seed(0)
    for attempt in range(attempts):
        proc = subprocess.Popen([sys.executable, "-m", "saliency_core.cli", "train", "--kind", kind, "--config",
                                 str(tmp_path / "run.yaml")], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(2.0 + 2.0 * float(torch.rand(1, generator=gen)))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        if (out / "state.pt").exists():
            step = torch.load(out / "state.pt", weights_only=True)["step"]
            logged = _steps(out)
            assert logged[:step] == list(range(1, step + 1)), (attempt, step, logged[-5:])


def _same_checkpoints(a: Path, b: Path) -> bool:
    from saliency_core.maskers.checkpoint import read_checkpoint

    ta, _ = read_checkpoint(a)
    tb, _ = read_checkpoint(b)
    return ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)


@pytest.mark.slow
def test_kill_9_at_random_points_then_resume(tiny_data, tmp_path):
    """A real ``kill -9`` of a training process, four times at random moments; after each, the saved state and
    steps.csv agree, and the resumed run ends with the weights of a run that was never interrupted."""
    common = dict(epochs=6, checkpoint_every=1, mode="ca", pool_save_every=1)
    full = train(_cfg(tiny_data, tmp_path / "full", **common), show_bars=False)
    out = tmp_path / "killed"
    cfg = _cfg(tiny_data, out, **common, resume=True)
    _kill_9_repeatedly(cfg, out, tmp_path, "masker")
    result = train(cfg, show_bars=False)
    assert _steps(out) == _steps(tmp_path / "full")
    assert _same_checkpoints(full, result)


@pytest.mark.slow
def test_label_masker_survives_kill_9_and_resumes_to_the_uninterrupted_result(tiny_data, tmp_path):
    """The same for the label masker in CA (its classifier, optimiser and pool resume too)."""
    from saliency_core.train.label_masker import LabelMaskerTrainConfig, train_label_masker

    common = dict(epochs=6, checkpoint_every=1, mode="ca", pool_save_every=1, fractions=2)
    label_cfg = lambda out, **kw: LabelMaskerTrainConfig(data=str(tiny_data), out=str(out),  # noqa: E731
                                                         **{**TINY, **common, **kw})
    full = train_label_masker(label_cfg(tmp_path / "full"), show_bars=False)
    out = tmp_path / "killed"
    cfg = label_cfg(out, resume=True)
    _kill_9_repeatedly(cfg, out, tmp_path, "label")
    result = train_label_masker(cfg, show_bars=False)
    assert _steps(out) == _steps(tmp_path / "full")
    assert _same_checkpoints(full, result)


def test_a_fresh_run_sets_the_earlier_run_aside(tiny_data, tmp_path):
    out = tmp_path / "run"
    train(_cfg(tiny_data, out, epochs=1), show_bars=False)
    first = (out / "masker.safetensors").read_bytes()
    (out / "notes.txt").write_text("mine")  # not the run's: stays where it is
    cfg = _cfg(tiny_data, out, epochs=1, max_steps=1)
    cfg = dataclasses.replace(cfg, resume=False)
    train(cfg, show_bars=False)
    previous = out / "previous-1"
    assert (previous / "masker.safetensors").read_bytes() == first
    assert (previous / "epochs.csv").exists() and (previous / "config.yaml").exists()
    assert (out / "notes.txt").read_text() == "mine"
    assert _steps(out) == [1]


def test_bad_images_are_found_before_step_1_and_can_be_skipped(tiny_data, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(tiny_data.parent, data)
    csv_path = data / "labels.csv"
    rows = csv_path.read_text().splitlines()
    (data / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    rows += ["broken.png,1", "missing.png,2"]
    csv_path.write_text("\n".join(rows) + "\n")
    from saliency_core.datasets import DataError

    expected = r"2 of \d+ images cannot be read: .*broken\.png.*missing\.png.*--skip-bad-images"
    with pytest.raises(DataError, match=expected):
        train(_cfg(csv_path, tmp_path / "refused", epochs=1), show_bars=False)
    assert not (tmp_path / "refused" / "steps.csv").exists()  # refused before step 1
    train(_cfg(csv_path, tmp_path / "skipped", epochs=1, skip_bad_images=True), show_bars=False)
    assert _steps(tmp_path / "skipped")


def test_a_class_name_where_an_index_belongs_names_the_file_and_line(tmp_path):
    from saliency_core.datasets import DataError, read_samples

    (tmp_path / "labels.csv").write_text("file,label\na.png,3\nb.png,tabby cat\n")
    with pytest.raises(DataError, match=r"labels\.csv:3: label 'tabby cat' is not a class index"):
        read_samples(tmp_path / "labels.csv")
