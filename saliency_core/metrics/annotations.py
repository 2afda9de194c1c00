"""Reading localisation ground truth: boxes (ILSVRC XML or CSV) and pixel masks (PNG).

Boxes are kept in the annotation's own pixel frame together with that frame's (width, height),
so they can be mapped onto the working resolution of any preprocessing (``wsol.scale_boxes``).

- ILSVRC / Pascal-VOC XML: a folder of ``<image stem>.xml`` (or one XML file) with ``<size>`` and
  ``<object><name>WNID</name><bndbox>xmin ymin xmax ymax</bndbox></object>``.
- CSV: columns ``file`` (or ``image``), ``xmin, ymin, xmax, ymax``; optional ``label`` or ``wnid``
  and ``width, height`` (the frame of the box; default: the image file's own size).
- Pixel masks: a folder of ``<image stem>.png``, foreground where the value >= 128; an optional
  ``<image stem>_ignore.png`` marks pixels to leave out (>= 128).
Coordinates are inclusive pixel indices.
"""
from __future__ import annotations

import csv
import math
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch


class AnnotationError(ValueError):
    """A ground-truth file that cannot be read."""


@dataclass
class ImageBoxes:
    boxes: list[tuple[int, int, int, int]] = field(default_factory=list)
    classes: list[str | None] = field(default_factory=list)  # wnid or label text per box, if known
    size: tuple[int, int] | None = None  # (width, height) of the frame, None = the image's own

    def select(self, wanted: set[str]) -> "ImageBoxes":
        """Boxes whose class is in ``wanted`` (all boxes when none matches or none is labelled)."""
        keep = [i for i, c in enumerate(self.classes) if c is not None and c in wanted]
        if not keep:
            return self
        return ImageBoxes([self.boxes[i] for i in keep], [self.classes[i] for i in keep], self.size)

    def tensor(self) -> torch.Tensor:
        return torch.tensor(self.boxes, dtype=torch.long).view(-1, 4)


#: The four coordinates of a box, in the order they are kept.
BOX_FIELDS = ("xmin", "ymin", "xmax", "ymax")
#: Coordinates and frame sizes beyond this many pixels are refused (they would overflow the box tensors).
MAX_PIXELS_PER_SIDE = 2**20

Box = tuple[int, int, int, int]
Warn = Callable[[str], None] | None


def _number(name: str, text: str | None) -> float:
    """One annotation value as a finite float of at most ``MAX_PIXELS_PER_SIDE``, or a ValueError naming it."""
    if text is None or not str(text).strip():
        raise ValueError(f"no value for {name}")
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ValueError(f"{name} is {text!r}, not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{name} is {text!r}, not a finite number")
    if abs(value) > MAX_PIXELS_PER_SIDE:
        raise ValueError(f"{name} is {text!r}, beyond {MAX_PIXELS_PER_SIDE} pixels")
    return value


def check_frame(width: str | None, height: str | None) -> tuple[int, int]:
    """The (width, height) frame of a box as two whole numbers >= 1, or a ValueError saying what is wrong."""
    w, h = _number("width", width), _number("height", height)
    if w < 1 or h < 1:
        raise ValueError(f"width/height {width!r} x {height!r} is not an image size")
    return int(w), int(h)


def check_box(values: Mapping[str, str | None], frame: tuple[int, int] | None = None) -> Box:
    """The one validator of a box, shared by the CSV and the XML reader: four finite coordinates, not inverted or
    empty, not negative, inside ``frame`` (width, height) when it is known. A box that ends one pixel past the
    frame is Pascal VOC's 1-based convention and is clamped to the last pixel. Raises a one-line ValueError."""
    xmin, ymin, xmax, ymax = (int(round(_number(k, values.get(k)))) for k in BOX_FIELDS)
    box = (xmin, ymin, xmax, ymax)
    if xmax < xmin or ymax < ymin:
        raise ValueError(f"an empty or inverted box {box}: xmax < xmin or ymax < ymin")
    if min(box) < 0:
        raise ValueError(f"a negative coordinate in {box}")
    if frame is not None:
        w, h = frame
        if xmax > w or ymax > h:
            raise ValueError(f"the box {box} lies outside its {w} x {h} frame")
        box = (xmin, ymin, min(xmax, w - 1), min(ymax, h - 1))
    return box


def _problem(message: str, warn: Warn, skipped: str) -> None:
    """Report one bad annotation: a warning line (``...; <skipped> skipped``), or without ``warn`` an error."""
    if warn is None:
        raise AnnotationError(message)
    warn(f"{message}; {skipped} skipped")


