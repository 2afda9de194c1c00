"""Robust image loading: every odd file either becomes an RGB picture or one clear error line.

Handles EXIF rotation, grayscale, 16-bit, CMYK, palette and alpha images, animated files (first
frame), zero-byte, corrupt and non-image files, images too small or too elongated (over 10:1) to explain,
and decompression bombs (refused above
``max_pixels``; large images under the limit are downscaled to ``max_side`` with a note).
"""
from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

#: Images with more decoded pixels than this are refused (about 8k x 10k).
DEFAULT_MAX_PIXELS = 80_000_000
#: Longer side after loading; bigger images are downscaled (explanations run at ~224 px anyway).
DEFAULT_MAX_SIDE = 2048
#: Longer side over shorter side beyond which an image is refused: the classifier sees a 224-px-high picture
#: (squeezed beyond 2:1, see ``preprocessing``), so a 400:1 strip would be explained as a smear.
DEFAULT_MAX_ASPECT = 10.0
#: Shorter side below which an image is refused (a mask of a few pixels says nothing).
MIN_SIDE = 8


class ImageLoadError(ValueError):
    """The file cannot be turned into an image; the message is one line meant for a user."""


@dataclass
class LoadedImage:
    """An RGB picture plus what loading had to do to get it."""

    image: Image.Image
    name: str
    original_size: tuple[int, int]  # (width, height) as stored in the file, after EXIF rotation
    notes: list[str] = field(default_factory=list)

    @property
    def size(self) -> tuple[int, int]:
        return self.image.size


def _to_rgb(img: Image.Image, notes: list[str]) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB, flattening transparency onto white."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
        if mode == "F":
            lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
            arr = (arr - lo) / max(hi - lo, 1e-12) * 255.0
        else:
            arr = arr / hi * 255.0
        notes.append(f"converted {mode} (high bit depth) to 8-bit")
        img = Image.fromarray(np.clip(np.nan_to_num(arr), 0, 255).astype(np.uint8), mode="L")
        mode = "L"
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        if rgba.getchannel("A").getextrema()[0] < 255:
            notes.append("transparent pixels were flattened onto white")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode == "CMYK":
        notes.append("converted CMYK to RGB")
    elif mode in ("L", "1"):
        notes.append("grayscale image replicated to three channels")
    return img.convert("RGB")


def _check_shape(name: str, width: int, height: int, max_aspect: float) -> None:
    """Refuse, in one line that says what is accepted, an image too small or too elongated to explain.

    Checked on the size as stored, before any downscaling: a 20000x50 strip is refused for its aspect ratio,
    not as the 2048x5 picture that downscaling would make of it."""
    if min(width, height) < MIN_SIDE:
        raise ImageLoadError(f"{name}: image is too small ({width}x{height}; at least {MIN_SIDE}x{MIN_SIDE} "
                             "is needed)")
    ratio = max(width, height) / min(width, height)
    if ratio > max_aspect:
        raise ImageLoadError(
            f"{name}: image is too elongated ({width}x{height}, aspect ratio {ratio:.0f}:1; at most "
            f"{max_aspect:g}:1 is accepted: crop it to the part you want explained)")


def load_image(
    source: str | Path | bytes | BinaryIO,
    name: str | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_side: int = DEFAULT_MAX_SIDE,
    max_aspect: float = DEFAULT_MAX_ASPECT,
) -> LoadedImage:
    """Load a file path, bytes or file object as an RGB image, or raise :class:`ImageLoadError`."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        name = name or path.name
        if not path.exists():
            raise ImageLoadError(f"{name}: file not found")
        if path.is_dir():
            raise ImageLoadError(f"{name}: is a folder, not an image file")
        data = path.read_bytes()
    elif isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    else:
        data = source.read()
    name = name or "image"
    if len(data) == 0:
        raise ImageLoadError(f"{name}: the file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            width, height = img.size
            if width * height > max_pixels:
                raise ImageLoadError(
                    f"{name}: image is too large ({width}x{height} = {width * height / 1e6:.0f} MP; "
                    f"the limit is {max_pixels / 1e6:.0f} MP)"
                )
            notes: list[str] = []
            if getattr(img, "n_frames", 1) > 1:
                notes.append(f"animated image with {img.n_frames} frames: using the first frame")
                img.seek(0)
            img.load()
            img = ImageOps.exif_transpose(img) or img
            if img.size != (width, height):
                notes.append("rotated according to its EXIF orientation")
    except ImageLoadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageLoadError(f"{name}: refused as a possible decompression bomb ({exc})") from None
    except UnidentifiedImageError:
        raise ImageLoadError(f"{name}: not a recognised image file (corrupt or another file type)") from None
    except (OSError, SyntaxError, ValueError, EOFError, TypeError, KeyError, IndexError, struct.error) as exc:
        # Pillow's plugins raise any of these on malformed data (e.g. TypeError for a bad TIFF IFD).
        raise ImageLoadError(f"{name}: the image data is corrupt or truncated ({exc})") from None
    original_size = img.size
    _check_shape(name, *original_size, max_aspect=max_aspect)
    rgb = _to_rgb(img, notes)
    if max(rgb.size) > max_side:
        scale = max_side / max(rgb.size)
        new = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
        notes.append(f"downscaled from {rgb.width}x{rgb.height} to {new[0]}x{new[1]}")
        rgb = rgb.resize(new, Image.Resampling.LANCZOS)
    return LoadedImage(image=rgb, name=name, original_size=original_size, notes=notes)
