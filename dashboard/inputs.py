"""The images a visitor gives: uploads and the sample photos, decoded with the dashboard's limits.

Cached images carry no visitor's file name (:data:`CACHED_NAME`); a session puts its own back.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, replace

import torch
from PIL import Image

from saliency_core import Classifier, ImageLoadError, LoadedImage, load_image

from .result_cache import digest

#: Upload types offered by the file picker (all decoded by saliency_core.images.loading).
IMAGE_TYPES = ("jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff", "gif")

#: scikit-image's bundled photos offered as a gallery: name -> (caption, loader name).
GALLERY: dict[str, tuple[str, str]] = {
    "chelsea": ("Chelsea the cat", "chelsea"),
    "coffee": ("a cup of coffee", "coffee"),
    "astronaut": ("astronaut Eileen Collins", "astronaut"),
    "rocket": ("a rocket on its launch pad", "rocket"),
    "camera": ("a cameraman (grayscale)", "camera"),
    "hubble": ("Hubble deep field", "hubble_deep_field"),
    "immunohistochemistry": ("stained tissue (microscopy)", "immunohistochemistry"),
    "retina": ("a human retina", "retina"),
}

#: Value of ``infiller_options["pool"]`` meaning "the core's reference photos" (filled in before the call).
GALLERY_POOL = "reference-photos"




@dataclass(frozen=True)
class ImageInput:
    """An image the user gave: its bytes, display name and content hash."""

    data: bytes
    name: str
    digest: str

    @classmethod
    def from_bytes(cls, data: bytes, name: str) -> "ImageInput":
        return cls(data=data, name=name, digest=digest(data))


def gallery_input(name: str) -> ImageInput:
    """A gallery photo as PNG bytes (the same path as an upload: decode, hash, cache)."""
    if name not in GALLERY:
        raise ImageLoadError(f"unknown sample photo '{name}' (choose from {', '.join(GALLERY)})")
    from skimage import data as skdata

    arr = getattr(skdata, GALLERY[name][1])()
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return ImageInput.from_bytes(buf.getvalue(), f"{name}.png")


#: The name every image has in the shared :class:`ResultCache`: the cache is keyed by content and shared by all
#: sessions, so a file name (one visitor's choice, possibly private) never goes into it. A session puts its own
#: name back on what it takes out (:func:`for_session`).
CACHED_NAME = "image"


def anonymous(loaded: LoadedImage) -> LoadedImage:
    """``loaded`` without its file name, fit for the shared cache (same picture, notes and sizes)."""
    return loaded if loaded.name == CACHED_NAME else replace(loaded, name=CACHED_NAME)


def for_session(loaded: LoadedImage, image: ImageInput) -> LoadedImage:
    """A cached image under the name this session gave it."""
    return replace(loaded, name=image.name)


def load_input(image: ImageInput, max_upload_mb: int, max_pixels: int, max_side: int) -> LoadedImage:
    """Decode an upload with the dashboard's limits; bad files raise ImageLoadError (one line)."""
    if len(image.data) > max_upload_mb * 1024 * 1024:
        raise ImageLoadError(f"{image.name}: the file is {len(image.data) / 2 ** 20:.1f} MB; "
                             f"the limit is {max_upload_mb} MB")
    return load_image(image.data, name=image.name, max_pixels=max_pixels, max_side=max_side)


def reference_pool(classifier: Classifier, loaded: LoadedImage) -> torch.Tensor:
    """The reference images of the ``random-image`` infiller (Gupta et al. fill with other photos):
    the core's default pool of scikit-image photos, without the photo being explained."""
    from saliency_core import default_pool

    pre = classifier.preprocessing
    x01 = pre.pil_to_tensor01(loaded.image)
    return default_pool(pre).excluding(x01).images


def display_copy(image: Image.Image, max_side: int = 640) -> Image.Image:
    """A smaller copy for the page (the views keep their full resolution for downloads)."""
    if max(image.size) <= max_side:
        return image
    out = image.copy()
    out.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    return out
