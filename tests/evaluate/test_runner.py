"""`saliency evaluate` end to end on a tiny classifier: files, consistency, resume after a kill, CLI."""
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from saliency_core.evaluate.runner import EvalConfig, EvalError, evaluate, parse_method_spec
from saliency_core.metrics.completeness import completeness, soundness


@pytest.fixture(scope="module")
def small_classifier():
    """The tiny random classifier working at 64 px, so the whole file stays fast."""
    from saliency_core.classifiers import load_classifier
    from saliency_core.images.preprocessing import Preprocessing

    torch.manual_seed(0)
    clf = load_classifier("timm:test_efficientnet", random_init=True, num_classes=10)
    pre = clf.preprocessing
    clf.preprocessing = Preprocessing(pre.mean, pre.std, input_size=64)
    return clf


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, small_classifier):
    from skimage import data

    from saliency_core.maskers.checkpoint import save_masker
    from saliency_core.maskers.phang import MaskerConfig, PhangMasker

    root = tmp_path_factory.mktemp("evalset")
    (root / "imgs").mkdir()
    (root / "pm").mkdir()
    rows = ["file,label,wnid"]
    for i, (name, arr) in enumerate([("a_cat", data.chelsea()), ("b_coffee", data.coffee()),
                                     ("c_astro", data.astronaut())]):
        img = Image.fromarray(arr).resize((arr.shape[1] // 5, arr.shape[0] // 5))
        img.save(root / "imgs" / f"{name}.png")
        rows.append(f"imgs/{name}.png,{i + 1},n0{i}")
        w, h = img.size
        pm = np.zeros((h, w), np.uint8)
        pm[h // 4: 3 * h // 4, w // 4: 3 * w // 4] = 255
        Image.fromarray(pm).save(root / "pm" / f"{name}.png")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    (root / "boxes.csv").write_text("file,xmin,ymin,xmax,ymax,wnid\na_cat.png,10,5,60,50,n00\n"
                                    "b_coffee.png,20,20,100,90,n01\nb_coffee.png,0,0,5,5,other\n")
    torch.manual_seed(0)
    masker = PhangMasker(MaskerConfig(stages=(4, 5), stage_channels=small_classifier.stage_channels))
    ckpt = save_masker(root / "tiny_masker.safetensors", masker.eval(), small_classifier, config={})
    return root, ckpt


def _cfg(root, ckpt, out, **kw):
    base = dict(images=str(root / "labels.csv"), out=str(out), labels="top2", steps=4,
                methods=["center-gaussian", "random:cell=4", f"masker:checkpoint={ckpt}:as=tiny-masker",
                         "gradient-x-input"],
                boxes=str(root / "boxes.csv"), pixel_masks=str(root / "pm"))
    base.update(kw)
    return EvalConfig(**base)


def test_parse_method_spec():
    s = parse_method_spec("rise:num_masks=500:grid=5")
    assert (s.name, s.options, s.display) == ("rise", {"num_masks": 500, "grid": 5}, "rise:num_masks=500:grid=5")
    assert parse_method_spec("masker:checkpoint=ck/ca_lite0.safetensors").display == "masker:ca_lite0"
    assert parse_method_spec("grad-cam:as=GC").display == "GC"
    with pytest.raises(EvalError):
        parse_method_spec("rise:500")
    with pytest.raises(EvalError):
        EvalConfig(methods=[])
    with pytest.raises(EvalError):
        EvalConfig(split="sideways")


def test_evaluate_end_to_end_and_resume(dataset, small_classifier, tmp_path):
    root, ckpt = dataset
    out = tmp_path / "out"
    calls = []
    res = evaluate(_cfg(root, ckpt, out), classifier=small_classifier, progress=lambda f, m: calls.append(m))
    assert not res.failures
    for name in ("config.json", "per_image.jsonl", "per_image.csv", "per_label.csv", "aggregate.csv",
                 "aggregate.json", "report.html"):
        assert (out / name).exists(), name
    recs = [json.loads(line) for line in (out / "per_image.jsonl").read_text().splitlines()]
    methods = [r for r in recs if not r["method"].startswith("baseline:")]
    assert len(methods) == 3 * 4 and len(recs) == 12 + 2 * 2  # box baselines for the two boxed images
    per_label = pd.read_csv(out / "per_label.csv")
    assert len(per_label) == 3 * 4 * 2
    # completeness / soundness follow from f and the AUC
    assert np.allclose(per_label["completeness"], completeness(torch.tensor(per_label["ins_auc"].values),
                                                               torch.tensor(per_label["f"].values)).numpy(), atol=1e-6)
    assert np.allclose(per_label["soundness"], soundness(torch.tensor(per_label["ins_auc"].values),
                                                         torch.tensor(per_label["f"].values)).numpy(), atol=1e-6)
    # f is the classifier's clean probability
    rec = methods[0]
    x = small_classifier.preprocessing.pil_to_input(Image.open(rec["file"]).convert("RGB"))
    with torch.no_grad():
        p = small_classifier(x).softmax(-1)[0]
    assert rec["labels"][0]["f"] == pytest.approx(float(p[rec["labels"][0]["label"]]), abs=1e-5)
    assert rec["labels"][0]["label"] == int(p.argmax())
    # aggregate = mean over images
    per_image = pd.read_csv(out / "per_image.csv")
    agg = res.aggregate.set_index("method")
    for m in ("center-gaussian", "gradient-x-input"):
        assert agg.loc[m, "top_ins_auc"] == pytest.approx(per_image[per_image.method == m]["top_ins_auc"].mean())
        assert agg.loc[m, "images"] == 3
    assert bool(agg.loc["tiny-masker", "shared_mask"]) and not bool(agg.loc["gradient-x-input", "shared_mask"])
    assert "wsol_le" in agg.columns and "pxap" in agg.columns and not math.isnan(agg.loc["center-gaussian", "pxap"])
    assert agg.loc["baseline:whole-image", "images"] == 2
    assert "acc[explained]/masked_out" in agg.columns
    html = (out / "report.html").read_text()
    assert "plotly" in html and "cheating" in html and "tiny-masker" in html

    # a finished run resumes to nothing new
    calls.clear()
    evaluate(_cfg(root, ckpt, out), classifier=small_classifier, progress=lambda f, m: calls.append(m))
    assert calls == ["done"]
    # a kill: the last record is lost and a half-written line is left behind -> only that one is redone
    lines = (out / "per_image.jsonl").read_text().splitlines()
    (out / "per_image.jsonl").write_text("\n".join(lines[:-1]) + "\n" + lines[-1][: len(lines[-1]) // 2])
    calls.clear()
    again = evaluate(_cfg(root, ckpt, out), classifier=small_classifier, progress=lambda f, m: calls.append(m))
    assert len(calls) == 2 and len(again.records) == len(recs)
    assert all(json.loads(line) for line in (out / "per_image.jsonl").read_text().splitlines())
    # other settings in the same folder are refused unless told to start again
    with pytest.raises(EvalError, match="other settings"):
        evaluate(_cfg(root, ckpt, out, steps=8), classifier=small_classifier)
    fresh = evaluate(_cfg(root, ckpt, out, steps=2, methods=["center-gaussian"], limit=1, resume=False,
                          boxes=None, pixel_masks=None), classifier=small_classifier)
    assert len(fresh.records) == 1 and len(fresh.records[0]["labels"][0]["ins_curve"]) == 3


def test_restricted_softmax_and_split(dataset, small_classifier, tmp_path):
    root, ckpt = dataset
    res = evaluate(_cfg(root, ckpt, tmp_path / "r", methods=["center-gaussian"], restrict_labels=[2, 5, 7],
                        boxes=None, pixel_masks=None, masked_accuracy=False), classifier=small_classifier)
    for r in res.records:
        assert {row["label"] for row in r["labels"]} <= {2, 5, 7}
        assert r["prob_space"] == "softmax restricted to 3 labels"
        assert sum(row["f"] for row in r["labels"]) <= 1.0 + 1e-6
    assert "restricted to 3 labels" in (tmp_path / "r" / "report.html").read_text()


def test_masker_mprt_reads_a_randomised_classifier(dataset, small_classifier):
    from saliency_core.evaluate.sanity import method_mask_fn, mprt
    from saliency_core.methods.base import create_method

    _, ckpt = dataset
    fn = method_mask_fn(create_method("masker", checkpoint=str(ckpt)), small_classifier)
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    df = mprt(small_classifier, fn, x, [1], mode="cascading", units=["classifier", "blocks.4"])
    assert list(df["unit"]) == ["original", "classifier", "blocks.4"]
    assert df.iloc[1]["spearman"] == pytest.approx(1.0)  # the masker does not read the logits layer
    assert df.iloc[2]["spearman"] < 0.999  # ... but it reads stage 5


def test_cli_evaluate(tmp_path, dataset, capsys):
    from safetensors.torch import save_file

    from saliency_core.classifiers import load_classifier
    from saliency_core.cli import main

    root, _ = dataset
    torch.manual_seed(0)
    clf = load_classifier("timm:test_efficientnet", random_init=True)
    weights = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in clf.model.state_dict().items()}, str(weights))
    out = tmp_path / "cli"
    rc = main(["evaluate", "--images", str(root / "imgs"), "--methods", "center-gaussian,random", "--labels", "top2",
               "--steps", "2", "--out", str(out), "--classifier", "timm:test_efficientnet",
               "--classifier-weights", str(weights), "--no-deletion", "--limit", "2"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "| method |" in text and "center-gaussian" in text
    assert len(pd.read_csv(out / "per_image.csv")) == 4
    rc = main(["evaluate", "--images", str(root / "imgs"), "--methods", "no-such-method", "--out", str(out / "x"),
               "--classifier", "timm:test_efficientnet", "--classifier-weights", str(weights)])
    err = capsys.readouterr().err
    assert rc == 2 and "unknown method 'no-such-method'" in err and "Traceback" not in err


def test_bad_box_rows_are_named_skipped_and_the_rest_is_used(tmp_path, dataset, small_classifier):
    """A short row, an infinite coordinate, an inverted box, a label where a number belongs: one line each with
    the file and line number, the row skipped; boxes of images that are not evaluated are reported."""
    from saliency_core.metrics.annotations import AnnotationError, read_boxes

    root, ckpt = dataset
    boxes = tmp_path / "boxes.csv"
    boxes.write_text("file,xmin,ymin,xmax,ymax,wnid\n"
                     "a_cat.png,10,5,60,50,n00\n"  # good (line 2)
                     "a_cat.png,10,5\n"  # short (line 3)
                     "b_coffee.png,0,0,inf,10,n01\n"  # infinite (line 4)
                     "b_coffee.png,50,50,10,10,n01\n"  # inverted (line 5)
                     "b_coffee.png,x,0,5,5,n01\n"  # not a number (line 6)
                     "zebra.png,0,0,5,5,n99\n")  # an image that is not evaluated
    warned: list[str] = []
    read = read_boxes(boxes, warn=warned.append)
    assert [w.split(": ")[0] for w in warned] == [f"{boxes}:{n}" for n in (3, 4, 5, 6)]
    assert "short row" in warned[0] and "not a finite number" in warned[1] and "inverted" in warned[2]
    assert all(w.endswith("row skipped") for w in warned)
    assert read["a_cat"].boxes == [(10, 5, 60, 50)] and "b_coffee" not in read
    with pytest.raises(AnnotationError, match=r"boxes\.csv:3: no value for xmax"):
        read_boxes(boxes)  # without a warn callback the first bad row is an error
    cfg = _cfg(root, ckpt, tmp_path / "out", boxes=str(boxes), methods=["center-gaussian"], labels="top1")
    result = evaluate(cfg, classifier=small_classifier)
    assert len(result.warnings) == 5 and "1 image(s) in the box file are not evaluated (first: zebra)" in \
        result.warnings[-1]
    assert "wsol_le" in result.aggregate.columns  # the good box is used


def test_cli_evaluate_with_failed_images_exits_1_and_every_output_says_which(tmp_path, dataset, capsys):
    """2 good + 3 bad images: exit 1 with a summary line, and stdout, aggregate.json, aggregate.csv, failures.csv and
    report.html all say how many failed and which (named relative to the images CSV, never by an absolute path),
    with the reason (issue 27, item 5)."""
    import io
    import shutil

    from safetensors.torch import save_file

    from saliency_core.classifiers import load_classifier
    from saliency_core.cli import main

    root, _ = dataset
    data = tmp_path / "data"
    (data / "imgs").mkdir(parents=True)
    for name in ("a_cat", "b_coffee"):
        shutil.copy(root / "imgs" / f"{name}.png", data / "imgs" / f"{name}.png")
    buf = io.BytesIO()
    Image.open(root / "imgs" / "c_astro.png").convert("RGB").save(buf, format="JPEG")
    (data / "imgs" / "cut.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])  # truncated
    (data / "imgs" / "empty.png").write_bytes(b"")
    (data / "imgs" / "notes.png").write_text("not an image")
    (data / "labels.csv").write_text("file,label\nimgs/a_cat.png,1\nimgs/cut.jpg,2\nimgs/b_coffee.png,3\n"
                                     "imgs/empty.png,4\nimgs/notes.png,5\n")
    torch.manual_seed(0)
    clf = load_classifier("timm:test_efficientnet", random_init=True)
    weights = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in clf.model.state_dict().items()}, str(weights))
    out = tmp_path / "out"
    rc = main(["evaluate", "--images", str(data / "labels.csv"), "--methods", "center-gaussian,random",
               "--steps", "2", "--out", str(out), "--classifier", "timm:test_efficientnet",
               "--classifier-weights", str(weights), "--no-deletion"])
    captured = capsys.readouterr()
    assert rc == 1
    bad = ("imgs/cut.jpg", "imgs/empty.png", "imgs/notes.png")
    said = captured.out + captured.err
    summary = [line for line in said.splitlines() if "3 of 5 images failed: " in line]
    assert len(summary) == 1 and all(name in summary[0] for name in bad), said
    assert "truncated" in summary[0] and "empty" in summary[0] and "not a recognised image" in summary[0]
    failure_lines = [line for line in said.splitlines() if line.startswith("failed: ") or "images failed" in line]
    assert len(failure_lines) == 4 and str(tmp_path) not in "\n".join(failure_lines) and "Traceback" not in said

    agg = json.loads((out / "aggregate.json").read_text())
    assert agg["images"] == {"total": 5, "evaluated": 2, "failed": 3}
    assert [f["file"] for f in agg["failures"]] == list(bad) and all(f["reason"] for f in agg["failures"])
    assert all(f["method"] is None for f in agg["failures"])  # the image itself failed, for every method
    assert {m["method"]: (m["images"], m["failed"]) for m in agg["methods"]} == {"center-gaussian": (2, 3),
                                                                                 "random": (2, 3)}
    table = pd.read_csv(out / "aggregate.csv")
    assert list(table["failed"]) == [3, 3] and list(table["images"]) == [2, 2]
    failures = pd.read_csv(out / "failures.csv")
    assert list(failures["file"]) == list(bad) and failures["reason"].str.len().min() > 0
    html = (out / "report.html").read_text()
    assert "3 of 5 images failed" in html and all(name in html for name in bad)
    for text in (json.dumps(agg["failures"]), (out / "failures.csv").read_text()):
        assert str(tmp_path) not in text
