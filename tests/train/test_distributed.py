"""The multi-process path for real: torchrun, two CPU processes, the gloo backend, a tiny model.

Each process trains on its own half of every epoch; DDP averages the masker's gradients and the
CA classifier's gradients are all-reduced. At the end every process's masker and classifier
digest is gathered: the replicas must be identical (the run itself fails otherwise).
"""
from __future__ import annotations

import gc
import json
import os
import socket
import subprocess
import sys
from types import SimpleNamespace

from saliency_core.train import distributed
from saliency_core.train.config import TrainConfig
from saliency_core.train.masker import Trainer, train
from tests.train.conftest import TINY


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_gloo_training_keeps_replicas_identical(tiny_data, tmp_path):  # noqa: F811
    out = tmp_path / "ddp"
    cfg = TrainConfig(data=str(tiny_data), out=str(out), **{**TINY, "batch_size": 2, "mode": "ca",
                                                              "pool_save_every": 1, "epochs": 2, "device": "cpu"})
    (tmp_path / "run.yaml").write_text(cfg.to_yaml())
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={free_port()}", "-m", "saliency_core.cli", "train", "--config", str(tmp_path / "run.yaml")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    metrics = json.loads((out / "masker.json").read_text())["metrics"]
    assert metrics["world_size"] == 2
    assert len(metrics["replica_digests"]) == 2 and metrics["replicas_identical"]
    # 12 training images, 2 processes x 2 images per step -> 3 steps per epoch
    assert metrics["steps"] == 6 and metrics["complete"]
    assert metrics["train_images"] == 12


def test_two_process_label_masker_training_keeps_replicas_identical(tiny_data, tmp_path):  # noqa: F811
    """The label masker through the same torchrun path (CA: its masker's and classifier's gradients all-reduced)."""
    from saliency_core.train.label_config import LabelMaskerTrainConfig

    out = tmp_path / "ddp_label"
    cfg = LabelMaskerTrainConfig(data=str(tiny_data), out=str(out), **{**TINY, "batch_size": 2, "mode": "ca",
                                                                      "pool_save_every": 1, "epochs": 2,
                                                                      "device": "cpu", "fractions": 2})
    (tmp_path / "label.yaml").write_text(cfg.to_yaml())
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={free_port()}", "-m", "saliency_core.cli", "train", "--kind", "label", "--config",
           str(tmp_path / "label.yaml")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    metrics = json.loads((out / "masker.json").read_text())["metrics"]
    assert metrics["world_size"] == 2 and metrics["replicas_identical"] and len(metrics["replica_digests"]) == 2
    assert metrics["steps"] == 6 and metrics["complete"] and metrics["classifier_updates"] == 6
    assert "val_completeness" in metrics["final"]


def test_the_trainer_is_freed_before_the_process_group_is_destroyed(tiny_data, tmp_path, monkeypatch):  # noqa: F811
    """The trainer sits in reference cycles; its DDP wrapper holds the group. Left to interpreter shutdown, freeing
    it there aborted a finished torchrun process now and then. ``train`` must free it before leaving the group."""
    alive: list[int] = []  # a group "joined" as far as distributed.py's cleanup can tell, nowhere else
    monkeypatch.setattr(distributed, "dist", SimpleNamespace(
        is_available=lambda: True, is_initialized=lambda: True,
        destroy_process_group=lambda: alive.append(sum(issubclass(type(o), Trainer) for o in gc.get_objects()))))
    cfg = TrainConfig(data=str(tiny_data), out=str(tmp_path / "run"), **{**TINY, "epochs": 1, "device": "cpu"})
    gc.disable()  # so that only cleanup's own collection can free the cycles
    try:
        assert train(cfg, show_bars=False).exists()
    finally:
        gc.enable()
    assert alive == [0]
