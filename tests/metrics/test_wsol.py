"""WSOL boxes and scores, the Saliency Metric, PxAP and annotation reading, against hand-computed values."""
import math

import pytest
import torch
from torch import nn

from saliency_core.metrics import wsol as W
from saliency_core.metrics.annotations import AnnotationError, read_boxes, read_pixel_mask
from saliency_core.metrics.pxap import PxAPAccumulator, pxap, thresholds
from saliency_core.metrics.saliency_metric import crop_and_resize, saliency_metric, saliency_metric_from_probs


def test_binarize_components_and_inclusive_boxes():
    m = torch.tensor([[[0.0, 1.0], [1.0, 0.0]]])
    assert W.binarize(m).tolist() == [[[False, True], [True, False]]]
    # diagonal neighbours are not 4-connected: two components of one pixel, the first found is kept
    assert W.largest_component(W.binarize(m)).tolist() == [[[False, True], [False, False]]]
    big = torch.zeros(1, 5, 6)
    big[0, 0, 0:3] = 1.0  # component A: 3 pixels in row 0
    big[0, 2:4, 3:5] = 1.0  # component B: 2 x 2 = 4 pixels
    assert W.mask_boxes(big).tolist() == [[3, 2, 4, 3]]  # inclusive: x 3..4, y 2..3
    assert W.mask_boxes(torch.full((1, 3, 4), 0.5)).tolist() == [[0, 0, 3, 2]]  # nothing > mean: whole image
    assert W.box_area(torch.tensor([[3, 2, 4, 3]])).tolist() == [4]


def test_iou_f1_and_scores_by_hand():
    a = torch.tensor([[0, 0, 1, 1]])
    b = torch.tensor([[1, 1, 2, 2], [0, 0, 1, 1]])
    assert W.box_iou(a, b)[0].tolist() == pytest.approx([1 / 7, 1.0])
    mask = torch.tensor([[1.0, 0.5], [0.0, 0.0]])
    # P = 1 / 1.5, R = 1 / 1, F1 = 2PR / (P + R) = 0.8
    assert W.continuous_f1(mask, torch.tensor([[0, 0, 0, 0]])).tolist() == pytest.approx([0.8], abs=1e-5)
    s = W.wsol_scores(torch.tensor([0, 0, 1, 1]), mask, torch.tensor([[0, 0, 1, 1], [0, 0, 0, 0]]), correct=False)
    assert s["iou"] == 1.0 and s["le"] == 0.0 and s["om"] == 1.0  # localised but misclassified
    assert s["f1"] == pytest.approx(max(0.8, 2 * (1.5 / 1.5) * (1.5 / 4) / (1 + 1.5 / 4)), abs=1e-5)
    miss = W.wsol_scores(torch.tensor([0, 0, 0, 0]), None, torch.tensor([[0, 0, 1, 1]]), correct=True)
    assert miss["iou"] == pytest.approx(0.25) and miss["le"] == 1.0 and miss["om"] == 1.0
    assert "f1" not in miss
    with pytest.raises(ValueError):
        W.wsol_scores(torch.tensor([0, 0, 0, 0]), None, torch.zeros(0, 4), True)


def test_box_baselines_and_scaling():
    assert W.centre_box(4, 4, 0.25).tolist() == [[1, 1, 2, 2]]
    assert W.whole_box(3, 5).tolist() == [[0, 0, 4, 2]]
    assert W.scale_boxes(torch.tensor([[0, 0, 9, 9]]), (20, 20), (10, 10)).tolist() == [[0, 0, 4, 4]]
    assert W.scale_boxes(torch.tensor([[10, 4, 19, 9]]), (20, 10), (40, 20)).tolist() == [[20, 8, 39, 19]]


class MeanModel(nn.Module):
    """logits = [4 * mean(channel 0), 0]."""

    def forward(self, x):
        s = x[:, 0].flatten(1).mean(1) * 4
        return torch.stack([s, torch.zeros_like(s)], 1)


