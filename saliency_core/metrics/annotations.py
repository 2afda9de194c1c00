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
import xml.etree.ElementTree as ET
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


def _parse_xml(path: Path) -> ImageBoxes:
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise AnnotationError(f"box file '{path}' cannot be read: {exc}") from None
    size = root.find("size")
    wh = None
    if size is not None and size.findtext("width") and size.findtext("height"):
        wh = (int(float(size.findtext("width"))), int(float(size.findtext("height"))))
    out = ImageBoxes(size=wh)
    for obj in root.iter("object"):
        bb = obj.find("bndbox")
        if bb is None:
            continue
        try:
            box = tuple(int(float(bb.findtext(k))) for k in ("xmin", "ymin", "xmax", "ymax"))
        except (TypeError, ValueError):
            raise AnnotationError(f"box file '{path}' has a malformed <bndbox>") from None
        out.boxes.append(box)  # type: ignore[arg-type]
        out.classes.append(obj.findtext("name"))
    return out


def _csv_box(r: dict, key: str) -> tuple[str, tuple[int, int, int, int], tuple[int, int] | None]:
    """One CSV row -> (stem, box, frame) or a ValueError saying what is wrong with it."""
    if not (r.get(key) or "").strip():
        raise ValueError("no image file name")
    values = []
    for k in ("xmin", "ymin", "xmax", "ymax"):
        text = r.get(k)
        if text is None or not str(text).strip():
            raise ValueError(f"no value for {k} (a short row?)")
        v = float(text)
        if not np.isfinite(v):
            raise ValueError(f"{k} is {text!r}, not a finite number")
        values.append(int(round(v)))
    xmin, ymin, xmax, ymax = values
    if xmax < xmin or ymax < ymin:
        raise ValueError(f"an empty or inverted box ({xmin}, {ymin}, {xmax}, {ymax}): xmax < xmin or ymax < ymin")
    if min(values) < 0:
        raise ValueError(f"a negative coordinate in ({xmin}, {ymin}, {xmax}, {ymax})")
    frame = None
    if r.get("width") and r.get("height"):
        w, h = float(r["width"]), float(r["height"])
        if not (np.isfinite(w) and np.isfinite(h) and w >= 1 and h >= 1):
            raise ValueError(f"width/height {r['width']!r} x {r['height']!r} is not an image size")
        frame = (int(w), int(h))
        if xmax >= frame[0] or ymax >= frame[1]:
            raise ValueError(f"the box ({xmin}, {ymin}, {xmax}, {ymax}) lies outside its {frame[0]} x {frame[1]} frame")
    return Path(r[key]).stem, (xmin, ymin, xmax, ymax), frame


def read_boxes(source: str | Path, warn=None) -> dict[str, ImageBoxes]:
    """Ground-truth boxes keyed by image stem, from an XML folder, one XML file, or a CSV.

    A bad CSV row (short, not a number, infinite, empty or inverted box) is skipped with one line to ``warn``
    naming the file and line (without ``warn``: the first bad row raises :class:`AnnotationError`)."""
    source = Path(source)
    if not source.exists():
        raise AnnotationError(f"box source '{source}' does not exist")
    if source.is_dir():
        files = sorted(source.glob("*.xml"))
        if not files:
            raise AnnotationError(f"folder '{source}' has no .xml box files")
        return {p.stem: _parse_xml(p) for p in files}
    if source.suffix.lower() == ".xml":
        return {source.stem: _parse_xml(source)}
    try:
        with source.open(newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise AnnotationError(f"box CSV '{source}' cannot be read: {str(exc).splitlines()[0]}") from None
    if not rows:
        raise AnnotationError(f"box CSV '{source}' has no rows")
    key = "file" if "file" in rows[0] else "image" if "image" in rows[0] else None
    needed = {"xmin", "ymin", "xmax", "ymax"}
    if key is None or not needed <= set(rows[0]):
        raise AnnotationError(f"box CSV '{source}' needs columns file (or image), xmin, ymin, xmax, ymax")
    out: dict[str, ImageBoxes] = {}
    for line, r in enumerate(rows, start=2):  # line 1 is the header
        try:
            stem, box, frame = _csv_box(r, key)
        except ValueError as exc:
            message = f"{source}:{line}: {str(exc).splitlines()[0]}"
            if warn is None:
                raise AnnotationError(message) from None
            warn(message + "; row skipped")
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
