"""Reference images for random-image infill (Gupta et al.): the removed pixels come from other photos.

Gupta et al. draw the fill of every composite from a pool of training images (100 in their code,
1000 in the paper, each a ``RandomResizedCrop``). Nothing may be downloaded at run time, so the
default pool is built from the sample photos bundled with scikit-image (colour and gray photos,
each used whole plus a few seeded random crops). ``pool_from_folder`` builds one from the user's own
images (say, ImageNet training images, which is closer to the paper).

A pool remembers which source photo each entry came from, so :meth:`ReferencePool.excluding` can
drop the photo being explained (otherwise explaining ``chelsea`` would fill the cat with itself).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from saliency_core.images.preprocessing import Preprocessing

#: scikit-image sample photos used for the default pool (all bundled with the package, no download).
DEFAULT_PHOTOS = (
    "astronaut", "chelsea", "coffee", "rocket", "motorcycle_left", "hubble_deep_field",
    "immunohistochemistry", "retina", "camera", "coins", "brick", "grass", "gravel", "moon",
)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


class ReferencePoolError(ValueError):
    """A reference pool that cannot be built (empty folder, unreadable images, bad size)."""


@dataclass
class ReferencePool:
    """N x 3 x size x size reference images in a classifier's normalised space, with their sources.

    ``sources[i]`` names the photo entry ``i`` was cut from; ``thumbnails`` (one per source, 3 x 16 x 16,
    in [0, 1]) let :meth:`excluding` recognise the image being explained.
    """

    images: torch.Tensor
    sources: list[str]
    thumbnails: dict[str, torch.Tensor]

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def excluding(self, x01: torch.Tensor, threshold: float = 0.9) -> "ReferencePool":
        """The pool without the photos whose thumbnail correlates above ``threshold`` with ``x01``.

        ``x01`` is the explained image (1 x 3 x H x W in [0, 1]). If every photo would be dropped the
        pool is returned unchanged.
        """
        probe = _thumbnail(x01)
        drop = {name for name, thumb in self.thumbnails.items() if _correlation(probe, thumb) > threshold}
        keep = [i for i, s in enumerate(self.sources) if s not in drop]
        if not drop or not keep:
            return self
        return ReferencePool(self.images[keep], [self.sources[i] for i in keep],
                             {k: v for k, v in self.thumbnails.items() if k not in drop})


def _thumbnail(x01: torch.Tensor) -> torch.Tensor:
    """3 x 16 x 16 area-averaged thumbnail of a 1 x 3 x H x W (or 3 x H x W) image in [0, 1]."""
    x = x01 if x01.dim() == 4 else x01[None]
    return F.adaptive_avg_pool2d(x.float().cpu(), 16)[0]


def _correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    a = a.flatten() - a.mean()
    b = b.flatten() - b.mean()
    denom = (a.norm() * b.norm()).clamp_min(1e-8)
    return float((a @ b) / denom)


def _random_crops(img01: torch.Tensor, crops: int, size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """The whole photo (squashed) plus ``crops`` RandomResizedCrop-style crops (scale 0.25..1), size x size."""
    _, h, w = img01.shape
    out = [F.interpolate(img01[None], size=(size, size), mode="bilinear", align_corners=False, antialias=True)[0]]
    for _ in range(crops):
        scale = 0.25 + 0.75 * float(torch.rand((), generator=generator))
        aspect = float(torch.exp(torch.empty(()).uniform_(np.log(3 / 4), np.log(4 / 3), generator=generator)))
        ch = int(round(min(h, np.sqrt(scale * h * w / aspect))))
        cw = int(round(min(w, np.sqrt(scale * h * w * aspect))))
        top = int(torch.randint(0, h - ch + 1, (), generator=generator))
        left = int(torch.randint(0, w - cw + 1, (), generator=generator))
        crop = img01[:, top:top + ch, left:left + cw]
        out.append(F.interpolate(crop[None], size=(size, size), mode="bilinear", align_corners=False,
                                 antialias=True)[0])
    return out


def _to01(arr: np.ndarray) -> torch.Tensor:
    """H x W (gray) or H x W x C uint8/float array -> 3 x H x W float tensor in [0, 1]."""
    a = np.asarray(arr)
    if a.dtype == np.uint8:
        a = a.astype(np.float32) / 255.0
    else:
        a = a.astype(np.float32)
        if a.max() > 1.0:
            a = a / 255.0
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=-1)
    a = a[..., :3]
    return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1).clamp(0, 1)


def build_pool(photos: list[tuple[str, torch.Tensor]], preprocessing: Preprocessing, size: int = 224,
               crops: int = 3, seed: int = 0) -> ReferencePool:
    """A pool from named 3 x H x W photos in [0, 1]: each photo whole plus ``crops`` random crops."""
    if size < 8:
        raise ReferencePoolError(f"reference image size must be >= 8, got {size}")
    if crops < 0:
        raise ReferencePoolError(f"crops must be >= 0, got {crops}")
    if not photos:
        raise ReferencePoolError("no reference photos to build a pool from")
    gen = torch.Generator().manual_seed(seed)
    images, sources, thumbs = [], [], {}
    for name, img in photos:
        for crop in _random_crops(img, crops, size, gen):
            images.append(crop)
            sources.append(name)
        thumbs[name] = _thumbnail(img)
    batch = torch.stack(images)
    return ReferencePool(preprocessing.normalize(batch), sources, thumbs)


@lru_cache(maxsize=4)
def _default_pool_cached(mean: tuple, std: tuple, size: int, crops: int, seed: int) -> ReferencePool:
    import skimage.data as data

    photos = []
    for name in DEFAULT_PHOTOS:
        loader = getattr(data, name, None)
        if loader is None:
            continue
        try:
            photos.append((name, _to01(loader())))
        except Exception:  # noqa: BLE001 - a photo missing from this scikit-image build is skipped
            continue
    return build_pool(photos, Preprocessing(mean, std), size=size, crops=crops, seed=seed)


def default_pool(preprocessing: Preprocessing, size: int = 224, crops: int = 3, seed: int = 0) -> ReferencePool:
    """The bundled pool: scikit-image's sample photos (14 photos x (1 + crops) images), cached."""
    return _default_pool_cached(tuple(preprocessing.mean), tuple(preprocessing.std), int(size), int(crops), int(seed))


def pool_from_folder(folder: str | Path, preprocessing: Preprocessing, size: int = 224, crops: int = 0,
                     seed: int = 0, max_images: int = 1000) -> ReferencePool:
    """A pool from the images in ``folder`` (recursively, sorted; at most ``max_images`` photos)."""
    root = Path(folder)
    if not root.is_dir():
        raise ReferencePoolError(f"reference folder '{root}' does not exist or is not a folder")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())[:max_images]
    if not files:
        raise ReferencePoolError(f"reference folder '{root}' holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    photos = []
    for path in files:
        try:
            with Image.open(path) as im:
                im = im.convert("RGB")
                im.thumbnail((2 * size, 2 * size))  # keep memory bounded for large photos
                photos.append((str(path.relative_to(root)), _to01(np.asarray(im))))
        except (OSError, ValueError):
            continue
    if not photos:
        raise ReferencePoolError(f"no image in '{root}' could be read")
    return build_pool(photos, preprocessing, size=size, crops=crops, seed=seed)
