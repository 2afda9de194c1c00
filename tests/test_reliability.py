"""Hostile input and faults: untrusted checkpoints, outputs that are never silently overwritten or left
half-written, seeds that hold. Each case builds its input in a temporary folder and checks the one-line
error and that nothing was lost."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import saliency_core as sc
from saliency_core.cli import main
from saliency_core.maskers.checkpoint import CheckpointError, load_masker, save_masker
from saliency_core.maskers.phang import MaskerConfig, PhangMasker


# ------------------------------------------------------------------------------------------ checkpoints
@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory, tiny_classifier) -> Path:
    torch.manual_seed(0)
    masker = PhangMasker(MaskerConfig(stage_channels=tiny_classifier.stage_channels)).eval()
    return save_masker(tmp_path_factory.mktemp("hostile") / "good.safetensors", masker, tiny_classifier, {})


def forged(src: Path, dst: Path, **changes) -> Path:
    """A copy of a checkpoint whose header fields are replaced (``None`` deletes one)."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(src), framework="pt") as f:
        meta = {k: json.loads(v) for k, v in (f.metadata() or {}).items()}
    for key, value in changes.items():
        if value is None:
            meta.pop(key, None)
        elif key == "masker_config" and isinstance(value, dict) and isinstance(meta.get(key), dict):
            meta[key] = {**meta[key], **value}
        else:
            meta[key] = value
    save_file(load_file(str(src)), str(dst), metadata={k: json.dumps(v) for k, v in meta.items()})
    return dst


