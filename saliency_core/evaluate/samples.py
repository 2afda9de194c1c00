"""The images of an evaluation: a CSV, an ImageFolder tree or a plain folder, optionally the class-disjoint
val/train part that ``saliency train`` uses (the same :func:`saliency_core.datasets.class_disjoint_split`)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from saliency_core.datasets import (
    IMAGE_SUFFIXES,
    DataError,
    class_disjoint_split,
    data_root,
    display_path,
    read_samples,
)
from saliency_core.evaluate.config import EvalConfig, EvalError


@dataclass
class EvalSample:
    path: Path
    label: int  # -1 when unknown
    name: str
    wnid: str | None = None
    file: str = ""  # the path as messages show it: relative to the images CSV (or folder)


def read_eval_samples(cfg: EvalConfig) -> list[EvalSample]:
    """Images to evaluate: a CSV / ImageFolder / folder with labels.csv (labelled), or a plain folder."""
    src = Path(cfg.images)
    if not src.exists():
        raise EvalError(f"image source '{src}' does not exist")
    wnids: dict[Path, str] = {}
    try:
        samples = [(s.path, s.label) for s in read_samples(src)]
        csv_path = src if src.is_file() else src / "labels.csv"
        if csv_path.is_file():
            import csv

            with csv_path.open(newline="") as f:
                for r in csv.DictReader(f):
                    if r.get("wnid") and (r.get("file") or r.get("path")):
                        wnids[(csv_path.parent / (r.get("file") or r.get("path"))).resolve()] = r["wnid"]
    except DataError:
        if not src.is_dir():
            raise
        files = sorted(p for p in src.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise EvalError(f"folder '{src}' has no images") from None
        samples = [(p, -1) for p in files]
    if cfg.split != "all":
        from saliency_core.datasets import Sample

        if any(label < 0 for _, label in samples):
            raise EvalError("split=val/train needs labelled images")
        train, val = class_disjoint_split([Sample(p, y) for p, y in samples], cfg.val_fraction, cfg.split_seed)
        chosen = val if cfg.split == "val" else train
        samples = [(s.path, s.label) for s in chosen]
    if cfg.limit is not None:
        samples = samples[:cfg.limit]
    out, used = [], set()
    root = data_root(src)
    for p, y in samples:
        name = Path(p).stem
        if name in used:
            name = f"{name}_{len(used)}"
        used.add(name)
        out.append(EvalSample(Path(p), int(y), name, wnids.get(Path(p).resolve()), display_path(p, root)))
    return out