def test_saliency_metric_by_hand():
    assert saliency_metric_from_probs(torch.tensor([0.01]), torch.tensor([0.5])).item() == pytest.approx(
        math.log(0.05) - math.log(0.5), abs=1e-6)
    x = torch.zeros(1, 3, 4, 4)
    x[0, 0, :2, :2] = 1.0
    crops = crop_and_resize(x, torch.tensor([[0, 0, 1, 1]]))
    assert torch.allclose(crops[0, 0], torch.ones(4, 4), atol=1e-6)
    res = saliency_metric(MeanModel(), x, torch.tensor([[0, 0, 1, 1], [0, 0, 3, 3]]), [0, 0])
    p_crop = 1 / (1 + math.exp(-4.0))
    p_full = 1 / (1 + math.exp(-1.0))
    assert res.area.tolist() == pytest.approx([0.25, 1.0])
    assert res.score.tolist() == pytest.approx([math.log(0.25) - math.log(p_crop), -math.log(p_full)], abs=1e-5)
    one = saliency_metric(MeanModel(), x, torch.tensor([[0, 0, 1, 1]]), [0, 1])  # one box for two labels
    assert one.prob.tolist() == pytest.approx([p_crop, 1 - p_crop], abs=1e-6)


def test_pxap_by_hand():
    masks = torch.tensor([[[0.9, 0.6, 0.3, 0.1]]])
    gt = torch.tensor([[[True, False, True, False]]])
    # thresholds from high: P/R = (1, .5) at .9, (.5, .5) at .6, (2/3, 1) at .3 -> AP = .5 * 1 + .5 * 2/3
    assert pxap(masks, gt) == pytest.approx(100 * (0.5 + 1 / 3), abs=1e-6)
    ignore = torch.tensor([[[False, True, False, False]]])  # drop the false positive at 0.6
    assert pxap(masks, gt, ignore) == pytest.approx(100.0, abs=1e-6)
    acc = PxAPAccumulator()
    acc.add(masks[:, :, :2], gt[:, :, :2])
    acc.add(masks[:, :, 2:], gt[:, :, 2:])
    assert acc.pxap() == pytest.approx(pxap(masks, gt))  # streaming == all at once
    edges = thresholds()
    assert len(edges) == 103 and edges[1] == pytest.approx(0.01) and list(edges[-3:]) == [1.0, 2.0, 3.0]
    assert pxap(torch.ones(1, 1, 3), torch.tensor([[[True, False, True]]])) == pytest.approx(100 * 2 / 3)


def test_read_boxes_csv_xml_and_pixel_masks(tmp_path):
    (tmp_path / "b.csv").write_text("file,xmin,ymin,xmax,ymax,wnid,width,height\nimgs/a.jpg,1,2,3,4,n01,10,20\n"
                                    "imgs/a.jpg,5,6,7,8,n02,10,20\n")
    boxes = read_boxes(tmp_path / "b.csv")
    assert boxes["a"].boxes == [(1, 2, 3, 4), (5, 6, 7, 8)] and boxes["a"].size == (10, 20)
    assert boxes["a"].select({"n02"}).boxes == [(5, 6, 7, 8)]
    assert boxes["a"].select({"zzz"}).boxes == [(1, 2, 3, 4), (5, 6, 7, 8)]  # no match: keep all
    xml = ("<annotation><size><width>100</width><height>50</height></size><object><name>n01</name>"
           "<bndbox><xmin>10</xmin><ymin>5</ymin><xmax>20</xmax><ymax>15</ymax></bndbox></object></annotation>")
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "img1.xml").write_text(xml)
    b = read_boxes(tmp_path / "x")["img1"]
    assert b.boxes == [(10, 5, 20, 15)] and b.size == (100, 50) and b.classes == ["n01"]
    (tmp_path / "bad.csv").write_text("file,x\na,1\n")
    with pytest.raises(AnnotationError, match="needs columns"):
        read_boxes(tmp_path / "bad.csv")
    import numpy as np
    from PIL import Image

    arr = np.zeros((4, 4), np.uint8)
    arr[:2] = 255
    Image.fromarray(arr).save(tmp_path / "img1.png")
    fg, ign = read_pixel_mask(tmp_path, "img1", (8, 8))
    assert fg.shape == (8, 8) and fg[:4].all() and not fg[4:].any() and not ign.any()
    assert read_pixel_mask(tmp_path, "nothing", (8, 8)) is None