def _xml_frame(root: ET.Element) -> tuple[int, int] | None:
    """The ``<size>`` of an XML annotation (None when it gives neither width nor height)."""
    size = root.find("size")
    if size is None:
        return None
    width, height = size.findtext("width"), size.findtext("height")
    if not (width or "").strip() and not (height or "").strip():
        return None
    return check_frame(width, height)


def _parse_xml(path: Path, warn: Warn = None) -> ImageBoxes | None:
    """The boxes of one XML file; a bad box is reported and skipped, a bad ``<size>`` skips the file (None)."""
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise AnnotationError(f"box file '{path}' cannot be read: {str(exc).splitlines()[0]}") from None
    try:
        frame = _xml_frame(root)
    except ValueError as exc:
        _problem(f"{path}: <size>: {exc}", warn, "the file's boxes are")
        return None
    out = ImageBoxes(size=frame)
    for number, obj in enumerate(root.iter("object"), start=1):
        bb = obj.find("bndbox")
        if bb is None:
            continue
        name = obj.findtext("name")
        try:
            box = check_box({k: bb.findtext(k) for k in BOX_FIELDS}, frame)
        except ValueError as exc:
            _problem(f"{path}: object {number}" + (f" ({name})" if name else "") + f": {exc}", warn, "box")
            continue
        out.boxes.append(box)
        out.classes.append(name)
    return out


def _csv_box(r: dict, key: str) -> tuple[str, Box, tuple[int, int] | None]:
    """One CSV row -> (stem, box, frame) or a ValueError saying what is wrong with it."""
    if not (r.get(key) or "").strip():
        raise ValueError("no image file name")
    short = next((k for k in BOX_FIELDS if r.get(k) is None), None)
    if short is not None:
        raise ValueError(f"no value for {short} (a short row?)")
    frame = check_frame(r["width"], r["height"]) if r.get("width") and r.get("height") else None
    return Path(r[key]).stem, check_box(r, frame), frame


def read_boxes(source: str | Path, warn: Warn = None) -> dict[str, ImageBoxes]:
    """Ground-truth boxes keyed by image stem, from an XML folder, one XML file, or a CSV.

    A bad box (short CSV row, not a number, infinite, empty or inverted, negative, outside its frame) is skipped
    with one line to ``warn`` naming the file and the line (CSV) or the object (XML); an XML file whose ``<size>``
    is bad has all its boxes skipped. Both readers use :func:`check_box`. Without ``warn`` the first bad box
    raises :class:`AnnotationError`."""
    source = Path(source)
    if not source.exists():
        raise AnnotationError(f"box source '{source}' does not exist")
    if source.is_dir() or source.suffix.lower() == ".xml":
        files = sorted(source.glob("*.xml")) if source.is_dir() else [source]
        if not files:
            raise AnnotationError(f"folder '{source}' has no .xml box files")
        parsed = {p.stem: _parse_xml(p, warn) for p in files}
        return {stem: boxes for stem, boxes in parsed.items() if boxes is not None}
    try:
        with source.open(newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise AnnotationError(f"box CSV '{source}' cannot be read: {str(exc).splitlines()[0]}") from None
    if not rows:
        raise AnnotationError(f"box CSV '{source}' has no rows")
    key = "file" if "file" in rows[0] else "image" if "image" in rows[0] else None
    if key is None or not set(BOX_FIELDS) <= set(rows[0]):
        raise AnnotationError(f"box CSV '{source}' needs columns file (or image), xmin, ymin, xmax, ymax")
    out: dict[str, ImageBoxes] = {}
    for line, r in enumerate(rows, start=2):  # line 1 is the header
        try:
            stem, box, frame = _csv_box(r, key)
        except ValueError as exc:
            _problem(f"{source}:{line}: {str(exc).splitlines()[0]}", warn, "row")
            continue
        entry = out.setdefault(stem, ImageBoxes())
        entry.boxes.append(box)
        if frame is not None:
            entry.size = frame
        entry.classes.append(r.get("wnid") or r.get("label") or None)
    return out


def read_pixel_mask(folder: str | Path, stem: str, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(foreground, ignore) bool masks at ``size`` = (height, width) for an image, or None if absent."""
    from PIL import Image

    folder = Path(folder)
    path = folder / f"{stem}.png"
    if not path.exists():
        return None
    h, w = size

    def load(p: Path) -> torch.Tensor:
        try:
            img = Image.open(p).convert("L").resize((w, h), Image.Resampling.NEAREST)
        except OSError as exc:
            raise AnnotationError(f"pixel mask '{p}' cannot be read: {exc}") from None
        return torch.from_numpy(np.asarray(img) >= 128)

    fg = load(path)
    ign_path = folder / f"{stem}_ignore.png"
    ignore = load(ign_path) if ign_path.exists() else torch.zeros_like(fg)
    return fg, ignore
