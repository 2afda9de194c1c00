"""Files that leave the server: masks and views for download, result.json and the Compare page as one HTML file.

Nothing exported names a server path: a checkpoint is named by its catalog name and short sha256
(:func:`export_safe`).
"""
from __future__ import annotations

import functools
import hashlib
import io
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

import saliency_core
from saliency_core import Classifier, Explanation

from .inputs import display_copy



def mask_png(mask: np.ndarray) -> bytes:
    from saliency_core import mask_image

    buf = io.BytesIO()
    mask_image(mask).save(buf, "PNG")
    return buf.getvalue()


def mask_npy(mask: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, mask.astype(np.float32))
    return buf.getvalue()


def image_png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()




@functools.lru_cache(maxsize=64)
def _file_sha256(path: str, mtime_ns: int, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def checkpoint_name(path: str | Path) -> str:
    """A file as an export names it: its catalog name (the file's stem, as the menus show it) and the short sha256
    of its content, ``fix_lite0 (sha256 1a2b3c4d5e6f)``; never where it lies on the server."""
    p = Path(path)
    try:
        st_ = p.stat()
        return f"{p.stem} (sha256 {_file_sha256(str(p), st_.st_mtime_ns, st_.st_size)[:12]})"
    except OSError:
        return p.stem or p.name


#: An absolute path inside a text (not the tail of a URL or of a relative path).
_ABS_PATH = re.compile(r"(?<![\w.:/~-])/(?:[^\s'\"<>,;|()\[\]{}]+)")


def export_safe(value: Any) -> Any:
    """A JSON-able value fit for a file that leaves the server: every absolute path in it (a checkpoint option, a
    path inside a note) becomes the file's name and short content hash (:func:`checkpoint_name`), or its last
    part when it is no file."""
    if isinstance(value, dict):
        return {export_safe(k): export_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [export_safe(v) for v in value]
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, str) and "/" in value:
        def name(match: re.Match) -> str:
            path = Path(match.group(0))
            return checkpoint_name(path) if path.is_file() else path.name
        return _ABS_PATH.sub(name, value)
    return value


def result_json(summary: dict[str, Any]) -> bytes:
    """``result.json``: an explanation's summary with no server path in it (:func:`export_safe`)."""
    return (json.dumps(export_safe(summary), indent=2, default=str) + "\n").encode()


def comparison_report(image_name: str, entries: list[tuple[str, Explanation]], rows: list[dict[str, Any]],
                      settings: dict[str, Any], classifier: Classifier) -> bytes:
    """The Compare page as one self-contained HTML file: every method's four views (embedded JPEGs), the scores
    table, the settings and the versions, so that it can be mailed or archived and opened offline."""
    import base64
    import datetime
    import html

    import pandas as pd
    import torch as _torch

    def jpeg(img: Image.Image) -> str:
        buf = io.BytesIO()
        display_copy(img, 480).convert("RGB").save(buf, "JPEG", quality=85)
        return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()

    titles = {"overlay": "Mask overlay", "masked_in": "Masked in (kept)", "masked_out": "Masked out (removed)",
              "infilled": "Infilled"}
    grid = ["<tr><th>method</th>" + "".join(f"<th>{t}</th>" for t in titles.values()) + "</tr>"]
    for name, expl in entries:
        cells = []
        for view in titles:
            top = expl.predictions[view][0]
            cells.append(f"<td><img src='{jpeg(expl.views[view])}'><br>{html.escape(top.name)} "
                         f"{top.probability:.0%}</td>")
        grid.append(f"<tr><th>{html.escape(export_safe(name))}</th>{''.join(cells)}</tr>")
    rows = export_safe(rows)
    table = pd.DataFrame(rows).to_html(index=False, float_format=lambda v: f"{v:.3f}", na_rep="-") if rows else ""
    versions = {"saliency_core": saliency_core.__version__, "torch": _torch.__version__,
                "classifier": classifier.identity, "made": datetime.datetime.now().isoformat(timespec="seconds")}
    safe = export_safe({**{k: str(v) for k, v in settings.items()}, **versions})  # no server path leaves it
    meta = "".join(f"<li><b>{html.escape(str(k))}</b>: {html.escape(str(v))}</li>" for k, v in safe.items())
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>Comparison: {html.escape(image_name)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1500px}} img{{max-width:300px;height:auto}}
table{{border-collapse:collapse}} td,th{{border:1px solid #ddd;padding:4px 8px;vertical-align:top;text-align:left}}
</style></head><body><h1>Comparison of saliency methods: {html.escape(image_name)}</h1>
<h2>Views</h2><table>{"".join(grid)}</table><h2>Scores</h2>{table}<h2>Settings and versions</h2><ul>{meta}</ul>
</body></html>"""
    return page.encode()
