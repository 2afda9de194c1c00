"""Box annotations are untrusted input: the XML reader warns and skips exactly as the CSV reader does, through the
one validator they share (issue 27, item 6)."""
from __future__ import annotations

from pathlib import Path

import pytest

from saliency_core.metrics.annotations import AnnotationError, read_boxes

GOOD = "<object><name>n01</name><bndbox><xmin>10</xmin><ymin>5</ymin><xmax>20</xmax><ymax>15</ymax></bndbox></object>"


def _object(xmin: str, ymin: str, xmax: str, ymax: str, name: str = "n02") -> str:
    return (f"<object><name>{name}</name><bndbox><xmin>{xmin}</xmin><ymin>{ymin}</ymin><xmax>{xmax}</xmax>"
            f"<ymax>{ymax}</ymax></bndbox></object>")


def _xml(path: Path, *objects: str, width: str = "100", height: str = "50") -> Path:
    path.write_text(f"<annotation><size><width>{width}</width><height>{height}</height></size>"
                    + "".join(objects) + "</annotation>")
    return path


@pytest.mark.parametrize("bad, words", [
    (_object("10", "5", "inf", "15"), ["object 2 (n02)", "xmax", "'inf'", "not a finite number"]),
    (_object("10", "5", "abc", "15"), ["object 2 (n02)", "xmax", "'abc'", "not a number"]),
    (_object("30", "5", "20", "15"), ["object 2 (n02)", "inverted"]),
    (_object("-4", "5", "20", "15"), ["object 2 (n02)", "negative"]),
    (_object("10", "5", "20", "", ), ["object 2 (n02)", "no value for ymax"]),
    (_object("10", "5", "400", "15"), ["object 2 (n02)", "outside its 100 x 50 frame"]),
    (_object("10", "5", "1e30", "15"), ["object 2 (n02)", "xmax"]),
])
def test_a_bad_xml_box_is_one_warning_naming_the_file_and_is_skipped(tmp_path, bad, words):
    path = _xml(tmp_path / "img1.xml", GOOD, bad)
    warned: list[str] = []
    boxes = read_boxes(tmp_path, warn=warned.append)
    assert len(warned) == 1, warned
    assert warned[0].startswith(f"{path}: ") and warned[0].endswith("box skipped"), warned[0]
    assert all(w in warned[0] for w in words), warned[0]
    assert "\n" not in warned[0]
    assert boxes["img1"].boxes == [(10, 5, 20, 15)] and boxes["img1"].classes == ["n01"]  # the good box is used
    with pytest.raises(AnnotationError, match="img1.xml: object 2"):
        read_boxes(path)  # without a warn callback the first bad box is an error, never a traceback


@pytest.mark.parametrize("width, height, words", [
    ("inf", "50", ["width", "'inf'", "not a finite number"]),
    ("abc", "50", ["width", "'abc'", "not a number"]),
    ("100", "-3", ["not an image size"]),
])
def test_a_bad_xml_size_is_one_warning_naming_the_file_and_its_boxes_are_skipped(tmp_path, width, height, words):
    """The boxes of a file whose frame is unreadable cannot be placed on the image: they are all left out, with one
    line; other files are used."""
    bad = _xml(tmp_path / "img1.xml", GOOD, width=width, height=height)
    _xml(tmp_path / "img2.xml", GOOD)
    warned: list[str] = []
    boxes = read_boxes(tmp_path, warn=warned.append)
    assert len(warned) == 1, warned
    assert warned[0].startswith(f"{bad}: <size>") and all(w in warned[0] for w in words), warned[0]
    assert "img1" not in boxes and boxes["img2"].boxes == [(10, 5, 20, 15)]
    with pytest.raises(AnnotationError, match=r"img1\.xml: <size>"):
        read_boxes(bad)


def test_csv_and_xml_share_one_validator(tmp_path):
    """The same bad box read from a CSV row and from an XML object gives the same reason."""
    (tmp_path / "b.csv").write_text("file,xmin,ymin,xmax,ymax,width,height\nimg1.jpg,10,5,abc,15,100,50\n")
    _xml(tmp_path / "img1.xml", _object("10", "5", "abc", "15"))
    warned: list[str] = []
    read_boxes(tmp_path / "b.csv", warn=warned.append)
    read_boxes(tmp_path / "img1.xml", warn=warned.append)
    reasons = [w.split(": ", 2)[-1].rsplit(";", 1)[0] for w in warned]
    assert len(reasons) == 2 and reasons[0] == reasons[1] == "xmax is 'abc', not a number", warned


def test_a_box_one_past_the_edge_is_the_one_based_convention(tmp_path):
    """Pascal VOC counts pixels from 1, so a box may end on the width itself: it is clamped to the last pixel."""
    _xml(tmp_path / "img1.xml", _object("1", "1", "100", "50"))
    warned: list[str] = []
    assert read_boxes(tmp_path / "img1.xml", warn=warned.append)["img1"].boxes == [(1, 1, 99, 49)]
    assert not warned
