"""End-to-end explanations and the `saliency explain` CLI on the real default classifier."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from saliency_core.cli import main
from saliency_core.explanation import ExplainConfig, explain, write_explanation
from saliency_core.labels import LabelSpec, LabelSpecError, parse_labels, resolve_labels
from saliency_core.maskers.checkpoint import save_masker
from saliency_core.maskers.phang import MaskerConfig, PhangMasker
from saliency_core.methods.base import METHODS, MethodError, MethodResult, create_method
from saliency_core.methods.trained import default_checkpoint


@pytest.fixture(scope="module")
def lite0_checkpoint(tmp_path_factory, lite0):
    """An untrained masker for the real classifier (behaviour here does not depend on training)."""
    torch.manual_seed(0)
    m = PhangMasker(MaskerConfig(stage_channels=lite0.stage_channels)).eval()
    return save_masker(tmp_path_factory.mktemp("ck") / "m.safetensors", m, lite0, {"note": "untrained"})


def test_labels_resolution():
    probs = torch.tensor([0.1, 0.5, 0.3, 0.1])
    assert resolve_labels("top1", probs) == [1]
    assert resolve_labels("top2", probs) == [1, 2]
    assert resolve_labels("3,0,3", probs) == [3, 0]
    for bad in ("top0", "top9", "7", "cat", "-1"):
        with pytest.raises(LabelSpecError):
            resolve_labels(bad, probs)


def test_one_label_parser_without_tensors_and_a_restricted_top_k():
    """parse_labels reads a choice before any work (the config, the CLI and the dashboard's links use it);
    within= ranks a topK choice among a restricted label set only (Gupta et al.'s ImageNet runs)."""
    assert parse_labels(" TOP5 ") == LabelSpec(top=5) and parse_labels("top5").count == 5
    assert parse_labels("3, 7,3") == LabelSpec(ids=(3, 7)) and str(parse_labels("3,7,3")) == "3,7"
    assert parse_labels([4, 2, 4]).ids == (4, 2) and parse_labels(9).ids == (9,)
    with pytest.raises(LabelSpecError, match="out of range .*0..9"):
        parse_labels("3,12", n_classes=10)
    with pytest.raises(LabelSpecError, match="must be top1, topK or comma-separated class indices"):
        parse_labels("top-5")
    probs = torch.tensor([0.05, 0.4, 0.3, 0.1, 0.15])
    assert resolve_labels("top2", probs, within=[0, 3, 4]) == [4, 3]  # the global top-2 (1, 2) are outside
    assert resolve_labels("top5", probs, within=[2, 0]) == [2, 0]  # at most as many as the set holds
    assert resolve_labels("1,0", probs, within=[3]) == [1, 0]  # explicit classes are taken as given


def test_explain_config_is_declared_once_frozen_and_checked_at_construction():
    from dataclasses import FrozenInstanceError

    from saliency_core.options import OptionError, declared_options

    declared = {o.name: o for o in declared_options(ExplainConfig)}
    assert {n: declared[n].default for n in ("method", "labels", "infiller", "seed")} == {
        "method": "masker", "labels": "top1", "infiller": "blur", "seed": 0}
    assert ExplainConfig() == ExplainConfig(**{n: o.default for n, o in declared.items()})
    with pytest.raises(FrozenInstanceError):
        ExplainConfig().seed = 3  # type: ignore[misc]
    with pytest.raises(OptionError, match=r"explain: option 'overlay_opacity' must be a number >= 0 and <= 1, got 2"):
        ExplainConfig(overlay_opacity=2)
    with pytest.raises(OptionError, match="option 'colormap' must be one of inferno"):
        ExplainConfig(colormap="jet")
    with pytest.raises(LabelSpecError, match="labels 'top-1' must be"):
        ExplainConfig(labels="top-1")  # refused before the classifier is even loaded
    assert ExplainConfig(seed="4").seed == 4 and ExplainConfig(labels=[7, 3]).labels == "7,3"


def test_masks_cover_the_original_image_and_views_are_consistent(lite0, chelsea, lite0_checkpoint):
    img = chelsea.crop((0, 0, 451, 250))  # an odd size
    e = explain(img, ExplainConfig(method_options={"checkpoint": str(lite0_checkpoint)}, infiller="gray"),
                classifier=lite0)
    assert e.masks.shape == (1, 250, 451) and e.masks.dtype == np.float32
    assert 0 <= e.masks.min() and e.masks.max() <= 1
    assert {v.size for v in e.views.values()} == {(451, 250)}
    # masked-in = image where the mask is 1, gray where it is 0: check one pixel by hand
    m = e.masks[0]
    y, x = np.unravel_index(np.argmax(m), m.shape)
    orig = np.asarray(img, dtype=np.float32)[y, x]
    gray = np.array(lite0.preprocessing.mean) * 255
    expect_in = orig * m[y, x] + gray * (1 - m[y, x])
    assert np.allclose(np.asarray(e.views["masked_in"], dtype=np.float32)[y, x], expect_in, atol=1.5)
    # with the gray infiller the infilled view is the masked-out view
    assert np.abs(np.asarray(e.views["infilled"], float) - np.asarray(e.views["masked_out"], float)).max() <= 2
    assert e.predictions["overlay"][0].name in {"tabby", "tiger cat", "Egyptian cat"}
    assert len(e.predictions["masked_in"]) == 5
    assert e.label_probabilities["overlay"][0] == pytest.approx(e.predictions["overlay"][0].probability)


def test_method_registry_lets_new_methods_plug_in(lite0, chelsea, registered):
    @registered(METHODS, "test-left-half", summary="keeps the left half (test only)", per_label=True)
    class LeftHalf:
        def __call__(self, classifier, x, labels, clean, progress=None):
            m = torch.zeros(len(labels), *x.shape[-2:])
            m[..., : x.shape[-1] // 2] = 1
            return MethodResult(m, per_label=True)

    e = explain(chelsea, ExplainConfig(method="test-left-half", labels="top3"), classifier=lite0)
    assert e.masks.shape == (3, 300, 451) and e.per_label
    assert e.masks[:, :, :200].min() > 0.99 and e.masks[:, :, 260:].max() < 0.01
    with pytest.raises(MethodError, match="unknown method"):
        create_method("no-such-method")
    with pytest.raises(MethodError, match="unknown option 'nonsense'"):
        create_method("masker", nonsense=1)


def test_nan_masks_are_refused(lite0, chelsea, registered):
    @registered(METHODS, "test-nan", summary="returns NaN (test only)")
    class NaNMethod:
        def __call__(self, classifier, x, labels, clean, progress=None):
            return MethodResult(torch.full((1, *x.shape[-2:]), float("nan")), per_label=False)

    with pytest.raises(FloatingPointError, match="NaN"):
        explain(chelsea, ExplainConfig(method="test-nan"), classifier=lite0)


def test_write_explanation_files(tmp_path, lite0, chelsea, lite0_checkpoint):
    e = explain(chelsea, ExplainConfig(method_options={"checkpoint": str(lite0_checkpoint)}), classifier=lite0)
    folder = write_explanation(e, tmp_path / "chelsea")
    names = {p.name for p in folder.iterdir()}
    assert {"mask.npy", "overlay.png", "masked_in.png", "masked_out.png", "infilled.png", "result.json"} <= names
    assert np.load(folder / "mask.npy").shape == (300, 451)
    result = json.loads((folder / "result.json").read_text())
    assert set(result["predictions"]) == {"overlay", "masked_in", "masked_out", "infilled"}
    assert result["method"] == "masker" and result["timings_s"]["total_s"] > 0
    assert result["predictions"]["overlay"][0]["name"] == e.predictions["overlay"][0].name


def test_cli_batch_goes_on_after_bad_images(tmp_path, chelsea, lite0_checkpoint, capsys):
    good = tmp_path / "cat.jpg"
    chelsea.save(good)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    rgba = tmp_path / "alpha.png"
    Image.fromarray(np.dstack([np.asarray(chelsea), np.full(chelsea.size[::-1], 128, np.uint8)])).save(rgba)
    rc = main(["explain", str(empty), str(good), str(text), str(rgba), "--checkpoint", str(lite0_checkpoint),
               "--out", str(tmp_path / "out"), "--labels", "top2"])
    err = capsys.readouterr().err
    assert rc == 1 and "2 of 4 images failed" in err  # the batch went on, and the exit status says it failed
    assert "empty.png: the file is empty" in err and "notes.jpg: not a recognised image" in err
    assert (tmp_path / "out" / "cat" / "mask.npy").exists() and (tmp_path / "out" / "alpha" / "result.json").exists()
    assert not (tmp_path / "out" / "empty").exists()
    assert main(["explain", str(good), "--labels", "5000", "--checkpoint", str(lite0_checkpoint),
                 "--out", str(tmp_path / "o2")]) == 1
    assert "out of range" in capsys.readouterr().err


def test_cli_reports_wrong_checkpoint_in_one_line(tmp_path, chelsea, capsys):
    good = tmp_path / "cat.jpg"
    chelsea.save(good)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"nope")
    assert main(["explain", str(good), "--checkpoint", str(bad), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "bad.safetensors" in err and "Traceback" not in err


@pytest.mark.skipif(not default_checkpoint().exists(), reason="shipped checkpoint not built yet")
def test_shipped_masker_keeps_the_evidence(lite0, chelsea):
    """The trained FIX masker: the masked-in cat is still a cat, the masked-out one much less so."""
    e = explain(chelsea, ExplainConfig(infiller="gray"), classifier=lite0)
    cats = {281, 282, 283, 284, 285, 286, 287}
    p = {v: sum(q.probability for q in e.predictions[v] if q.index in cats) for v in e.predictions}
    assert e.predictions["masked_in"][0].index in cats
    assert p["masked_out"] < 0.5 * p["masked_in"]
    assert 0.05 < e.masks.mean() < 0.8


@pytest.mark.skipif(not default_checkpoint("conditional").exists(), reason="shipped conditional checkpoint missing")
def test_cli_explains_with_the_conditional_masker_s_toggles(tmp_path, chelsea, capsys):
    """The issue's command: --checkpoint of a conditional masker picks its method, the toggles reach the mask, and a
    setting outside the trained range is refused with one line naming it."""
    img = tmp_path / "cat.jpg"
    chelsea.save(img)
    ckpt = str(default_checkpoint("conditional"))
    args = ["explain", str(img), "--checkpoint", ckpt, "-o", "objective=sdr", "-o", "tv_weight=0.05",
            "-o", "upsample=4", "-o", "infiller=noise"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    result = json.loads((tmp_path / "a" / "cat" / "result.json").read_text())
    assert result["method"] == "conditional-masker"
    assert result["info"]["setting"] == "objective=sdr, infiller=noise, tv_weight=0.05, upsample=4"
    mask = np.load(tmp_path / "a" / "cat" / "mask.npy")
    assert main(["explain", str(img), "--checkpoint", ckpt, "--out", str(tmp_path / "b")]) == 0
    assert not np.array_equal(mask, np.load(tmp_path / "b" / "cat" / "mask.npy"))  # the default setting differs
    capsys.readouterr()
    assert main(["explain", str(img), "--checkpoint", ckpt, "-o", "tv_weight=5e-5", "--out", str(tmp_path / "c")]) == 1
    err = capsys.readouterr().err
    assert "tv_weight 5e-05 is outside the range this masker was trained over (0 or 0.0001 .. 0.1)" in err
    assert main(["explain", str(img), "--checkpoint", ckpt, "-o", "tv_weight=0.5", "--out", str(tmp_path / "d")]) == 2
    err += capsys.readouterr().err  # beyond what any conditional masker is offered: refused before loading it
    assert "option 'tv_weight' must be a number >= 0 and <= 0.1, got 0.5" in err and "Traceback" not in err


def test_views_can_be_classified_after_they_are_drawn(lite0, chelsea, lite0_checkpoint):
    """render(predict_views=False) gives the pictures and the whole image's predictions only; classify_views then
    fills in those of the masked views, the same as an explanation rendered in one go (and only once)."""
    from saliency_core.explanation import classify_views, compute_masks, render

    config = ExplainConfig(method_options={"checkpoint": str(lite0_checkpoint)}, infiller="blur")
    masks = compute_masks(chelsea, config, lite0)
    whole = render(masks, config, lite0)
    later = render(masks, config, lite0, predict_views=False)
    assert not later.views_classified and list(later.predictions) == ["overlay"]
    assert later.predictions["overlay"] == whole.predictions["overlay"]
    assert all(np.array_equal(np.asarray(later.views[v]), np.asarray(whole.views[v])) for v in whole.views)
    assert classify_views(later, lite0) is later and later.views_classified
    assert list(later.predictions) == list(whole.predictions)
    for view in whole.predictions:
        assert [p.index for p in later.predictions[view]] == [p.index for p in whole.predictions[view]]
        assert later.label_probabilities[view] == pytest.approx(whole.label_probabilities[view], abs=1e-5)
    assert later.summary()["predictions"].keys() == whole.summary()["predictions"].keys()
    timings = dict(later.timings)
    classify_views(later, lite0)  # nothing left to do
    assert later.timings == timings


def test_compute_masks_reuses_the_callers_clean_forward(lite0, chelsea, lite0_checkpoint, monkeypatch):
    """A kept forward of the unmasked image is used as is (no second classification) and gives the same masks;
    one for another batch size is refused."""
    from saliency_core.explanation import classify_clean, compute_masks, working_input
    from saliency_core.images.loading import LoadedImage

    config = ExplainConfig(method_options={"checkpoint": str(lite0_checkpoint)})
    loaded = LoadedImage(chelsea, "chelsea", chelsea.size)
    clean = classify_clean(lite0, working_input(loaded, lite0))
    expected = compute_masks(loaded, config, lite0)
    calls = []
    original = type(lite0).forward_features
    monkeypatch.setattr(type(lite0), "forward_features", lambda self, x: calls.append(1) or original(self, x))
    again = compute_masks(loaded, config, lite0, clean=clean)
    assert not calls and torch.allclose(again.masks, expected.masks, atol=1e-6)
    doubled = type(clean)(logits=clean.logits.repeat(2, 1), stages=clean.stages, head=clean.head)
    with pytest.raises(ValueError, match="2 images"):
        compute_masks(loaded, config, lite0, clean=doubled)
