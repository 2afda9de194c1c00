"""The Streamlit dashboard driven through ``AppTest``: every page, every toggle, the error paths.

Most tests run the app on the tiny random 10-class classifier (``resources.current_classifier`` is
patched, as the Streamlit docs' examples patch their backend) with an untrained masker made for
it, so they are fast; one test uses the real EfficientNet-Lite0. Assertions compare what the page
shows with what the core computes directly, and check invariants (a curve ends at f(x, a),
completeness follows its formula, restricted probabilities sum to 1).
"""
from __future__ import annotations

import io
import json
import os
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

from dashboard import (curve_scores, export, inputs, menus, progress, resources, result_cache, sections, services,
                       uploads, widgets)
from dashboard.help_text import PAPERS, TOGGLES
from dashboard.settings import DashboardConfigError, DashboardSettings
from saliency_core.cli import main as cli_main
from saliency_core.cli.dashboard_command import streamlit_command
from saliency_core.explanation import ExplainConfig, predict
from saliency_core.images.loading import load_image
from saliency_core.maskers import catalog
from saliency_core.maskers.checkpoint import save_masker
from saliency_core.maskers.phang import MaskerConfig, PhangMasker

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")
TIMEOUT = 120


# --------------------------------------------------------------------------- fixtures and helpers