HOSTILE = {
    "huge hidden_channels": (dict(masker_config={"hidden_channels": 1e7}), "'hidden_channels'"),
    "zero resolution_divisor": (dict(masker_config={"resolution_divisor": 0}), "'resolution_divisor'"),
    "negative resolution_divisor": (dict(masker_config={"resolution_divisor": -4}), "'resolution_divisor'"),
    "temperature not a number": (dict(masker_config={"gumbel_temperature": "abc"}), "'gumbel_temperature'"),
    "masker_config a list": (dict(masker_config=[1, 2]), "'masker_config'"),
    "no classifier_name": (dict(classifier_name=None), "'classifier_name'"),
    "unknown kind": (dict(kind="rootkit"), "'kind'"),
    "stages out of range": (dict(masker_config={"stages": [99]}), "'stages'"),
    "huge num_classes": (dict(num_classes=10 ** 9), "'num_classes'"),
    "a giant included classifier": (dict(classifier_name="timm:vit_huge_patch14_224", classifier_included=True),
                                    "made for classifier 'timm:vit_huge_patch14_224'"),
    "another format": (dict(format="evil/1"), "not a saliency_core masker checkpoint"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_hostile_checkpoint_is_refused_in_one_line_before_anything_is_built(case, good_checkpoint, tmp_path,
                                                                             tiny_classifier, monkeypatch):
    changes, expected = HOSTILE[case]
    path = forged(good_checkpoint, tmp_path / "forged.safetensors", **changes)
    built = []
    monkeypatch.setattr("saliency_core.maskers.checkpoint.load_classifier", lambda *a, **k: built.append(a))
    with pytest.raises(CheckpointError) as err:
        load_masker(path, classifier=tiny_classifier)
    message = str(err.value)
    assert expected in message and "forged.safetensors" in message and "\n" not in message, message
    assert not built, "nothing may be built from a refused header"


def test_an_oversized_file_is_refused_unread(good_checkpoint, tmp_path, tiny_classifier, monkeypatch):
    monkeypatch.setattr("saliency_core.maskers.checkpoint.MAX_CHECKPOINT_BYTES", 1000)
    with pytest.raises(CheckpointError, match="masker checkpoints are at most"):
        load_masker(good_checkpoint, classifier=tiny_classifier)


def test_the_good_checkpoint_still_loads(good_checkpoint, tiny_classifier):
    assert load_masker(good_checkpoint, classifier=tiny_classifier).kind == "phang"


# ------------------------------------------------------------------------------------------ explain outputs
@pytest.fixture
def photos(tmp_path, chelsea) -> dict[str, Path]:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    out = {"a/x": tmp_path / "a" / "x.jpg", "x_2": tmp_path / "x_2.jpg", "b/x": tmp_path / "b" / "x.jpg"}
    small = chelsea.resize((90, 60))
    for i, path in enumerate(out.values()):  # three different pictures
        Image.fromarray(np.roll(np.asarray(small), 20 * i, axis=1)).save(path)
    return out


def _explain(*args: str) -> int:
    return main(["explain", *args, "--method", "center-gaussian", "--infiller", "gray"])


def test_same_stems_get_distinct_folders(photos, tmp_path):
    assert _explain(*map(str, photos.values()), "--out", str(tmp_path / "o")) == 0
    folders = sorted(p.name for p in (tmp_path / "o").iterdir())
    assert folders == ["x", "x_2", "x_3"]
    views = {(tmp_path / "o" / f / "masked_in.png").read_bytes() for f in folders}
    assert len(views) == 3, "each folder holds its own image's result"
    assert json.loads((tmp_path / "o" / "x_2" / "result.json").read_text())["image"] == "x_2.jpg"


def test_an_existing_result_is_not_overwritten_unless_asked_and_then_nothing_stale_stays(photos, tmp_path, capsys):
    out = tmp_path / "o"
    img = str(photos["x_2"])
    assert main(["explain", img, "--method", "gupta", "-o", "steps=1", "--labels", "top2", "--infiller", "gray",
                 "--out", str(out)]) == 0
    first = sorted(p.name for p in (out / "x_2").iterdir())
    assert sum(n.startswith("mask_") for n in first) == 2
    assert _explain(img, "--out", str(out)) == 1  # refused: the earlier result stays as it was
    assert "already exists" in capsys.readouterr().err and sorted(p.name for p in (out / "x_2").iterdir()) == first
    garbage = Path(img).with_name("x_2.png")
    garbage.write_text("not an image")
    assert _explain(str(garbage), "--out", str(out)) == 1  # refused before the file is even read
    assert "already exists" in capsys.readouterr().err
    assert _explain(img, "--out", str(out), "--overwrite") == 0
    now = sorted(p.name for p in (out / "x_2").iterdir())
    assert not any(n.startswith("mask_") for n in now), "stale per-label masks of the earlier run"
    assert json.loads((out / "x_2" / "result.json").read_text())["files"] == now
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "no temporary folder is left behind"


def test_a_full_disk_names_the_file_and_leaves_the_old_result(photos, tmp_path, monkeypatch, lite0):
    from saliency_core import explanation

    out = tmp_path / "o"
    expl = sc.explain(str(photos["x_2"]), sc.ExplainConfig(method="center-gaussian"), classifier=lite0)
    sc.write_explanation(expl, out / "x")
    before = {p.name: p.read_bytes() for p in (out / "x").iterdir()}

    def no_space(path, array):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(explanation, "_npy", no_space)
    with pytest.raises(OSError, match=r"could not write .*mask\.npy: No space left on device"):
        sc.write_explanation(expl, out / "x", overwrite=True)
    assert {p.name: p.read_bytes() for p in (out / "x").iterdir()} == before
    assert sorted(p.name for p in out.iterdir()) == ["x"]


@pytest.mark.parametrize("where, error", [
    ("numpy", OSError("110592 requested and 76768 written")),  # numpy's short write: no errno
    ("numpy", OSError(None, "110592 requested and 76768 written")),
    ("pil", OSError(28, "No space left on device")),
])
def test_a_short_write_reads_as_a_full_disk_and_names_the_file_as_the_user_knows_it(where, error, photos, tmp_path,
                                                                                  monkeypatch, lite0):
    out = tmp_path / "o"
    expl = sc.explain(str(photos["x_2"]), sc.ExplainConfig(method="center-gaussian"), classifier=lite0)
    sc.write_explanation(expl, out / "x")
    before = {p.name: p.read_bytes() for p in (out / "x").iterdir()}

    def full(*args, **kwargs):
        raise error

    monkeypatch.setattr(*((np, "save") if where == "numpy" else (Image.Image, "save")), full)
    with pytest.raises(OSError) as caught:
        sc.write_explanation(expl, out / "x", overwrite=True)
    name = "mask.npy" if where == "numpy" else "overlay.png"
    assert str(caught.value) == f"could not write {out / 'x' / name}: No space left on device"
    assert caught.value.errno == 28
    assert {p.name: p.read_bytes() for p in (out / "x").iterdir()} == before
    assert sorted(p.name for p in out.iterdir()) == ["x"]


def test_the_cli_names_the_file_that_did_not_fit_in_one_line(photos, tmp_path, monkeypatch, capsys):
    def short_write(*args, **kwargs):
        raise OSError("110592 requested and 76768 written")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(np, "save", short_write)
    assert _explain(str(photos["x_2"]), "--out", "o") == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"error: could not write {Path('o', 'x_2', 'mask.npy')}: No space left on device"
    assert list((tmp_path / "o").iterdir()) == [], "nothing half-written is left"


def test_a_partly_failed_batch_exits_non_zero_with_a_summary(photos, tmp_path, capsys):
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    assert _explain(str(photos["x_2"]), str(bad), "--out", str(tmp_path / "o")) == 1
    assert "1 of 2 images failed: " + str(bad) in capsys.readouterr().err


def test_the_mask_has_the_size_of_the_image_as_stored(tmp_path):
    big = tmp_path / "wide.png"
    # 2600 x 300: over the 2048 px load limit, within the accepted aspect ratio (at most 10:1)
    Image.fromarray((np.random.default_rng(0).random((300, 2600, 3)) * 255).astype(np.uint8)).save(big)
    assert _explain(str(big), "--out", str(tmp_path / "o")) == 0
    result = json.loads((tmp_path / "o" / "wide" / "result.json").read_text())
    assert result["size"][0] == 2048 and result["original_size"] == [2600, 300]
    assert np.load(tmp_path / "o" / "wide" / "mask.npy").shape == (300, 2600)


# ------------------------------------------------------------------------------------------ seeds
@pytest.mark.parametrize("method, options", [("rise", ["-o", "num_masks=30"]), ("fido", ["-o", "steps=2"]),
                                             ("random", [])])
def test_the_seed_flag_reaches_every_stochastic_method(method, options, photos, tmp_path):
    masks = {}
    for run, seed in (("a", 3), ("b", 999), ("c", 3)):
        out = tmp_path / run
        assert main(["explain", str(photos["x_2"]), "--method", method, *options, "--seed", str(seed),
                     "--out", str(out)]) == 0
        masks[run] = np.load(out / "x_2" / "mask.npy")
        assert json.loads((out / "x_2" / "result.json").read_text())["seed"] == seed
    assert np.array_equal(masks["a"], masks["c"]) and not np.array_equal(masks["a"], masks["b"])


def test_a_seed_given_as_a_method_option_is_the_seed_result_json_records(photos, tmp_path):
    """``-o seed=3`` overrides ``--seed`` (default 0) for the method: result.json's ``seed`` is the method's
    (what decided the mask), and ``seeds`` lists each component's (the noise infiller still ran with 0)."""
    img = str(photos["x_2"])
    assert main(["explain", img, "--method", "random", "-o", "seed=3", "--infiller", "noise",
                 "--out", str(tmp_path / "a")]) == 0
    assert main(["explain", img, "--method", "random", "--seed", "3", "--infiller", "gray",
                 "--out", str(tmp_path / "b")]) == 0
    a = json.loads((tmp_path / "a" / "x_2" / "result.json").read_text())
    b = json.loads((tmp_path / "b" / "x_2" / "result.json").read_text())
    assert a["seed"] == 3 and a["seeds"] == {"method": 3, "infiller": 0}
    assert b["seed"] == 3 and b["seeds"] == {"method": 3}
    assert np.array_equal(np.load(tmp_path / "a" / "x_2" / "mask.npy"), np.load(tmp_path / "b" / "x_2" / "mask.npy"))
