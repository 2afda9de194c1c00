"""Masker checkpoints: round trip, classifier identity checks, safety and corruption."""
import json

import pytest
import torch

from saliency_core.classifiers import load_classifier
from saliency_core.maskers.checkpoint import CheckpointError, load_masker, read_checkpoint, save_masker
from saliency_core.maskers.phang import MaskerConfig, PhangMasker


def _masker(clf, **kw):
    torch.manual_seed(1)
    return PhangMasker(MaskerConfig(stage_channels=clf.stage_channels, **kw)).eval()


def test_round_trip_keeps_weights_config_and_metrics(tmp_path, tiny_classifier):
    m = _masker(tiny_classifier, stages=(3, 5), gumbel="soft")
    path = save_masker(tmp_path / "m.safetensors", m, tiny_classifier, {"lr": 0.001}, {"val_in_acc": 0.5})
    loaded = load_masker(path, tiny_classifier)
    assert loaded.masker.config.stages == (3, 5) and loaded.masker.config.gumbel == "soft"
    for (k, a), (_, b) in zip(m.state_dict().items(), loaded.masker.state_dict().items()):
        assert torch.equal(a, b), k
    assert loaded.metadata["config"] == {"lr": 0.001}
    assert loaded.metadata["metrics"] == {"val_in_acc": 0.5}
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["classifier_identity"] == tiny_classifier.identity
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())  # atomic write leaves no temp file


def test_masker_for_another_classifier_is_refused(tmp_path, tiny_classifier):
    path = save_masker(tmp_path / "m.safetensors", _masker(tiny_classifier), tiny_classifier, {})
    torch.manual_seed(123)
    other = load_classifier("timm:test_efficientnet", random_init=True, num_classes=10)
    with pytest.raises(CheckpointError, match="trained for classifier .* but the loaded classifier is"):
        load_masker(path, other)


def test_ca_checkpoint_carries_its_classifier_without_mutating_callers(tmp_path, tiny_classifier):
    co_trained = load_classifier("timm:test_efficientnet", random_init=True, num_classes=10)
    with torch.no_grad():
        for p in co_trained.parameters():
            p.add_(0.01)
    co_trained.refresh_identity()
    path = save_masker(tmp_path / "ca.safetensors", _masker(co_trained), co_trained, {}, include_classifier=True)
    before = tiny_classifier.identity
    ck = load_masker(path, tiny_classifier)
    assert ck.classifier.identity == co_trained.identity
    assert ck.classifier is not tiny_classifier
    tiny_classifier.refresh_identity()
    assert tiny_classifier.identity == before


@pytest.mark.parametrize("content", [b"", b"garbage bytes that are not safetensors", b"\x00" * 64])
def test_corrupt_files_give_clear_errors(tmp_path, content):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(content)
    with pytest.raises(CheckpointError, match="bad.safetensors"):
        read_checkpoint(bad)


def test_pickles_and_foreign_safetensors_are_refused(tmp_path, tiny_classifier):
    pickle_file = tmp_path / "evil.safetensors"
    torch.save({"a": torch.zeros(1)}, pickle_file)  # a torch pickle renamed: must not be unpickled
    with pytest.raises(CheckpointError, match="not a valid masker checkpoint"):
        read_checkpoint(pickle_file)
    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(CheckpointError, match="not a saliency_core masker checkpoint"):
        read_checkpoint(foreign)
    with pytest.raises(CheckpointError, match="does not exist"):
        read_checkpoint(tmp_path / "missing.safetensors")


def test_the_shipped_fix_masker_still_gives_its_recorded_mask_on_chelsea(lite0, chelsea, one_torch_thread):
    """The restructure changed no behaviour: the shipped masker's mask (10 x 10 pooled) is the one recorded
    before it, and the full mask was bit-identical when it was recorded (sha256 21cee7dcf826c1e8)."""
    from pathlib import Path

    import numpy as np

    import saliency_core as sc

    e = sc.explain(chelsea, sc.ExplainConfig(method="masker", labels="top1"), classifier=lite0)
    pooled = torch.nn.functional.avg_pool2d(torch.from_numpy(e.masks[0])[None, None], 10)[0, 0].numpy()
    recorded = np.load(Path(__file__).with_name("chelsea_fix_lite0_pooled.npy"))
    assert pooled.shape == recorded.shape and np.abs(pooled - recorded).max() < 1e-5


def test_a_checkpoint_records_no_absolute_path(tmp_path, tiny_classifier):
    from saliency_core.maskers.checkpoint import portable, read_metadata

    masker = PhangMasker(MaskerConfig(stage_channels=tiny_classifier.stage_channels))
    config = {"data": str(tmp_path / "labels.csv"), "out": "/elsewhere/run", "command": "train --data /x/y.csv"}
    path = save_masker(tmp_path / "m.safetensors", masker, tiny_classifier, config)
    for meta in (read_metadata(path), json.loads(path.with_suffix(".json").read_text())):
        assert not meta["config"]["data"].startswith("/") and not meta["config"]["out"].startswith("/")
        assert " /" not in meta["config"]["command"]
    assert portable({"a": ["/x"]}, root=__import__("pathlib").Path("/x/y")) == {"a": [".."]}
