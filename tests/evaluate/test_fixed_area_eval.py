"""The fixed-area metric inside `saliency evaluate`: values recomputed by hand from the core functions, intervals in
aggregate.csv/json and the report, the fill option, the CLI table, and an area-aware method scored by its own masks."""
from __future__ import annotations

import json
from dataclasses import dataclass

import pandas as pd
import pytest
import torch
from PIL import Image

from saliency_core.evaluate.runner import EvalConfig, evaluate
from saliency_core.metrics.fixed_area import FIXED_AREAS, bootstrap_ci, kept_and_removed, top_area_regions


@pytest.fixture(scope="module")
def small_classifier():
    from saliency_core.classifiers import load_classifier
    from saliency_core.images.preprocessing import Preprocessing

    torch.manual_seed(0)
    clf = load_classifier("timm:test_efficientnet", random_init=True, num_classes=10)
    pre = clf.preprocessing
    clf.preprocessing = Preprocessing(pre.mean, pre.std, input_size=48)
    return clf


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    from skimage import data

    root = tmp_path_factory.mktemp("fa")
    rows = ["file,label"]
    for i, arr in enumerate([data.chelsea(), data.coffee(), data.astronaut(), data.rocket()]):
        Image.fromarray(arr).resize((arr.shape[1] // 6, arr.shape[0] // 6)).save(root / f"img{i}.png")
        rows.append(f"img{i}.png,{i + 1}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root / "labels.csv"


def _cfg(images, out, **kw) -> EvalConfig:
    base = dict(images=str(images), out=str(out), steps=2, deletion=False, saliency_metric=False,
                masked_accuracy=False, methods=["center-gaussian", "random:cell=4"])
    base.update(kw)
    return EvalConfig(**base)


def _by_hand(clf, file: str, method_name: str, options: dict, fill=None) -> tuple[list[float], list[float], int]:
    from saliency_core.methods.base import create_method

    x = clf.preprocessing.pil_to_input(Image.open(file).convert("RGB"))
    with torch.no_grad():
        clean = clf.forward_features(x)
    label = int(clean.logits.argmax())
    m = create_method(method_name, **options)(clf, x, [label], clean).masks[0].float().clamp(0, 1)
    s = kept_and_removed(clf, x, label, top_area_regions(m, FIXED_AREAS), fill=fill)
    return s.kept.tolist(), s.removed.tolist(), label


def test_fixed_area_scores_intervals_and_report(small_classifier, images, tmp_path):
    res = evaluate(_cfg(images, tmp_path / "o"), classifier=small_classifier)
    assert not res.failures
    rec = next(r for r in res.records if r["method"] == "center-gaussian")
    kept, removed, _ = _by_hand(small_classifier, rec["file"], "center-gaussian", {})
    lvl = rec["image_level"]
    assert [lvl[f"fa_kept_{a:g}"] for a in FIXED_AREAS] == pytest.approx(kept, abs=1e-5)
    assert [lvl[f"fa_removed_{a:g}"] for a in FIXED_AREAS] == pytest.approx(removed, abs=1e-5)
    assert lvl["fixed_area_region"] == "top a of the map"
    assert {lvl[f"fa_kept_acc_{a:g}"] for a in FIXED_AREAS} <= {0.0, 1.0}
    # the aggregate: mean over images and its seeded bootstrap interval, in the CSV and the JSON
    per_image = pd.read_csv(tmp_path / "o" / "per_image.csv")
    agg = pd.read_csv(tmp_path / "o" / "aggregate.csv").set_index("method")
    vals = per_image[per_image.method == "random:cell=4"]["fa_removed_0.2"]
    mean, lo, hi = bootstrap_ci(torch.tensor(vals.to_numpy()))
    row = agg.loc["random:cell=4"]
    assert (row["fa_removed_0.2"], row["fa_removed_0.2_lo"], row["fa_removed_0.2_hi"]) == pytest.approx((mean, lo, hi))
    assert lo <= mean <= hi and lo < hi
    js = json.loads((tmp_path / "o" / "aggregate.json").read_text())
    assert js["config"]["fixed_area_fill"] == "gray"
    assert {"fa_kept_0.05_lo", "fa_kept_acc_0.4_hi"} <= set(js["methods"][0])
    html = (tmp_path / "o" / "report.html").read_text()
    assert "Fixed area (mean [95 % interval])" in html and "deleted 40 %" in html and "bootstrap" in html

    # another fill changes the scores; the metric can be switched off
    blur = evaluate(_cfg(images, tmp_path / "b", fixed_area_fill="blur", limit=1, methods=["center-gaussian"]),
                    classifier=small_classifier)
    from saliency_core.infill.base import create_infiller

    kept_b, _, _ = _by_hand(small_classifier, rec["file"], "center-gaussian", {}, fill=create_infiller("blur"))
    assert blur.records[0]["image_level"]["fa_kept_0.1"] == pytest.approx(kept_b[1], abs=1e-5)
    assert kept_b != pytest.approx(kept, abs=1e-4)
    off = evaluate(_cfg(images, tmp_path / "n", fixed_area=False, limit=1), classifier=small_classifier)
    assert not any(k.startswith("fa_") for k in off.records[0]["image_level"])


def test_cli_prints_the_fixed_area_table(small_classifier, images, tmp_path, capsys, monkeypatch):
    from saliency_core.cli import main
    from saliency_core.evaluate import context

    monkeypatch.setattr(context, "load_classifier", lambda *a, **k: small_classifier)
    rc = main(["evaluate", "--images", str(images), "--methods", "center-gaussian", "--steps", "2", "--limit", "2",
               "--out", str(tmp_path / "cli"), "--no-deletion", "--no-saliency-metric", "--no-masked-accuracy"])
    out = capsys.readouterr().out
    assert rc == 0 and "Fixed area (mean [95 % bootstrap interval over images])" in out
    assert "| method | kept 5 % ↑ |" in out and " [" in out  # values with their intervals
    rc = main(["evaluate", "--images", str(images), "--methods", "center-gaussian", "--out", str(tmp_path / "bad"),
               "--fixed-area-fill", "no-such-fill"])
    err = capsys.readouterr().err
    assert rc == 2 and "no-such-fill" in err and "Traceback" not in err


def test_an_area_aware_method_is_scored_by_its_own_mask_at_each_area(small_classifier, images, tmp_path, registered):
    """A method declaring takes_area gets the protocol's other areas in one call and each region is its own mask at
    that area (here: the left part of the picture), not the top a of its main map (here: the right part)."""
    from saliency_core.methods.base import METHODS, MethodResult
    from saliency_core.options import check_options, option

    calls = []

    @dataclass(frozen=True)
    class AreaOptions:
        area: float = option(0.2, low=0.0, high=1.0, help="area")
        areas: tuple = option((), help="extra areas")

        def __post_init__(self) -> None:
            check_options(self, "method 'sides'")

    def ramp(h: int, w: int, left: bool) -> torch.Tensor:
        r = torch.linspace(1, 0, w) if left else torch.linspace(0, 1, w)
        return r.expand(h, w).clone()

    @registered(METHODS, "sides", config=AreaOptions, takes_area=True, per_label=False)
    class Sides:
        def __init__(self, options: AreaOptions) -> None:
            self.options = options

        def __call__(self, classifier, x, labels, clean, progress=None):
            calls.append((self.options.area, tuple(self.options.areas)))
            h, w = x.shape[-2:]
            areas = tuple(self.options.areas)
            own = torch.stack([ramp(h, w, left=True)[None] for _ in areas]) if areas else None
            return MethodResult(ramp(h, w, left=False)[None], per_label=False, areas=areas, area_masks=own)

    res = evaluate(_cfg(images, tmp_path / "s", methods=["sides"], limit=1), classifier=small_classifier)
    assert calls == [(0.2, (0.05, 0.1, 0.4))]  # the main area is not asked twice
    lvl = res.records[0]["image_level"]
    assert lvl["fixed_area_region"] == "own mask at area a"
    x = small_classifier.preprocessing.pil_to_input(Image.open(res.records[0]["file"]).convert("RGB"))
    h, w = x.shape[-2:]
    label = res.records[0]["labels"][0]["label"]
    maps = [ramp(h, w, left=a != 0.2) for a in FIXED_AREAS]  # main mask (right) at 0.2, own left masks elsewhere
    regions = torch.stack([top_area_regions(m, a) for m, a in zip(maps, FIXED_AREAS)])
    expected = kept_and_removed(small_classifier, x, label, regions)
    assert [lvl[f"fa_kept_{a:g}"] for a in FIXED_AREAS] == pytest.approx(expected.kept.tolist(), abs=1e-5)
    top_right = kept_and_removed(small_classifier, x, label, top_area_regions(ramp(h, w, left=False), FIXED_AREAS))
    assert lvl["fa_removed_0.1"] != pytest.approx(float(top_right.removed[1]), abs=1e-6)
