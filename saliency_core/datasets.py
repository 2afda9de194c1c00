"""Training and evaluation data: ImageFolder trees or CSV lists (path, label), class-disjoint
splits, few-shot subsampling, and an in-memory cache of decoded images for small CPU runs."""
from __future__ import annotations

import csv
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import transforms

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"}
#: The up-front image check draws a progress bar from this many images on.
CHECK_BAR_FROM = 200


class DataError(ValueError):
    """A data source that cannot be read."""


@dataclass(frozen=True)
class Sample:
    path: Path
    label: int


def read_samples(source: str | Path) -> list[Sample]:
    """Samples from a CSV (columns ``file``/``path`` and ``label``, paths relative to the CSV) or an
    ImageFolder tree (one folder per class, classes numbered in sorted order; a folder named by an
    integer uses that integer as the label)."""
    source = Path(source)
    if not source.exists():
        raise DataError(f"data source '{source}' does not exist")
    if source.is_file():
        with source.open(newline="") as f:
            rows = list(csv.DictReader(f))
        if not rows:
            raise DataError(f"CSV '{source}' has no rows")
        key = "file" if "file" in rows[0] else "path" if "path" in rows[0] else None
        if key is None or "label" not in rows[0]:
            raise DataError(f"CSV '{source}' needs columns 'file' (or 'path') and 'label'")
        samples, bad = [], []
        for line, r in enumerate(rows, start=2):  # line 1 is the header
            file, label = (r.get(key) or "").strip(), (r.get("label") or "").strip()
            if not file:
                bad.append(f"{source}:{line}: no file name")
            elif not label.lstrip("-").isdigit() or int(label) < 0:
                bad.append(f"{source}:{line}: label {label!r} is not a class index (a whole number >= 0)")
            else:
                samples.append(Sample((source.parent / file).resolve(), int(label)))
        if bad:
            raise DataError(f"{len(bad)} bad row{'s' if len(bad) > 1 else ''} in '{source}': " + "; ".join(bad[:5])
                            + (f"; ... ({len(bad) - 5} more)" if len(bad) > 5 else ""))
        return samples
    classes = sorted(d for d in source.iterdir() if d.is_dir())
    if not classes:
        if (source / "labels.csv").exists():
            return read_samples(source / "labels.csv")
        raise DataError(f"folder '{source}' has no class sub-folders and no labels.csv")
    numeric = all(d.name.isdigit() for d in classes)
    samples = []
    for i, d in enumerate(classes):
        label = int(d.name) if numeric else i
        samples += [Sample(p, label) for p in sorted(d.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
    return samples


def image_problem(path: Path) -> str | None:
    """Why the image at ``path`` cannot be trained on (None when it can). The image is decoded in full, exactly
    as training will load it: ``Image.open`` reads only the header, so a truncated JPEG passes it and used to
    stop a run at its first step."""
    from saliency_core.images.loading import load_image

    try:
        load_image(path)
    except Exception as exc:  # noqa: BLE001 - anything that cannot be loaded is a bad file
        return problem_text(exc, path)
    return None


def problem_text(exc: BaseException, path: Path) -> str:
    """The first line of a loading error without the file name it starts with (the caller names the file)."""
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    prefix = f"{Path(path).name}: "
    return text[len(prefix):] if text.startswith(prefix) else text


def find_bad_images(samples: list[Sample], workers: int = 1, show_bar: bool = False,
                    progress: Callable[[float, str], None] | None = None) -> list[tuple[Sample, str]]:
    """(sample, reason) of every image that cannot be decoded, in order. ``workers`` threads decode in parallel
    (Pillow's decoders release the GIL); ``show_bar`` draws a progress bar, ``progress`` gets (fraction, text)."""
    from concurrent.futures import ThreadPoolExecutor

    from tqdm.auto import tqdm

    bad: list[tuple[Sample, str]] = []
    chunk = 64 * max(1, workers)  # a bounded number of decodes in flight, whatever the size of the data
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool, \
            tqdm(total=len(samples), desc="checking images", unit="image", leave=False,
                 disable=not show_bar or len(samples) < CHECK_BAR_FROM,
                 dynamic_ncols=True) as bar:
        for start in range(0, len(samples), chunk):
            part = samples[start:start + chunk]
            bad += [(s, p) for s, p in zip(part, pool.map(image_problem, [s.path for s in part])) if p is not None]
            bar.update(len(part))
            if progress is not None:
                done = start + len(part)
                progress(done / len(samples), f"checking images ({done}/{len(samples)})")
    return bad


def report_bad_images(total: int, bad: list[tuple[Sample, str]], skip_bad: bool = False,
                      log: Callable[[str], None] | None = None, root: Path | None = None) -> None:
    """Refuse the bad images in one error line, or with ``skip_bad`` say in one line to ``log`` how many were left
    out and which (paths relative to ``root``, the folder of the data CSV, when given)."""
    if not bad:
        return
    shown = [f"{display_path(s.path, root)} ({reason})" for s, reason in bad[:10]]
    listed = "; ".join(shown) + (f"; ... ({len(bad) - 10} more)" if len(bad) > 10 else "")
    if not skip_bad:
        raise DataError(f"{len(bad)} of {total} images cannot be read: {listed} "
                        "(fix them, or pass --skip-bad-images to leave them out)")
    if log is not None:
        log(f"left out {len(bad)} of {total} images that cannot be read: {listed}")


def check_images(samples: list[Sample], skip_bad: bool = False, log: Callable[[str], None] | None = None,
                 root: Path | None = None, workers: int = 1, show_bar: bool = False) -> list[Sample]:
    """Decode every image in full before training starts (hours later a bad file would stop the run).

    Missing, empty, corrupt, truncated or non-image files are listed in one error; with ``skip_bad`` they are left
    out and counted instead (``log`` receives the line)."""
    bad = find_bad_images(samples, workers, show_bar)
    report_bad_images(len(samples), bad, skip_bad, log, root)
    left_out = {id(s) for s, _ in bad}
    return [s for s in samples if id(s) not in left_out]


def data_root(source: str | Path) -> Path:
    """The folder that the paths of a data source are relative to (a CSV's folder, or the tree itself)."""
    source = Path(source)
    return source.parent if source.is_file() else source


def display_path(path: str | Path, root: str | Path | None) -> str:
    """``path`` relative to ``root`` when given (never an absolute machine path in a message when it can be helped)."""
    if root is None:
        return str(path)
    try:
        return os.path.relpath(path, Path(root).resolve())
    except ValueError:  # another drive (Windows)
        return path.name


def class_disjoint_split(samples: list[Sample], val_fraction: float, seed: int) -> tuple[list[Sample], list[Sample]]:
    """Split so that no class appears in both parts (validation measures unseen classes)."""
    classes = sorted({s.label for s in samples})
    rng = random.Random(seed)
    rng.shuffle(classes)
    n_val = max(1, round(len(classes) * val_fraction)) if val_fraction > 0 else 0
    val_classes = set(classes[:n_val])
    return [s for s in samples if s.label not in val_classes], [s for s in samples if s.label in val_classes]


def few_shot(samples: list[Sample], num_classes: int | None, per_class: int | None, seed: int) -> list[Sample]:
    """Keep ``num_classes`` random classes and ``per_class`` random images of each (seeded)."""
    rng = random.Random(seed)
    by_class: dict[int, list[Sample]] = {}
    for s in samples:
        by_class.setdefault(s.label, []).append(s)
    classes = sorted(by_class)
    if num_classes is not None:
        classes = sorted(rng.sample(classes, min(num_classes, len(classes))))
    out = []
    for c in classes:
        items = by_class[c]
        out += items if per_class is None else rng.sample(items, min(per_class, len(items)))
    return out


class ImageDataset(Dataset):
    """Decoded images, kept in memory at ``cache_size`` (shorter side) when ``cache`` is set."""

    def __init__(self, samples: list[Sample], transform: transforms.Compose, cache: bool = True,
                 cache_size: int = 256) -> None:
        if not samples:
            raise DataError("no images to load")
        self.samples = samples
        self.transform = transform
        self.cache = cache
        self.cache_size = cache_size
        self._cache: dict[int, Image.Image] = {}

    def __len__(self) -> int:
        return len(self.samples)

    def _image(self, i: int) -> Image.Image:
        if i in self._cache:
            return self._cache[i]
        from saliency_core.images.loading import load_image

        img = load_image(self.samples[i].path).image
        if self.cache:
            img = transforms.functional.resize(img, self.cache_size)
            self._cache[i] = img
        return img

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(self._image(i)), self.samples[i].label


def train_transform(size: int = 224, augment: bool = True) -> transforms.Compose:
    """Random resized crop + flip (the papers' augmentation), to [0, 1] tensors.

    torchvision draws these from torch's global generator and takes no ``torch.Generator``: training wraps the
    dataset in :class:`saliency_core.train.data.SeededAugmentation`, which runs each image's transform in a forked
    generator seeded from (seed, epoch, index), so the crops are reproducible and the caller's RNG is untouched."""
    if not augment:
        return eval_transform(size)
    return transforms.Compose([transforms.RandomResizedCrop(size), transforms.RandomHorizontalFlip(),
                               transforms.ToTensor()])


def eval_transform(size: int = 224) -> transforms.Compose:
    """Resize the shorter side to 256/224 * size and centre-crop ``size`` (the standard protocol)."""
    return transforms.Compose([transforms.Resize(int(round(size * 256 / 224))), transforms.CenterCrop(size),
                               transforms.ToTensor()])


@torch.no_grad()
def correctly_classified(samples: list[Sample], classifier: torch.nn.Module, size: int = 224, batch_size: int = 32,
                         progress=None) -> list[Sample]:
    """The samples that ``classifier`` (a :class:`saliency_core.classifiers.builders.Classifier`) gets right
    on the evaluation crop (for 'train only on images the classifier gets right')."""
    from torch.utils.data import DataLoader

    was_training = classifier.training
    classifier.eval()
    device = next(classifier.parameters()).device
    loader = DataLoader(ImageDataset(samples, eval_transform(size), cache=False), batch_size=batch_size,
                        generator=torch.Generator())
    keep: list[Sample] = []
    done = 0
    for x01, y in loader:
        pred = classifier(classifier.preprocessing.normalize(x01.to(device))).argmax(-1).cpu()
        keep += [samples[done + i] for i in range(len(y)) if int(pred[i]) == int(y[i])]
        done += len(y)
        if progress is not None:
            progress(done / len(samples), f"checking which images the classifier gets right ({done}/{len(samples)})")
    classifier.train(was_training)
    return keep
