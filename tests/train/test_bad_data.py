"""Bad data and impossible settings are refused before step 1, with nothing written in the run folder (issue 27,
item 4): every image is decoded in full up front (a truncated JPEG passes a header check and used to stop the run
at step 1), and a batch that random-image infill cannot fill from is refused from the config or the data."""
from __future__ import annotations

import dataclasses

import csv
import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from saliency_core.cli import main
from saliency_core.train.conditional import ConditionalTrainConfig
from saliency_core.train.config import TrainConfig
from tests.train.conftest import TINY

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _truncated_jpeg(path: Path) -> None:
    """A real JPEG with the second half of its bytes cut off (its header still reads)."""
    arr = (np.random.default_rng(1).random((40, 48, 3)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=90)
    data = buf.getvalue()
    path.write_bytes(data[: len(data) // 2])
    with Image.open(path) as img:  # what the old up-front check did: it passes
        img.verify()


@pytest.fixture
def data_with_truncated_jpeg(tiny_data, tmp_path) -> Path:
    data = tmp_path / "data"
    shutil.copytree(tiny_data.parent, data)
    _truncated_jpeg(data / "cut.jpg")
    with (data / "labels.csv").open("a", newline="") as f:
        csv.writer(f).writerow(["cut.jpg", 1])
    return data / "labels.csv"


def _config(tmp_path: Path, cfg: TrainConfig) -> str:
    path = tmp_path / "run.yaml"
    path.write_text(cfg.to_yaml())
    return str(path)


def _run_files(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir()) if out.exists() else []


def test_a_truncated_jpeg_is_refused_before_step_1_naming_the_file(data_with_truncated_jpeg, tmp_path, capsys):
    out = tmp_path / "run"
    cfg = TrainConfig(data=str(data_with_truncated_jpeg), out=str(out), epochs=1, **TINY)
    assert main(["train", "--config", _config(tmp_path, cfg)]) == 2
    err = capsys.readouterr().err
    assert "1 of 17 images cannot be read: cut.jpg" in err and "truncated" in err and "--skip-bad-images" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert _run_files(out) == []  # no config.yaml, no header-only steps.csv


def test_skip_bad_images_trains_on_the_rest_and_says_which(data_with_truncated_jpeg, tmp_path, capsys):
    out = tmp_path / "run"
    cfg = TrainConfig(data=str(data_with_truncated_jpeg), out=str(out), epochs=1, skip_bad_images=True, **TINY)
    assert main(["train", "--config", _config(tmp_path, cfg)]) == 0
    captured = capsys.readouterr()
    said = captured.out + captured.err
    assert "left out 1 of 17 images that cannot be read: cut.jpg (" in said, said
    with (out / "steps.csv").open(newline="") as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == [1, 2, 3]  # 12 training images, batches of 4


@pytest.mark.parametrize("kind, flags", [
    ("conditional", ["--batch-size", "1"]),  # the default space draws random-image
    ("conditional", ["--batch-size", "1", "--infillers", "random-image", "--default-infiller", "random-image"]),
    ("masker", ["--batch-size", "1", "--infiller", "random-image"]),
])
def test_random_image_infill_with_a_batch_of_one_is_refused_before_anything_is_written(tiny_data, tmp_path, capsys,
                                                                                     kind, flags):
    out = tmp_path / "run"
    cls = ConditionalTrainConfig if kind == "conditional" else TrainConfig
    cfg = cls(data=str(tiny_data), out=str(out), epochs=1, **TINY)
    assert main(["train", "--kind", kind, "--config", _config(tmp_path, cfg), *flags]) == 2
    err = capsys.readouterr().err
    assert "random-image" in err and "at least 2 images" in err and "batch_size is 1" in err, err
    assert len(err.strip().splitlines()) == 1
    assert _run_files(out) == []


def test_a_training_set_too_small_for_random_image_batches_is_refused_before_anything_is_written(tiny_data,
                                                                                                 tmp_path, capsys):
    """batch_size 4, but one training image: every batch would hold 1 image."""
    out = tmp_path / "run"
    cfg = ConditionalTrainConfig(data=str(tiny_data), out=str(out), epochs=1, few_shot_classes=1,
                                 few_shot_per_class=1, **TINY)
    assert main(["train", "--kind", "conditional", "--config", _config(tmp_path, cfg)]) == 2
    err = capsys.readouterr().err
    assert "random-image" in err and "1 training image" in err, err
    assert _run_files(out) == []


def test_a_batch_of_one_over_a_one_cell_stage_is_refused_before_anything_is_written(tiny_data, tmp_path, capsys):
    """The masker's batch norm needs 2+ values per channel in training: at 32 px stage 5 is 1 x 1, so a batch of
    one image cannot make a step (it used to stop at step 1 with torch's 'Expected more than 1 value per
    channel'); at 64 px (2 x 2) the same batch of one trains."""
    out = tmp_path / "run"
    cfg = ConditionalTrainConfig(data=str(tiny_data), out=str(out), epochs=1, max_steps=1,
                                 **{**TINY, "batch_size": 1}, infillers=("gray", "blur"))
    assert main(["train", "--kind", "conditional", "--config", _config(tmp_path, cfg)]) == 2
    err = capsys.readouterr().err
    assert "at image_size 32 stage 5 is 1 cell, so batch norm" in err and "batch_size is 1" in err, err
    assert _run_files(out) == []
    from saliency_core.train.conditional import train_conditional

    cfg = dataclasses.replace(cfg, image_size=64)
    assert train_conditional(cfg, show_bars=False).exists()  # random-image is not in this space: a batch of 1 is fine