def _png(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _photo(size=(96, 64)) -> Image.Image:
    from skimage import data

    return Image.fromarray(data.coffee()).resize(size)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, tiny_classifier):
    """The tiny classifier, a masker checkpoint for it, and bad checkpoints."""
    folder = tmp_path_factory.mktemp("dash_ckpts")
    torch.manual_seed(1)
    masker = PhangMasker(MaskerConfig(stage_channels=tiny_classifier.stage_channels)).eval()
    good = save_masker(folder / "tiny_fix.safetensors", masker, tiny_classifier, {"note": "untrained, tests"})
    other_dir = tmp_path_factory.mktemp("dash_other")
    from saliency_core.classifiers import load_classifier

    torch.manual_seed(5)
    other_clf = load_classifier("timm:test_efficientnet", random_init=True, num_classes=10)
    other = save_masker(other_dir / "other.safetensors",
                        PhangMasker(MaskerConfig(stage_channels=other_clf.stage_channels)).eval(), other_clf, {})
    corrupt = other_dir / "corrupt.safetensors"
    corrupt.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{not json" + bytes(range(200)))
    empty = other_dir / "empty.safetensors"
    empty.write_bytes(b"")
    return SimpleNamespace(clf=tiny_classifier, folder=folder, good=good, other=other, corrupt=corrupt,
                           empty=empty, shipped=tmp_path_factory.mktemp("no_shipped"))


@pytest.fixture
def recorder(monkeypatch):
    """Records the ExplainConfig of every explanation the pages look up (computed or cached)."""
    seen: list[ExplainConfig] = []
    original = services.cached_explanation

    def spy(image, config, classifier, cache, show=None):
        seen.append(config)
        return original(image, config, classifier, cache, show=show)

    monkeypatch.setattr(services, "cached_explanation", spy)
    return seen


@pytest.fixture
def no_curves(monkeypatch):
    """Leave the per-label curves out (for tests about other parts of the page: faster)."""
    monkeypatch.setattr(curve_scores, "curves_available", lambda: False)


@pytest.fixture
def app(tiny, monkeypatch):
    """An AppTest of the dashboard on the tiny classifier with only the test checkpoint folder."""
    monkeypatch.setenv("SALIENCY_DASHBOARD_CHECKPOINT_DIRS", str(tiny.folder))
    monkeypatch.setattr(catalog, "checkpoints_dir", lambda: tiny.shipped)  # ignore the repo's checkpoints/
    from saliency_core.methods import (
        trained as masker_method,  # the shipped label masker is for Lite0: not offered here
    )

    monkeypatch.setattr(masker_method, "default_checkpoint", lambda kind="phang": tiny.shipped / f"{kind}.safetensors")
    monkeypatch.setattr(resources, "current_classifier", lambda: tiny.clf)
    return AppTest.from_file(APP, default_timeout=TIMEOUT)


def _ok(at: AppTest) -> None:
    assert not at.exception, [e.message for e in at.exception]


def _errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def _charts(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def _arr(value) -> np.ndarray:
    """A plotly JSON array: a list, or plotly's typed-array encoding {"dtype", "bdata"(, "shape")}."""
    if isinstance(value, dict) and "bdata" in value:
        import base64

        out = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        if "shape" in value:
            out = out.reshape([int(v) for v in str(value["shape"]).split(",")])
        return out
    return np.asarray(value)


def _curve_chart(at: AppTest) -> dict:
    charts = [c for c in _charts(at) if any(t.get("type") == "scatter" for t in c["data"])]
    assert len(charts) == 1, "expected one insertion-curve chart"
    return charts[0]


def _upload(at: AppTest, name: str, data: bytes, mime: str = "image/png") -> AppTest:
    at.sidebar.radio(key="image_source").set_value("Upload").run()
    at.file_uploader(key="upload").set_value((name, data, mime))
    return at.run()


def _views_shown(at: AppTest) -> bool:
    return any("Masked in (kept)" in m.value for m in at.markdown)


def _top5_text(at: AppTest) -> str:
    idx = [i for i, m in enumerate(at.markdown) if m.value == "**The classifier says**"]
    assert idx, "the top-5 block is missing"
    return at.markdown[idx[0] + 1].value


# --------------------------------------------------------------------------- the command


def test_command_is_offline_headless_and_quiet():
    argv, env = streamlit_command("127.0.0.1", 8765, DashboardSettings(max_upload_mb=7))
    joined = " ".join(argv)
    assert argv[1:4] == ["-m", "streamlit", "run"] and argv[4].endswith("dashboard/app.py")
    for flag in ("--server.headless true", "--server.address 127.0.0.1", "--server.port 8765",
                 "--browser.gatherUsageStats false", "--server.fileWatcherType none", "--server.maxUploadSize 7",
                 "--server.showEmailPrompt false", "--client.showErrorDetails none", "--runner.fastReruns false"):
        assert flag in joined
    assert env["STREAMLIT_BROWSER_GATHER_USAGE_STATS"] == "false" and env["STREAMLIT_SERVER_HEADLESS"] == "true"
    assert DashboardSettings.from_env(env) == DashboardSettings(max_upload_mb=7)
    with pytest.raises(DashboardConfigError):
        streamlit_command("127.0.0.1", 70000, DashboardSettings())
    with pytest.raises(DashboardConfigError):
        DashboardSettings.from_env({"SALIENCY_DASHBOARD_MAX_PIXELS": "lots"})
    with pytest.raises(DashboardConfigError):
        DashboardSettings(curve_steps=0)


def test_cli_prints_the_command_and_refuses_a_bad_port(capsys):
    assert cli_main(["dashboard", "--port", "8123", "--host", "0.0.0.0", "--print-command"]) == 0
    out = capsys.readouterr().out
    assert "--server.port 8123" in out and "--server.address 0.0.0.0" in out
    assert "STREAMLIT_BROWSER_GATHER_USAGE_STATS=false" in out
    assert cli_main(["dashboard", "--port", "0", "--print-command"]) == 2
    assert "port must be between" in capsys.readouterr().err


# --------------------------------------------------------------------------- explain page


def test_explain_page_shows_top5_views_curves_and_downloads(app, tiny):
    at = app.run()
    _ok(at)
    assert not _errors(at)
    # the top-5 is the classifier's own top-5 on the sample photo
    img = load_image(inputs.gallery_input("chelsea").data).image
    expected = predict(img, tiny.clf, k=5)
    shown = _top5_text(at)
    for rank, p in enumerate(expected, 1):
        assert f"{rank}. {p.name} {p.probability:.1%}" in shown
    assert _views_shown(at) and len(at.image) >= 1  # the original
    # the four views: a figure each (with its title and predictions), the same size; hovering the overlay gives the mask
    views = [c for c in _charts(at) if any(t.get("type") == "image" for t in c["data"])]
    assert len(views) == 4 and len({c["layout"]["height"] for c in views}) == 1
    heat = [t for t in views[0]["data"] if t.get("type") == "heatmap"]
    assert heat and heat[0]["zmin"] == 0 and heat[0]["zmax"] == 1
    # curves: 5 labels (shared mask), 17 points each, every curve ends at its f(x, a) line
    chart = _curve_chart(at)
    curves = [t for t in chart["data"] if t.get("mode") == "lines+markers"]
    refs = [t for t in chart["data"] if t.get("mode") == "lines"]
    assert len(curves) == 5 and len(refs) == 5
    for c, r in zip(curves, refs):
        x, y = _arr(c["x"]), _arr(c["y"])
        assert len(y) == 17 and x[0] == 0 and x[-1] == 1
        assert y[-1] == pytest.approx(_arr(r["y"])[0], abs=1e-6)
    assert {c["name"].split(" (")[0] for c in curves} == {p.name for p in expected}
    frame = at.dataframe[0].value
    assert list(frame["label"]) == [p.index for p in expected]
    assert {m.label for m in at.metric} >= {"worst completeness", "worst soundness"}
    assert at.metric[0].value == f"{frame['completeness'].min():.3f}"
    labels = {b.label for b in at.download_button}
    assert {"mask (PNG)", "mask (NPY)", "per-label scores (CSV)", "result.json", "infilled (PNG)"} <= labels


def test_explanations_are_cached_by_image_hash_and_options(app, monkeypatch):
    import saliency_core

    calls = []
    original = saliency_core.render

    def counting(*args, **kwargs):
        calls.append(args[1].to_dict())
        return original(*args, **kwargs)

    monkeypatch.setattr(saliency_core, "render", counting)
    at = app.run()
    at.sidebar.selectbox(key="gallery_name").set_value("rocket").run()
    n = len(calls)
    at.run()
    at.sidebar.selectbox(key="gallery_name").set_value("chelsea").run()
    at.sidebar.selectbox(key="gallery_name").set_value("rocket").run()
    _ok(at)
    assert len(calls) == n, "the same image + options must come from the cache"
    at.number_input(key="inf:blur:sigma").set_value(3.0).run()
    assert len(calls) == n + 1 and calls[-1]["infiller_options"] == {"sigma": 3.0}


def test_every_quick_method_and_option_maps_to_its_core_option(app, tiny, recorder, no_curves):
    app.session_state["opt:rise:num_masks"] = 40  # small from the start (the default is 1000)
    app.session_state["opt:integrated-gradients:steps"] = 3
    app.session_state["labels_mode"] = "top-1"  # one label: per-label methods make one map
    at = app.run()
    catalog = menus.method_catalog()
    quick = [n for n, e in catalog.items() if not e.on_request]
    assert {"masker", "grad-cam", "random"} <= set(quick)
    for name in quick:
        at.sidebar.selectbox(key="method").set_value(name).run()
        _ok(at)
        assert not _errors(at), (name, _errors(at))
        assert _views_shown(at), name
        assert recorder[-1].method == name
        changed = {}
        for spec in catalog[name].options:  # every toggle changed at once, then one run
            value = _other_value(spec) if spec.kind != "checkpoint" else None
            if value is not None:
                _set(at, f"opt:{name}:{spec.name}", spec, value, run=False)
                changed[spec.name] = value
        if changed:
            at.run()
            _ok(at)
            assert not _errors(at), (name, _errors(at))
            for option, value in changed.items():
                assert recorder[-1].method_options.get(option) == value, (name, option)


def _other_value(spec):
    """A valid non-default value for a toggle (small, so the runs stay fast)."""
    small = {"num_masks": 40, "steps": 3, "batch_size": 8, "grid": 4, "samples": 4}
    if spec.name in small:
        return small[spec.name] if small[spec.name] != spec.default else small[spec.name] + 1
    if spec.kind == "bool":
        return not spec.default
    if spec.kind in ("choice", "infiller"):
        choices = list(spec.choices) if spec.kind == "choice" else widgets.infiller_names()
        return next(c for c in choices if c != spec.default)
    if spec.kind == "int":  # within the declared range
        return max(int(spec.default or 0) + 1, int(spec.low or 0))
    if spec.kind == "float" and _log_slider(spec):
        values = widgets.log_choices(spec)
        return values[values.index(spec.default) - 1]  # the next smaller value of its slider
    if spec.kind == "float":
        v = round((spec.default or 0.1) * 0.5, 6)
        return v
    if spec.kind == "text":
        return None  # text options are checked with their own values (grad-cam layer below)
    raise AssertionError(spec)


def _log_slider(spec) -> bool:
    """Whether the dashboard draws this option as a slider over a log grid (weights spanning decades)."""
    return spec.kind == "float" and spec.log and spec.high is not None and bool(spec.default)


def _set(at: AppTest, key: str, spec, value, run: bool = True) -> None:
    if spec.kind == "bool":
        widget = at.checkbox(key=key).set_value(value)
    elif spec.kind in ("choice", "infiller"):
        widget = at.selectbox(key=key).set_value(value)
    elif _log_slider(spec):
        widget = at.select_slider(key=key).set_value(value)
    elif spec.kind in ("int", "float"):
        widget = at.number_input(key=key).set_value(value)
    else:
        widget = at.text_input(key=key).input(value)
    if run:
        widget.run()


def test_grad_cam_layer_option_and_a_bad_layer_is_one_error(app, no_curves):
    at = app.run()
    at.sidebar.selectbox(key="method").set_value("grad-cam").run()
    at.text_input(key="opt:grad-cam:layer").input("conv_stem").run()
    _ok(at)
    assert not _errors(at) and _views_shown(at)
    at.text_input(key="opt:grad-cam:layer").input("no_such_layer").run()
    _ok(at)
    errors = _errors(at)
    assert len(errors) == 1 and "no layer 'no_such_layer'" in errors[0] and "\n" not in errors[0]
    assert "The classifier says" in " ".join(m.value for m in at.markdown)  # the rest of the page works


def test_optimisation_toggles_run_on_request_and_cancel(app, recorder, no_curves):
    at = app.run()
    catalog = menus.method_catalog()
    slow = [n for n, e in catalog.items() if e.on_request]
    if not slow:
        pytest.skip("no per-image optimisation method is registered")
    name = "fido" if "fido" in slow else slow[0]
    at.sidebar.selectbox(key="method").set_value(name).run()
    _ok(at)
    assert not _views_shown(at), "optimisation must wait for Run"
    assert any("press Run" in i.value for i in at.info)
    changed = {}
    for spec in catalog[name].options:  # every toggle reaches the core under its own name
        value = _other_value(spec)
        if value is not None:
            _set(at, f"opt:{name}:{spec.name}", spec, value, run=False)
            changed[spec.name] = value
    at.run()
    _ok(at)
    assert not _errors(at)
    for option, value in changed.items():
        assert recorder[-1].method_options.get(option) == value, option
    resources.results().clear()  # test_each_optimisation_method_runs may have cached this very run (2 steps)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)  # a fresh session: default options, few steps
    at.session_state["labels_mode"] = "top-1"
    at.run()
    at.sidebar.selectbox(key="method").set_value(name).run()
    at.button(key="cancel_method").click().run()
    assert any("Cancelled" in i.value for i in at.info) and not _views_shown(at)
    at.number_input(key=f"opt:{name}:steps").set_value(2).run()
    at.button(key="run_method").click().run()
    _ok(at)
    assert not _errors(at) and _views_shown(at)
    at.run()  # the result stays (cached) without pressing Run again
    assert _views_shown(at)


def test_each_optimisation_method_runs(app, no_curves):
    catalog = menus.method_catalog()
    names = [n for n in ("fido", "meaningful-perturbation", "gupta") if n in catalog]
    if not names:
        pytest.skip("no per-image optimisation method is registered")
    resources.results().clear()  # earlier tests may have cached some of these runs
    app.session_state["labels_mode"] = "top-1"  # one mask per run: fast
    at = app.run()
    for name in names:
        at.sidebar.selectbox(key="method").set_value(name).run()
        at.number_input(key=f"opt:{name}:steps").set_value(2).run()
        at.button(key="run_method").click().run()
        _ok(at)
        assert not _errors(at), (name, _errors(at))
        assert _views_shown(at), name


def test_live_progress_draws_the_mask_as_it_forms():
    def script():
        import torch as _torch

        from dashboard.progress import LiveProgress

        p = LiveProgress("optimising", show_mask=True, every_s=0.0)
        p(0.5, "step 5/10", current_masks=_torch.rand(2, 16, 24))

    at = AppTest.from_function(script, default_timeout=TIMEOUT).run()
    _ok(at)
    assert at.get("progress")[0].proto.value == 50
    assert at.image[0].proto.imgs[0].caption == "the mask as it forms"


def test_labels_toggle_top1_topk_and_picked_classes(app, tiny, recorder):
    at = app.run()
    assert recorder[-1].labels == "top5"  # the default: five labels, five curves
    at.sidebar.radio(key="labels_mode").set_value("top-1").run()
    assert recorder[-1].labels == "top1"
    at.sidebar.radio(key="labels_mode").set_value("top-k").run()
    at.sidebar.slider(key="labels_k").set_value(3).run()
    _ok(at)
    assert recorder[-1].labels == "top3"
    at.sidebar.radio(key="labels_mode").set_value("pick classes").run()
    assert recorder[-1].labels == "top1" and any("Pick at least one" in c.value for c in at.caption)
    at.sidebar.multiselect(key="labels_classes").set_value([7, 2]).run()
    _ok(at)
    assert recorder[-1].labels == "7,2"
    # a per-label method draws one curve per picked label, with that label's own mask
    at.sidebar.selectbox(key="method").set_value("grad-cam").run()
    _ok(at)
    curves = [t for t in _curve_chart(at)["data"] if t.get("mode") == "lines+markers"]
    assert [c["name"] for c in curves] == [f"{tiny.clf.class_names[i]} ({i})" for i in (7, 2)]


def test_infiller_toggles_and_their_options(app, recorder, no_curves):
    at = app.run()
    for name in widgets.infiller_names():
        at.sidebar.selectbox(key="infiller").set_value(name).run()
        _ok(at)
        assert not _errors(at), (name, _errors(at))
        assert recorder[-1].infiller == name and _views_shown(at)
        if name == "random-image":
            assert recorder[-1].infiller_options.get("pool") == inputs.GALLERY_POOL
    assert "none" not in widgets.infiller_names()  # an alias of gray is shown once
    at.sidebar.selectbox(key="infiller").set_value("local-mean").run()
    at.number_input(key="inf:local-mean:window").set_value(7).run()
    _ok(at)
    assert recorder[-1].infiller_options == {"window": 7}
    at.number_input(key="inf:local-mean:window").set_value(8).run()  # even: the core refuses it
    errors = _errors(at)
    assert len(errors) == 1 and "window" in errors[0]


def test_curve_toggles_follow_their_formulas(app):
    at = app.run()
    at.number_input(key="curve_steps").set_value(4).run()
    at.slider(key="labels_k").set_value(3).run()  # one labels choice drives the masks and the curves
    _ok(at)
    curves = [t for t in _curve_chart(at)["data"] if t.get("mode") == "lines+markers"]
    assert len(curves) == 3 and all(len(_arr(c["y"])) == 5 for c in curves)
    at.number_input(key="eps1").set_value(0.5).run()
    at.number_input(key="eps2").set_value(0.2).run()
    frame = at.dataframe[0].value
    expect_c = np.minimum(np.maximum(frame["auc"], 0.5) / frame["f"], 1.0)
    expect_s = np.minimum(np.maximum(frame["f"], 0.2) / frame["auc"], 1.0)
    assert np.allclose(frame["completeness"], expect_c, atol=1e-5)
    assert np.allclose(frame["soundness"], expect_s, atol=1e-5)
    at.checkbox(key="restrict_to").check().run()
    _ok(at)
    frame = at.dataframe[0].value
    assert frame["f"].sum() == pytest.approx(1.0, abs=1e-5)  # softmax over the three curve labels only


# --------------------------------------------------------------------------- bad input


def _bomb() -> bytes:
    return _png(Image.new("1", (9000, 9000)))  # 81 MP decoded, a few kB on disk


BAD_UPLOADS = {
    "empty.png": (b"", "empty"),
    "truncated.png": (None, "corrupt"),
    "notes.png": (b"these are my notes, not a picture\n" * 20, "not a recognised image"),
    "bomb.png": (None, "too large"),
}


@pytest.mark.parametrize("name", list(BAD_UPLOADS))
def test_bad_uploads_give_one_clear_message_and_the_page_keeps_working(app, name, no_curves):
    data, expected = BAD_UPLOADS[name]
    if name == "truncated.png":
        data = _png(_photo())[:300]
    elif name == "bomb.png":
        data = _bomb()
    at = _upload(app.run(), name, data)
    _ok(at)
    errors = _errors(at)
    assert len(errors) == 1, errors
    assert expected in errors[0] and name in errors[0] and "\n" not in errors[0]
    assert not _views_shown(at)
    assert at.sidebar.selectbox(key="method").value  # the controls still work
    at.sidebar.radio(key="image_source").set_value("Sample photo").run()
    _ok(at)
    assert not _errors(at) and _views_shown(at)


def test_upload_size_limit(app, monkeypatch, no_curves):
    monkeypatch.setenv("SALIENCY_DASHBOARD_MAX_UPLOAD_MB", "1")
    rng = np.random.default_rng(0)
    noisy = Image.fromarray(rng.integers(0, 256, (800, 800, 3), dtype=np.uint8))
    data = _png(noisy)
    assert len(data) > 2 ** 20
    at = _upload(app.run(), "big.png", data)
    _ok(at)
    errors = _errors(at)
    assert len(errors) == 1 and "limit is 1 MB" in errors[0]


def _odd_images() -> dict[str, tuple[bytes, str | None]]:
    photo = _photo()
    arr16 = (np.asarray(photo.convert("L"), dtype=np.uint16) * 257)
    rgba = photo.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(photo.size))
    frames = [photo, photo.rotate(90, expand=False)]
    gif = io.BytesIO()
    frames[0].save(gif, "GIF", save_all=True, append_images=frames[1:], duration=100)
    return {
        "cmyk.jpg": (_png(photo.convert("CMYK"), "JPEG"), "CMYK"),
        "deep.png": (_png(Image.fromarray(arr16)), "8-bit"),
        "palette.png": (_png(photo.convert("P")), None),
        "alpha.png": (_png(rgba), "transparent"),
        "animated.gif": (gif.getvalue(), "animated"),
        "photo.webp": (_png(photo, "WEBP"), None),
        "photo.bmp": (_png(photo, "BMP"), None),
        "photo.tiff": (_png(photo, "TIFF"), None),
    }


def test_odd_image_modes_and_formats_are_explained(app, no_curves):
    at = app.run()
    for name, (data, note) in _odd_images().items():
        at = _upload(at, name, data)
        _ok(at)
        assert not _errors(at), (name, _errors(at))
        assert _views_shown(at), name
        captions = " ".join(c.value for c in at.caption)
        if note:
            assert note in captions, (name, captions)


def test_checkpoint_errors_are_one_line_and_the_rest_works(app, tiny, no_curves, monkeypatch):
    import os

    at = app.run()
    assert at.sidebar.selectbox(key="checkpoint_masker").value == str(tiny.good.resolve())
    # the operator's folders hold a checkpoint for another classifier, a corrupt file and an empty one
    folders = os.pathsep.join(map(str, (tiny.folder, tiny.other.parent)))
    monkeypatch.setenv("SALIENCY_DASHBOARD_CHECKPOINT_DIRS", folders)
    at.run()
    assert not [t for t in at.text_input if "checkpoint" in (t.key or "")], "visitors must not name server paths"
    cases = {tiny.other: "trained for classifier", tiny.corrupt: "not a valid masker checkpoint",
             tiny.empty: "is empty"}
    for path, expected in cases.items():
        at.sidebar.selectbox(key="checkpoint_masker").set_value(str(path.resolve())).run()
        _ok(at)
        errors = _errors(at)
        assert len(errors) == 1 and expected in errors[0] and "\n" not in errors[0], errors
        assert "The classifier says" in " ".join(m.value for m in at.markdown)
    # an uploaded corrupt checkpoint: the same message, naming the file as uploaded; a good upload works
    at.sidebar.selectbox(key="checkpoint_masker").set_value(widgets.UPLOAD_CHECKPOINT).run()
    at.file_uploader(key="checkpoint_masker_upload").set_value(("bad.safetensors", tiny.corrupt.read_bytes(),
                                                                "application/octet-stream")).run()
    errors = _errors(at)
    assert len(errors) == 1 and "not a valid masker checkpoint" in errors[0] and "'bad.safetensors'" in errors[0]
    assert str(uploads.UPLOAD_ROOT) not in errors[0]
    at.file_uploader(key="checkpoint_masker_upload").set_value(("good.safetensors", tiny.good.read_bytes(),
                                                                "application/octet-stream")).run()
    _ok(at)
    assert not _errors(at) and _views_shown(at)


def test_a_session_s_uploads_are_deleted_with_it(tmp_path):
    import gc

    session = uploads.SessionUploads()
    path = uploads.store_uploaded_checkpoint(b"x" * 10, "../../etc/m.safetensors", 1, session.folder)
    assert path.exists() and path.name == "m.safetensors" and session.folder in path.parents
    folder = session.folder
    del session
    gc.collect()
    assert not folder.exists()


def test_an_ended_session_s_uploads_are_reaped_after_the_grace(tmp_path):
    """The session state of a closed browser can outlive it by ten minutes (Streamlit drops it when another page
    loads): the reaper deletes its folder once the session has been gone for the grace, and not before."""
    root = tmp_path / "uploads"
    root.mkdir()
    a, b = root / "session-aaa-x1", root / "session-b-b-x2"
    for folder in (a, b, root / "not-a-session"):
        folder.mkdir()
    assert uploads.session_of(a) == "aaa" and uploads.session_of(b) == "b-b"
    active = {"aaa", "b-b"}
    seen: dict[str, float] = {}
    assert uploads.reap_session_uploads(root, active.__contains__, seen, now=0.0, grace_s=20) == []
    active.discard("b-b")  # b's browser closed
    assert uploads.reap_session_uploads(root, active.__contains__, seen, now=1.0, grace_s=20) == []
    assert b.exists(), "a reconnect within the grace keeps the folder"
    assert uploads.reap_session_uploads(root, active.__contains__, seen, now=21.5, grace_s=20) == [b]
    assert not b.exists() and a.exists() and (root / "not-a-session").exists()


def test_an_upload_folder_is_named_after_its_session():
    session = uploads.SessionUploads("5f1c-77ab")
    try:
        assert uploads.session_of(session.folder) == "5f1c-77ab" and session.folder.parent == uploads.UPLOAD_ROOT
    finally:
        session.remove()


def test_a_file_name_does_not_leak_to_another_session_with_the_same_bytes(app, tiny, no_curves):
    """Session 1 uploads a photo as alice_private_scan.png; session 2 uploads the same bytes as bob.png. The
    results are shared by content, but session 2 must see (and download) its own name only."""
    data = _png(_photo())
    first = _upload(app.run(), "alice_private_scan.png", data)
    _ok(first)
    shown = [i.caption for el in first.image for i in el.proto.imgs if i.caption]
    assert any("alice_private_scan.png" in c for c in shown), shown
    second = AppTest.from_file(APP, default_timeout=TIMEOUT)
    second = _upload(second.run(), "bob.png", data)
    _ok(second)
    shown = [i.caption for el in second.image for i in el.proto.imgs if i.caption]
    assert any(c.startswith("bob.png") for c in shown), shown
    assert "alice" not in repr(second._tree), "session 1's file name reached session 2"
    names = [getattr(x, "name", "") for v in resources.results()._data.values() for x in (v, getattr(v, "loaded", v))]
    assert not [n for n in names if "alice" in str(n) or "bob" in str(n)], "a shared cached result carries a name"


def test_exposure_is_printed_for_a_non_loopback_host():
    from saliency_core.cli.dashboard_command import exposure

    assert exposure("127.0.0.1", DashboardSettings()) == []
    lines = exposure("0.0.0.0", DashboardSettings(checkpoint_dirs="/srv/maskers"))
    assert "0.0.0.0" in lines[0] and any("/srv/maskers" in line for line in lines)


# --------------------------------------------------------------------------- other pages


def test_compare_page_grid_scores_and_a_failing_method(app, tiny, monkeypatch):
    at = app.run()
    at.switch_page("app_pages/compare.py").run()
    _ok(at)
    picked = at.sidebar.multiselect(key="compare_methods").value
    assert "masker: tiny_fix" in picked and "grad-cam" in picked
    folders = os.pathsep.join(map(str, (tiny.folder, tiny.other.parent)))
    monkeypatch.setenv("SALIENCY_DASHBOARD_CHECKPOINT_DIRS", folders)
    at.run()
    at.sidebar.multiselect(key="compare_methods").set_value(["masker: tiny_fix", "masker: other", "random"]).run()
    _ok(at)
    errors = _errors(at)
    assert len(errors) == 1 and "trained for classifier" in errors[0]
    rows = at.dataframe[0].value
    assert list(rows["method"]) == ["masker: tiny_fix", "random"]
    assert {"time (s)", "worst completeness", "worst soundness", "top-1 insertion AUC"} <= set(rows.columns)
    assert (rows["worst completeness"] <= 1).all() and (rows["worst soundness"] <= 1).all()
    assert len(at.image) == 2 * 4  # two methods x four views
    bars = [c for c in _charts(at) if c["data"] and c["data"][0].get("type") == "bar"]
    assert bars and list(bars[0]["data"][0]["x"]) == ["masker: tiny_fix", "random"]


def test_demo_page_plain_captions_and_tour(app, tiny):
    at = app.run()
    at.switch_page("app_pages/demo.py").run()
    _ok(at)
    img = load_image(inputs.gallery_input("chelsea").data).image
    top = predict(img, tiny.clf, k=1)[0]
    text = " ".join(m.value for m in at.markdown)
    # the tiny random classifier is unsure of everything: the page says so, and gives a verdict
    assert f"The classifier is **not sure**: its best guess is **\u201c{top.name}\u201d**" in text
    assert any(v in text for v in ("works here", "Partly", "did not work"))
    assert "when it sees only the highlighted part" in text and "highlighted part is removed" in text
    assert "What it looked at" in text and "masker" not in text.lower() and "saliency" not in text.lower()
    at.button(key="tour_start").click().run()
    assert any("step 1 of" in m.value for m in at.markdown)
    at.button(key="tour_next").click().run()
    assert any("step 2 of" in m.value for m in at.markdown)
    at.button(key="tour_back").click().run()
    assert any("step 1 of" in m.value for m in at.markdown)
    at.button(key="tour_end").click().run()
    _ok(at)
    assert not any("Tour, step" in m.value for m in at.markdown)


def test_help_page_explains_every_toggle_with_its_paper(app):
    at = app.run()
    at.switch_page("app_pages/help.py").run()
    _ok(at)
    text = " ".join(m.value for m in at.markdown)
    for entry in menus.method_catalog().values():  # method options: the help declared beside the code
        for spec in entry.options:
            assert spec.help.strip().endswith((".", ")")), f"{entry.name} option '{spec.name}' has no help text"
            assert f"(`{spec.name}`," in text and spec.help in text
    for name in ("method", "labels", "infiller", "seed", "curve_steps", "eps1", "eps2"):  # the dashboard's own
        assert name in TOGGLES, f"toggle '{name}' has no help text"
        assert f"(`{name}`)" in text
    for entry in TOGGLES.values():  # two sentences each
        assert entry.text.rstrip().endswith(".") and entry.text.count(". ") >= 1, entry.title
    for paper in PAPERS.values():
        assert paper in text


# --------------------------------------------------------------------------- sessions and caches


def test_two_sessions_at_once_do_not_interfere(app, tiny, monkeypatch):
    """Two browser sessions (AppTest instances) run in parallel threads on the shared model and
    caches, with different images and methods; each shows exactly what it shows when run alone.

    The sessions share one script cache, as a server's sessions do (its lock compiles the page once). AppTest gives
    each session a cache of its own, and two threads compiling the page's syntax tree at once trip CPython 3.11's
    "AST constructor recursion depth mismatch" (a race in the interpreter, not in the app)."""
    from streamlit.runtime.scriptrunner.script_cache import ScriptCache
    from streamlit.testing.v1 import app_test, local_script_runner

    shared = ScriptCache()
    compiled_through_it: list[str] = []
    get_bytecode = shared.get_bytecode
    monkeypatch.setattr(shared, "get_bytecode", lambda path: compiled_through_it.append(path) or get_bytecode(path))
    monkeypatch.setattr(local_script_runner, "ScriptCache", lambda: shared)
    monkeypatch.setattr(app_test, "ScriptCache", lambda: shared)
    resources.results().clear()

    def session(photo: str, method: str, out: dict) -> None:
        at = AppTest.from_file(APP, default_timeout=TIMEOUT)
        at.session_state["gallery_name"] = photo  # chosen before the first run: one run per session
        at.session_state["method"] = method
        at.session_state["labels_k"] = 2  # two labels, 8 curve steps: the check, at a small cost
        at.session_state["curve_steps"] = 8
        at.run()
        out["exc"] = [e.message for e in at.exception]
        out["errors"] = _errors(at)
        out["text"] = [m.value for m in at.markdown]
        out["curves"] = [_arr(t["y"]) for t in _curve_chart(at)["data"] if t.get("mode") == "lines+markers"]

    results = {}
    runs = [("coffee", "grad-cam"), ("astronaut", "masker"), ("rocket", "gradient-x-input")]
    threads = [threading.Thread(target=session, args=(p, m, results.setdefault((p, m), {}))) for p, m in runs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert compiled_through_it  # the sessions' pages came through the one cache
    resources.results().clear()
    for p, m in runs:  # the same sessions one at a time, from an empty cache
        alone: dict = {}
        session(p, m, alone)
        both = results[(p, m)]
        assert not both["exc"] and not both["errors"], both
        assert both["text"] == alone["text"], (p, m)
        assert np.allclose(np.array(both["curves"]), np.array(alone["curves"]), atol=1e-6), (p, m)


def test_result_cache_is_lru_and_thread_safe():
    cache = result_cache.ResultCache(max_entries=3)
    for i in range(5):
        cache.put(str(i), i)
    assert cache.get("0") is None and cache.get("4") == 4 and len(cache) == 3
    cache.get("2")
    cache.put("5", 5)  # evicts the least recently used ("3")
    assert cache.get("3") is None and cache.get("2") == 2

    def hammer(k: int) -> None:
        for i in range(200):
            cache.put(f"{k}-{i}", i)
            cache.get(f"{k}-{i - 1}")

    threads = [threading.Thread(target=hammer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(cache) == 3


def test_an_interrupted_explanation_is_not_cached(tiny):
    """A cancelled run (the progress callback raises, as a Streamlit rerun does) leaves no result."""
    cache = result_cache.ResultCache()
    image = inputs.gallery_input("coffee")
    loaded = load_image(image.data)
    config = ExplainConfig(method="rise", method_options={"num_masks": 20, "batch_size": 5})

    class Stop(Exception):
        pass

    def progress(fraction, message, **_):
        raise Stop()

    method = menus.build_method("rise", config.method_options)
    with pytest.raises(Stop):
        services.run_explanation(image, loaded, config, tiny.clf, method, cache, progress=progress)
    assert services.cached_explanation(image, config, tiny.clf, cache) is None
    expl = services.run_explanation(image, loaded, config, tiny.clf, method, cache)
    assert services.cached_explanation(image, config, tiny.clf, cache) is expl


def test_downloads_are_the_mask_and_views(tiny):
    mask = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
    back = np.load(io.BytesIO(export.mask_npy(mask)))
    assert back.dtype == np.float32 and np.array_equal(back, mask)
    png = np.asarray(Image.open(io.BytesIO(export.mask_png(mask))))
    assert png.shape == (3, 4) and png[0, 0] == 0 and png[-1, -1] == 255


def test_one_line_messages():
    assert sections.one_line(ValueError("bad thing\nsecond line"), "x") == "bad thing"
    assert sections.one_line(RuntimeError("boom"), "Explaining") == "Explaining failed: RuntimeError: boom"
    assert len(sections.one_line(ValueError("y" * 1000), "x")) <= 300


# --------------------------------------------------------------------------- the real classifier


def test_real_classifier_says_cat_for_chelsea(monkeypatch, tmp_path, lite0, no_curves):
    """The embedded EfficientNet-Lite0 (the session's shared instance) on the default sample photo;
    without any masker checkpoint the default method is Grad-CAM."""
    monkeypatch.setattr(catalog, "checkpoints_dir", lambda: tmp_path)
    monkeypatch.delenv("SALIENCY_DASHBOARD_CHECKPOINT_DIRS", raising=False)
    monkeypatch.setattr(resources, "current_classifier", lambda: lite0)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    _ok(at)
    assert not _errors(at)
    assert at.sidebar.selectbox(key="method").value == "grad-cam"
    top1 = _top5_text(at).splitlines()[0]
    assert any(cat in top1 for cat in ("tabby", "tiger cat", "Egyptian cat")), top1
    assert _views_shown(at)


def test_default_classifier_loads_once_per_process(monkeypatch):
    """``resources.classifier`` is a process-wide cache: the same frozen object for every session."""
    built = []

    def fake_load(name, weights=None, device="cpu"):
        built.append(name)
        return SimpleNamespace(name=name, frozen=True)

    monkeypatch.setattr(resources, "load_classifier", fake_load)
    resources.classifier.clear()
    try:
        first = resources.classifier("efficientnet_lite0", "", "cpu")
        assert resources.classifier("efficientnet_lite0", "", "cpu") is first and built == ["efficientnet_lite0"]
    finally:
        resources.classifier.clear()


def test_label_masker_is_listed_only_with_its_checkpoint(monkeypatch, tmp_path):
    """No dead control: without a shipped label checkpoint the per-label masker is not offered."""
    from saliency_core.methods import trained as masker_method

    monkeypatch.setattr(masker_method, "default_checkpoint", lambda kind="phang": tmp_path / f"{kind}.safetensors")
    assert "label-masker" not in menus.method_catalog()
    assert "masker" in menus.method_catalog()
    (tmp_path / "label.safetensors").write_bytes(b"x")
    assert "label-masker" in menus.method_catalog()


def test_shipped_label_masker_draws_one_mask_and_curve_per_label(monkeypatch, lite0):
    """The embedded classifier with the shipped per-label masker: five masks, each under its own label,
    and the per-label curves scored from those five masks."""
    monkeypatch.delenv("SALIENCY_DASHBOARD_CHECKPOINT_DIRS", raising=False)
    monkeypatch.setattr(resources, "current_classifier", lambda: lite0)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.sidebar.selectbox(key="method").set_value("label-masker").run()
    _ok(at)
    assert not _errors(at)
    top5 = [line.split(". ", 1)[1].rsplit(" ", 1)[0] for line in _top5_text(at).splitlines()]
    shown = [i.caption.rsplit(" (", 1)[0] for el in at.image for i in el.proto.imgs if i.caption]
    assert [s for s in shown if s in top5] == top5, shown       # one overlay per label, in rank order
    curves = [t for t in _curve_chart(at)["data"] if t.get("mode") == "lines+markers"]
    assert len(curves) == 5
    frame = at.dataframe[0].value
    assert list(frame["name"]) == top5 and frame["completeness"].between(0, 1).all()


def test_checkpoints_carry_their_kind_and_the_label_masker_lists_only_its_own(app, tiny, monkeypatch):
    """The per-label masker's checkpoint menu has only label checkpoints (its own widget and default), so
    switching from 'masker' never hands it a label-agnostic file."""
    from saliency_core.maskers.label import LabelMasker, LabelMaskerConfig, output_layer_weights

    codes = output_layer_weights(tiny.clf)
    label = save_masker(tiny.folder / "tiny_label.safetensors", LabelMasker(LabelMaskerConfig(
        stage_channels=tiny.clf.stage_channels, label_dim=codes.shape[1], film_at="hidden")).eval(), tiny.clf, {},
        kind="label")
    try:
        kinds = {c.path.name: c.kind for c in menus.find_checkpoints([tiny.folder])}
        assert kinds["tiny_label.safetensors"] == "label" and kinds["tiny_fix.safetensors"] == "phang"
        from saliency_core.methods import trained as masker_method

        monkeypatch.setattr(masker_method, "default_checkpoint",  # as if this one shipped: the method is listed
                            lambda kind="phang": label if kind == "label" else tiny.good)
        at = app.run()
        at.sidebar.selectbox(key="method").set_value("label-masker").run()
        _ok(at)
        menu = at.sidebar.selectbox(key="checkpoint_label-masker")
        assert [o for o in menu.options if o.startswith("tiny")] == ["tiny_label"], menu.options
        assert not [e.value for e in at.error]
        assert len(at.image) >= 1 + 5                                   # the original + one overlay per top-5 label
    finally:
        label.unlink()
        label.with_suffix(".json").unlink(missing_ok=True)


def _count_method_calls(monkeypatch) -> list[str]:
    calls: list[str] = []
    original = menus.build_method

    def counting(name, options):
        method = original(name, options)
        inner = method.__call__

        class Counted:
            def __getattr__(self, item):
                return getattr(method, item)

            def __call__(self, *a, **k):
                calls.append(name)
                return inner(*a, **k)

        return Counted()

    monkeypatch.setattr(menus, "build_method", counting)
    resources._method.clear()
    resources._results.clear()  # no result of an earlier test
    return calls


def _spy_compute_masks(monkeypatch) -> list[tuple[str, dict]]:
    """Record the (labels, method options) of every explanation the page computes, in order."""
    import saliency_core as sc

    seen: list[tuple[str, dict]] = []
    original = sc.compute_masks

    def spy(image, config, **kw):
        seen.append((config.labels, dict(config.method_options)))
        return original(image, config, **kw)

    monkeypatch.setattr(sc, "compute_masks", spy)
    return seen


def test_a_view_only_change_reuses_the_method_s_masks(app, monkeypatch, no_curves):
    """After a per-image optimisation has run, changing the infilled view's infiller (or its options) redraws the
    views at once: the method is not run again and Run is not asked for; a mask option does ask for Run."""
    calls = _count_method_calls(monkeypatch)
    at = app.run()
    at.sidebar.selectbox(key="method").set_value("fido").run()
    at.number_input(key="opt:fido:steps").set_value(2).run()
    at.button(key="run_method").click().run()
    _ok(at)
    assert _views_shown(at) and calls.count("fido") == 1
    at.sidebar.selectbox(key="infiller").set_value("gray").run()  # only the infilled view depends on it
    _ok(at)
    assert _views_shown(at) and calls.count("fido") == 1, calls
    assert not any("press Run" in i.value for i in at.info)
    at.sidebar.selectbox(key="infiller").set_value("blur").run()
    at.number_input(key="inf:blur:sigma").set_value(4.0).run()
    assert _views_shown(at) and calls.count("fido") == 1, calls
    at.number_input(key="opt:fido:steps").set_value(3).run()  # the masks depend on it: Run again
    assert any("press Run" in i.value for i in at.info) and calls.count("fido") == 1


def test_one_labels_choice_and_a_shown_label(app, monkeypatch):
    """A label-agnostic mask is not recomputed when the labels change (and the page says it is the same for
    every label); the curves follow the labels; a per-label method's "show" choice redraws the views only."""
    calls = _count_method_calls(monkeypatch)
    app.session_state["labels_mode"] = "top-1"
    at = app.run()
    _ok(at)
    assert calls.count("masker") == 1 and any("one mask for the whole picture" in c.value for c in at.caption)
    at.radio(key="labels_mode").set_value("top-k").run()
    at.slider(key="labels_k").set_value(3).run()
    _ok(at)
    assert calls.count("masker") == 1, calls
    curves = [t for t in _curve_chart(at)["data"] if t.get("mode") == "lines+markers"]
    assert len(curves) == 3
    at.sidebar.selectbox(key="method").set_value("gradient-x-input").run()
    _ok(at)
    assert calls.count("gradient-x-input") == 1
    show = at.selectbox(key="show_label")
    first_overlay = at.get("plotly_chart")[0].proto.spec
    assert len(show.options) == 3
    photo = load_image(inputs.gallery_input("chelsea").data).image
    labels = [p.index for p in predict(photo, resources.current_classifier(), k=3)]
    show.set_value(labels[2]).run()
    _ok(at)
    assert calls.count("gradient-x-input") == 1, "showing another label's mask must not run the method again"
    assert at.get("plotly_chart")[0].proto.spec != first_overlay


def test_compare_runs_slow_methods_only_on_request_with_an_estimate(app, monkeypatch, no_curves):
    calls = _count_method_calls(monkeypatch)
    at = app.run()
    at.switch_page("app_pages/compare.py").run()
    at.sidebar.multiselect(key="compare_methods").set_value(["random", "fido"]).run()
    _ok(at)
    assert calls.count("random") == 1 and "fido" not in calls, "a slow method must wait for Run"
    assert any("fido: about" in c.value or "fido: under" in c.value for c in at.caption)
    at.button(key="compare_cancel").click().run()
    assert "fido" not in calls and any("Cancelled" in i.value for i in at.info)
    at.button(key="compare_run").click().run()
    _ok(at)
    assert calls.count("fido") == 1 and len(at.image) == 2 * 4
    at.run()  # done once: its result stays without another Run
    assert calls.count("fido") == 1 and len(at.image) == 2 * 4


def test_a_link_reproduces_the_view(app):
    """The sample photo, the method, its main options and the labels go into the URL; a session opened with
    that URL shows the same choices."""
    at = app.run()
    at.sidebar.selectbox(key="gallery_name").set_value("coffee").run()
    at.sidebar.selectbox(key="method").set_value("fido").run()
    at.number_input(key="opt:fido:steps").set_value(7).run()
    at.radio(key="labels_mode").set_value("top-1").run()
    _ok(at)
    params = dict(at.query_params)
    flat = {k: (v[0] if isinstance(v, list) else v) for k, v in params.items()}
    assert flat == {"image": "coffee", "method": "fido", "steps": "7", "labels": "top1"}, flat
    fresh = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for key, value in flat.items():
        fresh.query_params[key] = value
    fresh.run()
    _ok(fresh)
    assert fresh.sidebar.selectbox(key="gallery_name").value == "coffee"
    assert fresh.sidebar.selectbox(key="method").value == "fido"
    assert fresh.number_input(key="opt:fido:steps").value == 7
    assert fresh.radio(key="labels_mode").value == "top-1"


def _open_link(params: dict[str, str]) -> AppTest:
    fresh = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for key, value in params.items():
        fresh.query_params[key] = value
    return fresh.run()


def _link_notes(at: AppTest) -> str:
    return " ".join(w.value for w in at.sidebar.warning)


def test_a_link_with_bad_values_names_each_with_what_is_used_instead(app, no_curves):
    """tv_weight=0.5, upsample=3, objective=foo and method=nonexistent were dropped without a word."""
    at = _open_link({"method": "fido", "tv_weight": "500", "upsample": "3", "objective": "foo", "steps": "7",
                     "l1_weight": "0.003", "labels": "top99"})
    _ok(at)
    notes = _link_notes(at)
    for expected in ("tv_weight='500'", "<= 100", "upsample='3'", "one of 1, 2, 4, 8", "objective='foo'",
                     "using the default, ssr", "l1_weight='0.003'", "using the nearest, 0.002", "labels='top99'",
                     "using the top-5"):
        assert expected in notes, (expected, notes)
    assert at.sidebar.selectbox(key="method").value == "fido" and at.number_input(key="opt:fido:steps").value == 7
    at.sidebar.button(key="url_notes_ok").click().run()
    assert not at.sidebar.warning
    at = _open_link({"method": "nonexistent", "image": "nosuchphoto"})
    _ok(at)
    notes = _link_notes(at)
    assert "method='nonexistent' is not available" in notes and "image='nosuchphoto'" in notes, notes
    assert not _link_notes(_open_link({"method": "fido", "steps": "50", "labels": "top1"}))  # a good link: no word


def test_a_link_sets_a_value_without_streamlit_s_default_value_warning(app, no_curves, monkeypatch):
    """?method=fido&steps=50 and labels=top1 wrote a 30-line 'Stack (most recent call last)' warning into the
    server log: the widgets were given a default and a value set from the link."""
    import logging

    from streamlit.elements.lib import policies

    monkeypatch.setattr(policies, "_shown_default_value_warning", False)
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    policies._LOGGER.addHandler(handler)
    try:
        at = _open_link({"method": "fido", "steps": "50", "labels": "top1"})
    finally:
        policies._LOGGER.removeHandler(handler)
    _ok(at)
    assert at.number_input(key="opt:fido:steps").value == 50 and at.radio(key="labels_mode").value == "top-1"
    assert not [r.getMessage() for r in records], [r.getMessage() for r in records]


def test_picked_classes_and_an_upload_go_into_the_link(app, no_curves):
    at = app.run()
    at.sidebar.radio(key="labels_mode").set_value("pick classes").run()
    at.sidebar.multiselect(key="labels_classes").set_value([3, 1]).run()
    _ok(at)
    flat = {k: (v[0] if isinstance(v, list) else v) for k, v in dict(at.query_params).items()}
    assert flat["labels"] == "3,1", flat
    fresh = _open_link(flat)
    assert fresh.sidebar.radio(key="labels_mode").value == "pick classes"
    assert fresh.sidebar.multiselect(key="labels_classes").value == [3, 1]
    up = _upload(app.run(), "chelsea.png", _png(_photo()))  # named like a sample photo, but another photo
    flat = {k: (v[0] if isinstance(v, list) else v) for k, v in dict(up.query_params).items()}
    assert flat["image"] == "upload", flat
    assert "uploaded photo" in _link_notes(_open_link(flat))


def test_the_comparison_exports_as_one_self_contained_html_file(app, tiny):
    at = app.run()
    at.switch_page("app_pages/compare.py").run()
    at.sidebar.multiselect(key="compare_methods").set_value(["masker: tiny_fix", "random"]).run()
    _ok(at)
    assert any(b.label.startswith("Download this comparison") for b in at.download_button)
    import saliency_core

    photo = inputs.gallery_input("chelsea")
    expl = services.run_explanation(photo, load_image(photo.data), ExplainConfig(method="random"), tiny.clf,
                                    menus.build_method("random", {}), result_cache.ResultCache())
    page = export.comparison_report("chelsea.png", [("random", expl), ("again", expl)],
                                      [{"method": "random", "worst completeness": 0.5}], {"labels": "top5"},
                                      tiny.clf).decode()
    assert page.count("<img src='data:image/jpeg;base64,") == 8  # two methods x four views, embedded
    assert "worst completeness" in page and tiny.clf.identity in page and saliency_core.__version__ in page
    assert "http://" not in page and "https://" not in page  # opens offline


def test_a_very_wide_image_gets_one_view_a_row(app, no_curves):
    at = app.run()
    at.sidebar.radio(key="image_source").set_value("Upload").run()
    wide = _png(_photo((1200, 150)))
    at.file_uploader(key="upload").set_value(("wide.png", wide, "image/png")).run()
    _ok(at)
    titled = [c for c in at.columns if c.markdown and c.markdown[0].value.strip("*") in sections.VIEW_TITLES.values()]
    assert len(titled) == 4 and all(c.weight == 1.0 for c in titled)  # four rows, each the full width


def test_overlay_opacity_and_colour_map_redraw_without_the_method(app, monkeypatch, no_curves):
    calls = _count_method_calls(monkeypatch)
    at = app.run()
    first = next(c for c in _charts(at) if any(t.get("type") == "image" for t in c["data"]))["data"][0]["source"]
    at.selectbox(key="colormap").set_value("gray").run()
    at.slider(key="overlay_opacity").set_value(0.3).run()
    _ok(at)
    now = next(c for c in _charts(at) if any(t.get("type") == "image" for t in c["data"]))["data"][0]["source"]
    assert now != first and calls.count("masker") == 1
    from saliency_core.images.pictures import overlay

    photo = Image.new("RGB", (4, 1), (200, 100, 50))
    out = np.asarray(overlay(photo, np.array([[0.0, 0.5, 1.0, 1.0]], np.float32), alpha=0.5, cmap="gray"), float)
    assert np.array_equal(out[0, 0], [200, 100, 50])  # no tint where the mask is 0
    assert np.allclose(out[0, 2], 0.5 * np.array([200, 100, 50]) + 0.5 * 255, atol=1)  # gray map, half opacity


# --------------------------------------------------------------------------- the conditional masker


@pytest.fixture
def conditional(app, tiny, monkeypatch):
    """A conditional masker for the tiny classifier (random condition MLP, so every toggle changes the mask), as if
    shipped; its TV range stops at 0.01 (the slider goes on to 0.1), its area range is 0.5 .. 2 (the slider: 0.25 .. 4)."""
    from saliency_core.maskers.conditional import ConditionalMasker, ConditionalMaskerConfig
    from saliency_core.methods import trained as masker_method

    torch.manual_seed(3)
    masker = ConditionalMasker(ConditionalMaskerConfig(stage_channels=tiny.clf.stage_channels, tv_high=0.01,
                                                       area_low=0.5, area_high=2.0))
    torch.nn.init.normal_(masker.condition[-1].weight, std=0.5)
    path = save_masker(tiny.folder / "tiny_conditional.safetensors", masker.eval(), tiny.clf, {}, kind="conditional")
    monkeypatch.setattr(masker_method, "default_checkpoint",
                        lambda kind="phang": path if kind == "conditional" else tiny.good)
    yield app
    path.unlink()
    path.with_suffix(".json").unlink(missing_ok=True)


def _overlay_mask(at: AppTest) -> np.ndarray:
    """The mask drawn under the overlay (the heat map of the views figure)."""
    chart = next(c for c in _charts(at) if any(t.get("type") == "heatmap" for t in c["data"]))
    return _arr(next(t for t in chart["data"] if t.get("type") == "heatmap")["z"])


def test_conditional_masker_toggles_redraw_without_run_and_pin_a_b(conditional, tiny, monkeypatch, no_curves):
    """The toggles, drawn with the per-image methods' widgets and help; each change redraws the mask and the
    views at once (the masker runs again, no Run button); "Pin as A" keeps a setting on screen above the current one;
    the sliders span the checkpoint's trained range (a value outside it is refused in the core: test_conditional)."""
    calls = _count_method_calls(monkeypatch)
    at = conditional.run()
    at.sidebar.selectbox(key="method").set_value("conditional-masker").run()
    _ok(at)
    assert not _errors(at) and _views_shown(at)
    fido = {s.name: s for s in menus.method_catalog()["fido"].options}
    for name in ("objective", "tv_weight", "upsample"):
        widget = at.sidebar.get("select_slider" if name == "tv_weight" else "selectbox")
        assert any(w.key == f"opt:conditional-masker:{name}" and w.help.startswith(fido[name].help)
                   for w in widget), name
    assert at.sidebar.selectbox(key="opt:conditional-masker:infiller").options == ["gray", "blur", "noise",
                                                                                    "random-image"]
    masks = [_overlay_mask(at)]
    clean_forwards = []  # the unmasked image is classified once per image, not once per toggle
    original_ff = type(tiny.clf).forward_features
    monkeypatch.setattr(type(tiny.clf), "forward_features",
                        lambda self, x: clean_forwards.append(x.shape[0]) or original_ff(self, x))
    for key, value in [("objective", "sdr"), ("infiller", "noise"), ("upsample", 8)]:
        at.sidebar.selectbox(key=f"opt:conditional-masker:{key}").set_value(value).run()
        masks.append(_overlay_mask(at))
    at.sidebar.select_slider(key="opt:conditional-masker:tv_weight").set_value(0.01).run()
    masks.append(_overlay_mask(at))
    # the widgets offer the loaded checkpoint's trained range only (its option_space), not the method's default span
    assert at.sidebar.select_slider(key="opt:conditional-masker:area_weight").options == ["0.5", "1", "2"]
    tv_offered = [float(v) for v in at.sidebar.select_slider(key="opt:conditional-masker:tv_weight").options]
    assert 0.01 in tv_offered and max(tv_offered) == 0.01
    at.sidebar.select_slider(key="opt:conditional-masker:area_weight").set_value(2.0).run()
    masks.append(_overlay_mask(at))
    _ok(at)
    assert not _errors(at) and not any("press Run" in i.value for i in at.info)
    assert calls.count("conditional-masker") == 6 and not clean_forwards
    assert all(not np.array_equal(a, b) for a, b in zip(masks, masks[1:]))
    assert len(np.unique(masks[3])) < len(np.unique(masks[2]))  # upsampling 8: blocks

    at.button(key="ab_pin_button").click().run()
    assert any(m.value.startswith("**A (pinned)**") for m in at.markdown)
    at.sidebar.selectbox(key="opt:conditional-masker:objective").set_value("ssr").run()
    _ok(at)
    pinned, now = [_arr(next(t for t in c["data"] if t.get("type") == "heatmap")["z"])
                   for c in _charts(at) if any(t.get("type") == "heatmap" for t in c["data"])][:2]
    assert np.array_equal(pinned, masks[-1]) and not np.array_equal(pinned, now)
    words = [m.value for m in at.markdown if m.value.startswith(("**A (pinned)**", "**B (now)**"))]
    assert "objective remove the class" in words[0] and "objective keep the class" in words[1]  # plain words
    assert "checkpoint" not in " ".join(words)
    at.button(key="ab_unpin_button").click().run()
    assert not any(m.value.startswith("**A (pinned)**") for m in at.markdown)

    at.sidebar.select_slider(key="opt:conditional-masker:tv_weight").set_value(0.002).run()
    assert not _errors(at) and _views_shown(at)


def test_toggles_a_checkpoint_was_trained_at_one_value_are_not_drawn(app, tiny, monkeypatch, no_curves):
    """A conditional checkpoint trained at one TV weight and without area weights: those two sliders are not drawn
    (no other value would be accepted), the mask is made at the trained TV weight, the other toggles still work."""
    from saliency_core.maskers.conditional import ConditionalMasker, ConditionalMaskerConfig
    from saliency_core.methods import trained as masker_method

    torch.manual_seed(3)
    masker = ConditionalMasker(ConditionalMaskerConfig(stage_channels=tiny.clf.stage_channels, tv_low=0.03,
                                                       tv_high=0.03, tv_zero=False, default_tv_weight=0.03))
    torch.nn.init.normal_(masker.condition[-1].weight, std=0.5)
    path = save_masker(tiny.folder / "tiny_tv_point.safetensors", masker.eval(), tiny.clf, {}, kind="conditional")
    monkeypatch.setattr(masker_method, "default_checkpoint",
                        lambda kind="phang": path if kind == "conditional" else tiny.good)
    at = app.run()
    at.sidebar.selectbox(key="method").set_value("conditional-masker").run()
    _ok(at)
    assert not _errors(at) and _views_shown(at)
    sliders = {w.key for w in at.sidebar.select_slider}
    assert "opt:conditional-masker:tv_weight" not in sliders and "opt:conditional-masker:area_weight" not in sliders
    first = _overlay_mask(at)
    at.sidebar.selectbox(key="opt:conditional-masker:upsample").set_value(8).run()
    _ok(at)
    assert not _errors(at) and not np.array_equal(first, _overlay_mask(at))
    path.unlink()
    path.with_suffix(".json").unlink(missing_ok=True)


def test_log_weights_get_a_slider_over_zero_and_a_1_2_5_grid():
    from saliency_core.options import Option

    spec = Option(name="tv_weight", kind="float", default=1e-3, help="", low=0.0, high=0.1, log=True)
    assert widgets.log_choices(spec) == [0.0, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 0.01, 0.02, 0.05, 0.1]
    odd = Option(name="l1", kind="float", default=3e-4, help="", low=0.0, low_open=True, high=1e-2, log=True)
    assert widgets.log_choices(odd) == [5e-5, 1e-4, 2e-4, 3e-4, 5e-4, 1e-3, 2e-3, 5e-3, 0.01]  # no 0; its default
    area = Option(name="area_weight", kind="float", default=1.0, help="", low=0.25, high=4.0, log=True)
    assert widgets.log_choices(area) == [0.25, 0.5, 1.0, 2.0, 4.0]  # both bounds, nothing outside them


def test_the_heap_is_frozen_once_after_the_classifier_is_loaded(monkeypatch):
    """gc.freeze runs once per server, and only once the classifier (the bulk of the heap) is loaded: after it a
    full garbage-collector pass no longer walks that heap inside a toggle's rerun."""
    import gc

    done: list[str] = []
    monkeypatch.setattr(gc, "collect", lambda *a: done.append("collect") or 0)
    monkeypatch.setattr(gc, "freeze", lambda: done.append("freeze"))
    monkeypatch.setattr(resources, "_heap", {"loaded": False, "frozen": False})
    resources.freeze_heap()
    assert not done  # nothing loaded yet: freezing now would leave the classifier to later passes
    resources._heap["loaded"] = True
    resources.freeze_heap()
    resources.freeze_heap()
    assert done == ["collect", "freeze"]


# --------------------------------------------------------------------------- issue 26: A/B, views, Demo words, groups


def _column_texts(at: AppTest) -> list[str]:
    """The markdown of each column on the page (nested columns' text is in their parent's too)."""
    return ["\n".join(m.value for m in col.markdown) for col in at.columns]


def test_a_b_side_by_side_with_both_predictions_curves_and_a_score_table(app, tiny):
    """"Pin as A" puts A and B in two columns, each view with its predictions; A's curves stay (dashed) on the one
    curves chart with B's; a table gives A, B and B − A for every score."""
    at = app.run()
    at.button(key="ab_pin_button").click().run()
    at.sidebar.selectbox(key="method").set_value("random").run()
    _ok(at)
    assert not _errors(at)
    texts = _column_texts(at)
    a_cols = [t for t in texts if t.startswith("**A (pinned)**")]
    b_cols = [t for t in texts if t.startswith("**B (now)**")]
    assert a_cols and b_cols, texts[:4]
    a_text, b_text = a_cols[0], b_cols[0]
    assert "B (now)" not in a_text and "A (pinned)" not in b_text  # side by side, not one above the other
    for text in (a_text, b_text):  # each with its four views' titles and predictions
        assert all(t in text for t in ("Mask overlay", "Masked in (kept)", "Masked out (removed)", "Infilled"))
        assert text.count("1. ") >= 4
    chart = _curve_chart(at)
    a_traces = [t for t in chart["data"] if t["name"].startswith("A: ")]
    b_traces = [t for t in chart["data"] if t["name"].startswith("B: ")]
    assert len(a_traces) == 5 and len(b_traces) == 5
    assert all(t["line"]["dash"] == "dash" for t in a_traces)
    assert all(t["line"].get("dash") in (None, "solid") for t in b_traces)
    table = next(d.value for d in at.dataframe if {"A", "B", "B − A"} <= set(d.value.columns))
    assert "worst completeness" in list(table["score"])
    diff = table["B"] - table["A"]
    assert np.allclose(table["B − A"].dropna(), diff.dropna(), atol=1e-9)
    # A's scores are the pinned masker's own: the same as its curves with nothing pinned
    at.button(key="ab_unpin_button").click().run()
    at.sidebar.selectbox(key="method").set_value("masker").run()
    alone = at.dataframe[0].value
    assert table.set_index("score").loc["worst completeness", "A"] == pytest.approx(alone["completeness"].min())


def test_views_each_hold_their_title_picture_and_predictions(app, no_curves):
    """One column (a phone stacks columns) per view: its title, its picture, its predictions; no tool bar over the
    pictures."""
    at = app.run()
    _ok(at)
    views = [col for col in at.columns if col.markdown and col.markdown[0].value.startswith("**")
             and any(t in col.markdown[0].value for t in sections.VIEW_TITLES.values())]
    assert len(views) == 4, [c.markdown[0].value for c in at.columns if c.markdown]
    for col in views:
        assert len(col.get("plotly_chart")) == 1  # its own picture
        assert any(m.value.startswith("1. ") for m in col.markdown)  # its own predictions
    for chart in at.get("plotly_chart"):
        if any(t.get("type") == "image" for t in json.loads(chart.proto.spec)["data"]):
            assert json.loads(chart.proto.config).get("displayModeBar") is False


def test_compare_pictures_are_labelled_with_their_view_and_method(app, no_curves):
    at = app.run()
    at.switch_page("app_pages/compare.py").run()
    at.sidebar.multiselect(key="compare_methods").set_value(["masker: tiny_fix", "random"]).run()
    _ok(at)
    captions = [i.proto.imgs[0].caption for i in at.image]
    assert len(captions) == 8
    for method in ("masker: tiny_fix", "random"):
        for title in sections.VIEW_TITLES.values():
            assert any(title in c and method in c for c in captions), (method, title, captions)


def test_demo_wording_matches_the_overlay_and_an_unsure_guess_comes_first(app):
    from dashboard import plain_words

    source = (Path(APP).parent / "app_pages" / "demo.py").read_text()
    assert "dark parts mattered little" not in source
    assert "left as it is" in source or "untouched" in source
    at = app.run()
    at.switch_page("app_pages/demo.py").run()
    _ok(at)
    texts = [m.value for m in at.markdown]
    unsure = next(i for i, t in enumerate(texts) if "**not sure**" in t)
    verdict = next(i for i, t in enumerate(texts) if any(v in t for v in ("works here", "artly", "did not work")))
    assert unsure < verdict, texts  # the tiny classifier is unsure: said before the verdict
    assert not texts[verdict].startswith("**"), texts[verdict]  # and the verdict is not a bold headline then
    assert plain_words.verdict("tabby", 0.8, 0.7, 0.05).startswith("**The explanation works here")
    hedged = plain_words.verdict("tabby", 0.3, 0.25, 0.05, unsure=True)
    assert not hedged.startswith("**") and "works here" in hedged and "unsure" in hedged


def test_rise_is_not_a_gradient_baseline(app):
    from saliency_core.methods import GROUPS, method_entry
    from dashboard import plain_words

    for name in ("rise", "rise-preview"):
        group = method_entry(name).attrs["group"]
        assert group != "Gradient baseline" and group in GROUPS
        assert group in plain_words.HOW
    assert method_entry("grad-cam").attrs["group"] == "Gradient baseline"
    at = app.run()
    at.switch_page("app_pages/help.py").run()
    text = " ".join(m.value for m in at.markdown)
    assert "**rise** (perturbation baseline)" in text


def test_a_mask_that_keeps_almost_everything_is_said_under_the_views(app, no_curves):
    at = app.run()
    note = "keeps almost all of the picture"
    assert not any(note in c.value for c in at.caption)
    at.sidebar.selectbox(key="method").set_value("center-gaussian").run()
    at.number_input(key="opt:center-gaussian:sigma").set_value(10.0).run()  # a Gaussian 10x the image: ~1 everywhere
    _ok(at)
    assert any(note in c.value for c in at.caption), [c.value for c in at.caption]


# --------------------------------------------------------------------------- curves in one pass, a ticking status


def _count_curve_forwards(monkeypatch) -> list[int]:
    """The batch size of every classifier forward made by the per-label curves (``label_scores``)."""
    import saliency_core

    sizes: list[int] = []
    original = saliency_core.label_scores

    def counting(classifier, *args, **kwargs):
        class Counted:
            def __getattr__(self, item):
                return getattr(classifier, item)

            def __call__(self, x):
                sizes.append(int(x.shape[0]))
                return classifier(x)

        return original(Counted(), *args, **kwargs)

    monkeypatch.setattr(saliency_core, "label_scores", counting)
    return sizes


def test_curves_are_one_batched_forward_and_a_toggle_back_is_instant(app, monkeypatch):
    """The top-5 curves of a per-label method (5 masks x 16 steps) are one classifier forward; on the same image
    the two end points of every curve are not classified again (75 images, not 77); going back to a seen setting
    takes them from the cache (no forward at all)."""
    resources.results().clear()
    sizes = _count_curve_forwards(monkeypatch)
    at = app.run()
    at.sidebar.selectbox(key="method").set_value("gradient-x-input").run()
    _ok(at)
    assert not _errors(at)
    assert len(_curve_chart(at)["data"]) >= 5
    # the masker's curves: 17 images (15 steps + the two end points); gradient x input's 5 masks: one forward
    # of 75, the end points of this image being known already (77 before, in two forwards of 64 + 13)
    assert sizes == [17, 5 * 15], sizes
    at.radio(key="labels_mode").set_value("top-k").run()
    at.slider(key="labels_k").set_value(3).run()
    _ok(at)
    assert sizes[-1] == 3 * 15 and len(sizes) == 3, sizes  # same image: the end points are known
    n = len(sizes)
    at.slider(key="labels_k").set_value(5).run()  # back to a seen setting
    at.slider(key="labels_k").set_value(3).run()
    _ok(at)
    assert len(sizes) == n, "a toggle back to a seen setting must not recompute the curves"
    assert len([t for t in _curve_chart(at)["data"] if t.get("mode") == "lines+markers"]) == 3


def test_the_status_says_1_label_and_the_curves_have_their_own_busy_line():
    assert sections.curves_label(16, 1) == "Insertion curves (16 steps, 1 label)"
    assert sections.curves_label(16, 5) == "Insertion curves (16 steps, 5 labels)"

    def script():
        import streamlit as _st

        from dashboard import progress as _progress

        slot = _st.empty()
        _st.session_state["status_slot"] = slot
        p = _progress.LiveProgress("curves", bar=False, top=False, marker=True)
        _st.session_state["marker"] = p.marker is not None and p.status is None

    at = AppTest.from_function(script, default_timeout=TIMEOUT).run()
    _ok(at)
    assert at.session_state["marker"]
    assert any("curves" in c.value for c in at.caption), "the section's own busy line"
    assert not any("Running" in m.value for m in at.markdown), "nothing on the page's top status line"


def test_status_text_moves_with_a_fake_clock():
    """Elapsed time and, for work that reports no progress, the elapsed share of the estimate move every tick."""
    def script():
        import streamlit as _st

        from dashboard import progress as _progress

        now = [100.0]
        p = _progress.LiveProgress("integrated-gradients", estimate_s=15.0, clock=lambda: now[0])
        texts, fractions = [], []
        for _ in range(4):
            now[0] += 1.0
            p.tick()
            texts.append(p.status_text())
            fractions.append(p.shown_fraction())
        _st.session_state["texts"], _st.session_state["fractions"] = texts, fractions

    at = AppTest.from_function(script, default_timeout=TIMEOUT).run()
    _ok(at)
    texts, fractions = at.session_state["texts"], at.session_state["fractions"]
    assert texts == [f"**Running:** integrated-gradients — {s} s of about 15 s" for s in (1, 2, 3, 4)]
    assert fractions == pytest.approx([1 / 15, 2 / 15, 3 / 15, 4 / 15])
    assert at.get("progress")[0].proto.value == 26  # the bar moved with the estimate (4 of 15 s)


def test_a_slow_method_without_progress_still_ticks_every_half_second():
    """A real 1.6 s call that reports nothing: the status is redrawn at least once a second (every 0.5 s)."""
    import time

    stamps: list[float] = []

    class Shown:
        def __call__(self, *a, **k):
            pass

        def tick(self):
            stamps.append(time.monotonic())

    t0 = time.monotonic()
    out = progress.run_ticking(lambda progress: time.sleep(1.6) or "done", (), {}, Shown(), tick_s=0.5)
    assert out == "done"
    gaps = np.diff([t0] + stamps)
    assert len(stamps) >= 3 and gaps.max() < 1.0, gaps


def test_a_rerun_stops_the_ticking_work_at_its_next_progress_update():
    """A Streamlit rerun raises where the status is redrawn; the worker's next progress update then raises, so the
    work stops (and caches nothing)."""
    import time

    class Rerun(BaseException):
        pass

    reached: list[int] = []

    def work(progress):
        for i in range(50):
            time.sleep(0.05)
            progress(i / 50, f"step {i}")
            reached.append(i)
        return "finished"

    class Shown:  # drawing an update or the time elapsed is where Streamlit raises its rerun
        def __call__(self, *a, **k):
            raise Rerun()

        def tick(self):
            raise Rerun()

    with pytest.raises(Rerun):
        progress.run_ticking(work, (), {}, Shown(), tick_s=0.1)
    time.sleep(0.3)
    stopped_at = len(reached)
    time.sleep(0.3)
    assert len(reached) == stopped_at < 50, "the work must stop after the rerun"


# --------------------------------------------------------------------------- links, exports, unsure comparisons


def _non_default(spec):
    """A value other than the option's declared default that its widget accepts (from the declaration only)."""
    if spec.kind == "bool":
        return not spec.default
    if spec.kind == "choice":
        return next(c for c in spec.choices if c != spec.default)
    if spec.kind == "infiller":
        return next(n for n in widgets.infiller_names() if n != spec.default and menus.infiller_options(n))
    if widgets.slider_choices(spec) is not None:  # a log-scale weight or a fraction: a step of its slider
        return next(v for v in widgets.slider_choices(spec) if v != spec.default)
    if spec.kind in ("int", "float"):
        d = spec.default
        candidates = [d + 1, d * 2] if spec.kind == "int" and d is not None else \
            [int((spec.low or 0) + 8)] if spec.kind == "int" else \
            [d / 2, d * 2, d + 1] if d else [0.5, 1.0, (spec.low or 0) + 0.5]

        def ok(v):
            return v != d and (spec.low is None or (v > spec.low if spec.low_open else v >= spec.low)) and \
                (spec.high is None or v <= spec.high)

        return next(v for v in candidates if ok(v))
    return "conv_head"


def _widget(at: AppTest, spec, key: str):
    if spec.kind == "bool":
        return at.checkbox(key=key)
    if spec.kind in ("choice", "infiller"):
        return at.selectbox(key=key)
    if widgets.slider_choices(spec) is not None:
        return at.select_slider(key=key)
    if spec.kind == "float" and spec.low is not None and spec.high is not None and spec.step and \
            key in {w.key for w in at.slider}:
        return at.slider(key=key)
    if spec.kind in ("int", "float"):
        return at.number_input(key=key)
    return at.text_input(key=key)


def _flat(at: AppTest) -> dict:
    return dict(at.query_params)


def _set_fields(at: AppTest, fields) -> dict:
    """Give each field's widget a value other than its default (one run); returns key -> value set."""
    wanted = {}
    for field in fields:
        value = _non_default(field.spec)
        _widget(at, field.spec, field.key).set_value(value)
        wanted[field.key] = value
    at.run()
    _ok(at)
    return wanted


def _check_round_trip(at: AppTest, wanted: dict, fields, page: str | None = None) -> None:
    """Open a fresh session with ``at``'s URL; every widget in ``wanted`` has the value set in ``at``."""
    params = _flat(at)
    fresh = AppTest.from_file(APP, default_timeout=TIMEOUT)
    fresh.query_params.update(params)
    if page:
        fresh.switch_page(page)
    fresh.run()
    _ok(fresh)
    assert not _link_notes(fresh), (params, _link_notes(fresh))
    for field in fields:
        if field.key in wanted:
            got = _widget(fresh, field.spec, field.key).value
            assert got == wanted[field.key], (field.param, params, got, wanted[field.key])


def test_every_declared_setting_round_trips_through_the_link(app, no_curves):
    """Links lost the view's infiller (gray came back as blur), its options, the display settings and every method
    option that is not a main one. Walks every declared option of every method the page offers (and the options
    of an infiller it takes), every infiller of the infilled view and its options: a non-default value goes into
    the URL and a fresh session opened with that URL shows it."""
    from dashboard import url_state

    at = app.run()
    catalog = resources.catalog()
    methods = list(catalog)  # every method the page's menu offers (it lists the catalog)
    assert len(at.sidebar.selectbox(key="method").options) == len(methods)
    walked = 0
    for method in methods:
        at.sidebar.selectbox(key="method").set_value(method).run()
        _ok(at)
        fields = [f for f in url_state.method_fields(catalog[method], {}) if f.within is None and f.key in _keys(at)]
        wanted = _set_fields(at, fields)
        chosen = {f.spec.name: wanted[f.key] for f in fields}
        subs = [f for f in url_state.method_fields(catalog[method], chosen) if f.within]
        wanted.update(_set_fields(at, subs))
        assert _flat(at)["method"] == method
        _check_round_trip(at, wanted, fields + subs)
        walked += len(fields) + len(subs)
        if method == "fido":
            assert {"score", "lr_decay", "infiller", "infiller.std"} <= set(_flat(at)), _flat(at)  # not main only
    assert walked >= 100, walked
    for infiller in widgets.infiller_names():  # the infilled view's infiller and each of its options
        at = app.run()
        at.sidebar.selectbox(key="infiller").set_value(infiller).run()
        subs = url_state.infiller_fields(infiller, "view_infiller", "inf")
        wanted = {"infiller": infiller, **_set_fields(at, subs)}
        assert infiller == "blur" or _flat(at)["view_infiller"] == infiller
        _check_round_trip(at, wanted, [url_state.Field("view_infiller", "infiller", widgets.VIEW_INFILLER), *subs])


def _keys(at: AppTest) -> set:
    out = set()
    for kind in ("selectbox", "number_input", "checkbox", "select_slider", "text_input", "slider"):
        out |= {w.key for w in getattr(at, kind)}
    return out


def test_display_seed_curve_settings_and_the_compare_list_round_trip(app):
    """The colour map and the overlay opacity ("Display"), the seed, the curve settings, the Compare page's methods
    and its top-1 toggle: every setting the dashboard declares for itself goes into the link."""
    from dashboard import url_state

    at = app.run()
    _ok(at)
    page = [f for f in url_state.page_fields() if f.key != widgets.COMPARE_TOP1.name]
    assert {f.param for f in page} >= {"overlay_opacity", "colormap", "seed", "curve_steps", "eps1", "eps2",
                                       "restrict_to"}
    wanted = _set_fields(at, page)
    assert {"overlay_opacity", "colormap", "seed"} <= set(_flat(at)), _flat(at)
    _check_round_trip(at, wanted, page)
    at = app.run()
    at.switch_page("app_pages/compare.py").run()
    at.sidebar.multiselect(key="compare_methods").set_value(["random", "masker: tiny_fix"]).run()
    top1 = [f for f in url_state.page_fields() if f.key == widgets.COMPARE_TOP1.name]
    wanted = {"compare_methods": ["random", "masker: tiny_fix"], **_set_fields(at, top1)}
    assert _flat(at)["compare"] == ["random", "masker: tiny_fix"], _flat(at)
    fresh = AppTest.from_file(APP, default_timeout=TIMEOUT)
    fresh.query_params.update(_flat(at))
    fresh.switch_page("app_pages/compare.py").run()
    _ok(fresh)
    assert fresh.sidebar.multiselect(key="compare_methods").value == wanted["compare_methods"]
    assert fresh.checkbox(key=widgets.COMPARE_TOP1.name).value is True


def test_bad_values_of_the_new_link_settings_are_named(app, no_curves):
    at = _open_link({"view_infiller": "sponge", "view_infiller.sigma": "-3", "colormap": "rainbow",
                     "overlay_opacity": "2", "compare": "nosuchmethod", "seed": "-1", "whatever": "1"})
    _ok(at)
    notes = _link_notes(at)
    for expected in ("view_infiller='sponge'", "using the default, blur", "view_infiller.sigma='-3'",
                     "colormap='rainbow'", "one of inferno", "overlay_opacity='2'", "<= 1", "compare='nosuchmethod'",
                     "seed='-1'", "whatever='1' is not a setting"):
        assert expected in notes, (expected, notes)
    assert at.sidebar.selectbox(key="infiller").value == "blur"


# exports: nothing names where a file lies on the server


def _absolute_paths(text: str, tiny) -> list[str]:
    """Absolute paths in an export (its embedded pictures left out): under the repo, /tmp, /root, /home or the
    upload folder."""
    import re

    text = re.sub(r"data:image/[a-z]+;base64,[A-Za-z0-9+/=]+", "", text)
    roots = {str(Path(APP).parents[1]), "/tmp/", "/root/", "/home/", str(uploads.UPLOAD_ROOT), str(tiny.folder)}
    return [root for root in roots if root in text]


def _capture_downloads(monkeypatch) -> dict:
    """Every download button's file, made at once (the page makes them only when clicked), by file name."""
    from streamlit.delta_generator import DeltaGenerator

    files: dict[str, bytes] = {}
    original = DeltaGenerator.download_button

    def spy(self, label, data, file_name=None, *args, **kwargs):
        made = data() if callable(data) else data
        files[file_name] = made.encode() if isinstance(made, str) else made
        return original(self, label, data, file_name, *args, **kwargs)

    import streamlit as st

    monkeypatch.setattr(DeltaGenerator, "download_button", spy)
    monkeypatch.setattr(st, "download_button", lambda *a, **k: spy(st._main, *a, **k))
    return files


def test_exports_name_checkpoints_by_name_and_hash_never_a_server_path(app, tiny, monkeypatch):
    """The comparison's HTML said "checkpoint": "<absolute path>/tiny_fix.safetensors"; result.json too."""
    files = _capture_downloads(monkeypatch)
    at = app.run()
    _ok(at)
    assert at.sidebar.selectbox(key="method").value == "masker"
    result = files["chelsea_result.json"].decode()
    at.switch_page("app_pages/compare.py").run()
    at.sidebar.multiselect(key="compare_methods").set_value(["masker: tiny_fix", "random"]).run()
    _ok(at)
    page = files["comparison_chelsea.html"].decode()
    import hashlib

    short = hashlib.sha256(tiny.good.read_bytes()).hexdigest()[:12]
    for text in (page, result):
        assert not _absolute_paths(text, tiny), _absolute_paths(text, tiny)
        assert f"tiny_fix (sha256 {short})" in text, text[-3000:]
    assert export.export_safe({"checkpoint": str(tiny.good), "note": f"read {tiny.good} ok",
                                 "url": "https://example.org/a/b"}) == {
        "checkpoint": f"tiny_fix (sha256 {short})", "note": f"read tiny_fix (sha256 {short}) ok",
        "url": "https://example.org/a/b"}


# Compare on an unsure photo


def _fake_scores(worst_c: float, worst_s: float, auc: float = 0.3, f: float = 0.5):
    return SimpleNamespace(worst_completeness=worst_c, worst_soundness=worst_s, eps1=0.01,
                           completeness=torch.tensor([worst_c, 0.9]), auc=torch.tensor([auc, 0.5]),
                           f=torch.tensor([f, 0.6]))


def test_why_scores_cannot_separate_comes_from_the_numbers():
    sure = curve_scores.why_scores_cannot_separate
    assert sure(0.9, [_fake_scores(0.4, 0.8), _fake_scores(0.7, 1.0)]) == []
    assert "unsure" in " ".join(sure(0.23, [_fake_scores(0.4, 0.8), _fake_scores(0.7, 1.0)]))
    tied = sure(0.9, [_fake_scores(0.255, 1.0), _fake_scores(0.256, 1.0), _fake_scores(0.255, 0.999)])
    assert len(tied) == 1 and "same worst completeness" in tied[0]
    floor = sure(0.9, [_fake_scores(0.255, 1.0, auc=0.004, f=0.039), _fake_scores(0.255, 0.5, auc=0.01, f=0.039),
                       _fake_scores(0.6, 0.4)])
    assert len(floor) == 1 and "floor" in floor[0] and "2 of 3" in floor[0], floor


def test_compare_says_when_its_scores_cannot_separate_the_methods_and_offers_top1(app, monkeypatch):
    """Worst completeness 0.255 for every method alike (the floor of a weak label): the page said nothing."""
    from dashboard import plain_words

    monkeypatch.setattr(plain_words, "UNSURE", 0.0)  # the tiny classifier is unsure of everything: test the tie
    original = curve_scores.run_label_scores

    def tied(expl, labels, request, classifier, cache, expl_key, progress=None):
        scores = original(expl, labels, request, classifier, cache, expl_key, progress=progress)
        return replace(scores, completeness=torch.full_like(scores.completeness, 0.255),
                       soundness=torch.ones_like(scores.soundness))

    from dataclasses import replace

    monkeypatch.setattr(curve_scores, "run_label_scores", tied)
    at = app.run()
    at.switch_page("app_pages/compare.py").run()
    at.sidebar.multiselect(key="compare_methods").set_value(["masker: tiny_fix", "random", "center-gaussian"]).run()
    _ok(at)
    notes = [i.value for i in at.info if "cannot separate" in i.value]
    assert len(notes) == 1 and "same worst completeness" in notes[0], [i.value for i in at.info]
    assert "masker" not in notes[0] and "gaussian" not in notes[0]  # from the numbers, never a method's name
    at.checkbox(key=widgets.COMPARE_TOP1.name).check().run()
    _ok(at)
    top1 = at.dataframe[1].value
    assert list(top1["method"]) == ["masker: tiny_fix", "random", "center-gaussian"]
    assert np.allclose(top1["completeness"], 0.255) and set(top1.columns) >= {"f(x)", "insertion AUC", "soundness"}
    monkeypatch.setattr(curve_scores, "run_label_scores", original)
    monkeypatch.setattr(plain_words, "UNSURE", 0.40)
    at = app.run()  # the tiny classifier's top label is far under 40 %: the note says so
    at.switch_page("app_pages/compare.py").run()
    notes = [i.value for i in at.info if "cannot separate" in i.value]
    assert len(notes) == 1 and "unsure" in notes[0], [i.value for i in at.info]


# --------------------------------------------------------------------------- the area-controlled masker (issue 25)


@pytest.fixture
def area_method(registered):
    """A quick area-aware method for the tiny classifier, as the area-conditioned masker declares itself
    (``takes_area``, ``option_space``): its mask is exactly the top ``area`` of a ramp (rising to the right for
    ``ssr``, to the left otherwise) and ``areas`` gives the same at each extra area in the same call. Its space
    narrows the area to 10 .. 50 % (default 30 %) and the objective to ssr / sdr (default sdr), as a checkpoint's
    trained ranges would. Returns the (area, areas) of every call."""
    from dataclasses import dataclass

    import saliency_core as sc
    from saliency_core.methods.base import METHODS, MethodResult
    from saliency_core.options import Option, check_options, option

    calls: list[tuple[float, tuple]] = []
    resources._results.clear()  # no masks or curve of an earlier test
    resources._method.clear()

    @dataclass(frozen=True)
    class AreaDemoOptions:
        objective: str = option("both", choices=("ssr", "sdr", "both"), main=True, help="what the region must do")
        area: float = option(0.2, low=0.05, high=0.6, main=True, help="the region's fraction of the image")
        areas: tuple = option((), help="extra areas, same pass")

        def __post_init__(self) -> None:
            check_options(self, "method 'area-demo'")

    def space(options: dict) -> dict:
        return {"area": Option("area", "float", 0.3, "", low=0.1, high=0.5),
                "objective": Option("objective", "choice", "sdr", "", choices=("ssr", "sdr"))}

    def region(h: int, w: int, objective: str, a: float) -> torch.Tensor:
        ramp = torch.linspace(0, 1, w) if objective == "ssr" else torch.linspace(1, 0, w)
        return sc.top_area_regions(ramp.expand(h, w) + torch.linspace(0, 1e-3, h)[:, None], a)

    @registered(METHODS, "area-demo", config=AreaDemoOptions, takes_area=True, option_space=space, group="Control")
    class AreaDemo:
        def __init__(self, options: AreaDemoOptions) -> None:
            self.options = options

        def __call__(self, classifier, x, labels, clean, progress=None):
            o = self.options
            calls.append((o.area, tuple(o.areas)))
            h, w = x.shape[-2:]
            extra = torch.stack([region(h, w, o.objective, a)[None] for a in o.areas]) if o.areas else None
            return MethodResult(region(h, w, o.objective, o.area)[None], per_label=False, areas=tuple(o.areas),
                                area_masks=extra)

    return calls


def _area_chart(at: AppTest) -> dict:
    charts = [c for c in _charts(at) if any(t.get("name") == "only the region kept" for t in c["data"])]
    assert len(charts) == 1, "expected one area curve"
    return charts[0]


def _region_picture(at: AppTest) -> str:
    return next(i.proto.imgs[0].url for i in at.image if "the rest dimmed" in i.proto.imgs[0].caption)


def test_an_area_method_s_widgets_come_from_its_option_space(app, area_method, no_curves):
    """The area slider spans the loaded checkpoint's range and starts at its default (10 .. 50 %, 30 %), not the
    declaration's (5 .. 60 %, 20 %); the objective offers the checkpoint's two, in plain words, starting at its
    default; ``areas`` (the curve's) draws no widget; the method runs at what the widgets show."""
    at = app.run()
    at.sidebar.selectbox(key="method").set_value("area-demo").run()
    _ok(at)
    slider = at.sidebar.select_slider(key="opt:area-demo:area")
    assert slider.value == 0.3 and slider.options[0] == "10%" and slider.options[-1] == "50%", slider.options
    assert len(slider.options) == 41  # steps of 1 %
    objective = at.sidebar.selectbox(key="opt:area-demo:objective")
    assert objective.options == ["keep the class", "remove the class"] and objective.value == "sdr"
    assert not any(w.key == "opt:area-demo:areas" for w in at.sidebar.text_input)
    assert area_method[0] == (0.3, ())  # the space's default reached the method, not the declaration's 0.2
    objective.set_value("ssr").run()
    _ok(at)
    assert _flat(at).get("objective") in ("ssr", ["ssr"])  # links keep the code
    fresh = _open_link({"method": "area-demo", "area": "0.234", "objective": "ssr"})
    _ok(fresh)
    assert fresh.sidebar.select_slider(key="opt:area-demo:area").value == 0.23  # a link between steps: the nearest
    assert "using the nearest, 0.23" in _link_notes(fresh)
    assert fresh.sidebar.selectbox(key="opt:area-demo:objective").value == "ssr"


def test_the_area_curve_is_one_batched_pass_and_the_slider_redraws_the_region_not_the_curve(
        app, area_method, tiny, monkeypatch, no_curves):
    """The curve: the method's own masks at the 8 areas 5 .. 60 % from ONE call (areas=...), scored in ONE classifier
    forward of the 16 kept and removed pictures, equal to the core's kept_and_removed on those regions; the star marks
    the smallest area keeping 80 % of the whole picture's probability. Moving the area slider redraws the region
    picture and the chosen-area line without computing the curve again."""
    import saliency_core as sc

    at = app.run()
    at.sidebar.selectbox(key="method").set_value("area-demo").run()
    _ok(at)
    curve_calls = [c for c in area_method if c[1]]
    assert curve_calls == [(sc.CURVE_AREAS[0], sc.CURVE_AREAS[1:])], area_method
    chart = _area_chart(at)
    kept = next(t for t in chart["data"] if t["name"] == "only the region kept")
    removed = next(t for t in chart["data"] if t["name"] == "the region removed")
    assert np.allclose(_arr(kept["x"]), sc.CURVE_AREAS) and len(_arr(removed["y"])) == 8

    # the same numbers from the core, by hand
    image = resources.gallery_input("chelsea")
    loaded = load_image(image.data, name="chelsea.png")
    x = sc.working_input(loaded, tiny.clf)
    probs = tiny.clf(x).softmax(-1)[0]
    label = int(probs.argmax())
    h, w = x.shape[-2:]
    ramp = torch.linspace(1, 0, w).expand(h, w) + torch.linspace(0, 1e-3, h)[:, None]  # sdr, the space's default
    regions = torch.stack([sc.top_area_regions(sc.top_area_regions(ramp, a), a) for a in sc.CURVE_AREAS])
    by_hand = sc.kept_and_removed(tiny.clf, x, label, regions)
    assert np.allclose(_arr(kept["y"]), by_hand.kept.numpy(), atol=1e-5)
    assert np.allclose(_arr(removed["y"]), by_hand.removed.numpy(), atol=1e-5)
    enough = [a for a, k in zip(sc.CURVE_AREAS, by_hand.kept.tolist()) if k >= 0.8 * float(probs[label])]
    stars = [t for t in chart["data"] if t.get("marker", {}).get("symbol") == "star"]
    assert (len(stars) == 1 and np.isclose(_arr(stars[0]["x"])[0], min(enough))) if enough else not stars
    assert np.isclose(chart["layout"]["shapes"][0]["x0"], 0.3)  # the chosen area's line

    before = _region_picture(at)
    forwards = []
    original = type(tiny.clf).forward
    monkeypatch.setattr(type(tiny.clf), "forward", lambda self, x: forwards.append(x.shape[0]) or original(self, x))
    at.sidebar.select_slider(key="opt:area-demo:area").set_value(0.45).run()
    _ok(at)
    assert area_method[-1] == (0.45, ()) and len([c for c in area_method if c[1]]) == 1  # no second curve pass
    assert 16 not in forwards  # the curve's forward is not repeated
    assert _region_picture(at) != before
    assert np.isclose(_area_chart(at)["layout"]["shapes"][0]["x0"], 0.45)
    assert any("45%" in m.value for m in at.markdown)  # "The region at 45%"


def test_the_curve_is_offered_for_any_method_as_the_top_of_its_map_and_compare_labels_each(app, area_method,
                                                                                           no_curves):
    """A method that takes no area draws no curve unless asked; asked, its regions are the top a of its map and the
    page says so. Compare draws every method's curve on one plot, each labelled with what its region is."""
    at = app.run()
    at.sidebar.selectbox(key="method").set_value("center-gaussian").run()
    assert not [c for c in _charts(at) if any(t.get("name") == "only the region kept" for t in c["data"])]
    at.toggle(key="area_curve_any").set_value(True).run()
    _ok(at)
    _area_chart(at)
    assert any("the top a of its map" in c.value for c in at.caption)

    at.switch_page("app_pages/compare.py").run()
    at.sidebar.multiselect(key="compare_methods").set_value(["area-demo", "center-gaussian"]).run()
    _ok(at)
    chart = next(c for c in _charts(at) if any("only the region kept" in str(t.get("name")) for t in c["data"]))
    names = " ".join(str(t.get("name")) for t in chart["data"])
    assert "area-demo: only the region kept" in names and "center-gaussian: the region removed" in names
    hover = " ".join(str(t.get("hovertemplate")) for t in chart["data"])
    assert "area-demo (its own mask at each area)" in hover and "center-gaussian (the top a of its map)" in hover
    table = next(d.value for d in at.dataframe if "smallest area keeping 80%" in d.value.columns)
    assert list(table["region"]) == ["its own mask at each area", "the top a of its map"]


def test_extremal_s_area_curve_is_one_more_run_of_it_on_request(app, tiny, monkeypatch, no_curves):
    """The per-image extremal method (slow: it waits for Run): its area slider is the area option's widget (a fraction,
    steps of 1 %), the region is drawn at the chosen area once it has run, and its curve is one more optimisation,
    of the shown label at the 8 areas in one batch (area 5 %, areas the other seven), started by a button that says
    how long it takes."""
    import saliency_core as sc

    if "extremal" not in menus.method_catalog():
        pytest.skip("the extremal method is not registered here")
    resources._results.clear()
    calls = _count_method_calls(monkeypatch)
    seen = _spy_compute_masks(monkeypatch)
    at = app.run()
    at.sidebar.radio(key="labels_mode").set_value("top-1")
    at.sidebar.selectbox(key="method").set_value("extremal").run()
    slider = at.sidebar.select_slider(key="opt:extremal:area")
    assert slider.options[0] == "1%" and slider.value == 0.1
    slider.set_value(0.25)
    at.sidebar.number_input(key="opt:extremal:iterations").set_value(2)
    at.sidebar.selectbox(key="opt:extremal:parametrization").set_value("continuous")  # the cheaper mask: a test
    at.run()
    at.button(key="run_method").click().run()
    _ok(at)
    assert calls.count("extremal") == 1 and seen[-1][1]["area"] == 0.25 and "areas" not in seen[-1][1]
    assert any("The region at 25%" in m.value for m in at.markdown)
    button = at.button(key="area_run")
    assert button.label.startswith("Compute the area curve (")
    button.click().run()
    _ok(at)
    assert not _errors(at), _errors(at)
    assert calls.count("extremal") == 2
    labels, options = seen[-1]
    assert options["area"] == sc.CURVE_AREAS[0] and tuple(options["areas"]) == sc.CURVE_AREAS[1:]
    assert labels.isdigit()  # the shown label only
    chart = _area_chart(at)
    assert np.isclose(chart["layout"]["shapes"][0]["x0"], 0.25) and any("its own mask" in c.value for c in at.caption)


def test_extremal_fast_shows_its_preset_in_the_widgets_and_runs_with_them(app, tiny, monkeypatch, no_curves):
    """A preset method's widgets start at its own defaults (the core declares them; the page names none), and a
    run takes what the widgets hold."""
    if "extremal-fast" not in menus.method_catalog():
        pytest.skip("the extremal-fast method is not registered here")
    resources._results.clear()
    calls = _count_method_calls(monkeypatch)
    seen = _spy_compute_masks(monkeypatch)
    at = app.run()
    at.sidebar.radio(key="labels_mode").set_value("top-1")
    at.sidebar.selectbox(key="method").set_value("extremal-fast").run()
    assert at.sidebar.selectbox(key="opt:extremal-fast:parametrization").value == "cam"
    assert at.sidebar.selectbox(key="opt:extremal-fast:reward").value == "prob"
    iterations = at.sidebar.number_input(key="opt:extremal-fast:iterations")
    assert iterations.value == 15
    iterations.set_value(2).run()
    at.button(key="run_method").click().run()
    _ok(at)
    assert not _errors(at), _errors(at)
    assert calls.count("extremal-fast") == 1
    options = seen[-1][1]
    assert options["iterations"] == 2 and options.get("parametrization", "cam") == "cam"
    assert any("The region at 10%" in m.value for m in at.markdown)


def test_a_views_predictions_hold_their_height_while_they_are_computed():
    """The placeholder under a view being classified has one numbered line per prediction to come, as the
    predictions will (an empty slot let everything under the views move up 159 px and back on each toggle)."""
    from types import SimpleNamespace

    predictions = [SimpleNamespace(name=f"class {k}", probability=0.1, index=k) for k in range(5)]
    pending, final = sections.pending_md(5).splitlines(), sections.predictions_md(predictions).splitlines()
    assert len(pending) == len(final) == 5
    assert [line.split(" ")[0] for line in pending] == [line.split(" ")[0] for line in final]  # "1." ... "5."
    assert all(sections.PENDING in line and "%" not in line for line in pending)
