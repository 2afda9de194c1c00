"""Pictures of masks: heat-map overlays and colour-mapped masks (numpy in, PIL out)."""
from __future__ import annotations

import numpy as np
from PIL import Image


def colormap(mask: np.ndarray, name: str = "inferno") -> np.ndarray:
    """H x W values in [0, 1] -> H x W x 3 uint8 colours of a matplotlib colour map."""
    from matplotlib import colormaps

    rgba = colormaps[name](np.clip(mask, 0.0, 1.0))
    return (rgba[..., :3] * 255.0 + 0.5).astype(np.uint8)


from saliency_core.images.colormaps import COLORMAPS  # noqa: E402 - re-exported (sc.COLORMAPS)


def overlay(image: Image.Image, mask: np.ndarray, alpha: float = 0.7, cmap: str = "inferno") -> Image.Image:
    """The image with the mask's colours blended on top, in proportion to the mask: where the mask is 0 the
    photo shows untinted, where it is 1 the colour covers ``alpha`` of it (mask at the image's resolution)."""
    base = np.asarray(image.convert("RGB"), dtype=np.float32)
    if mask.shape != base.shape[:2]:
        raise ValueError(f"mask {mask.shape} does not match image {base.shape[:2]}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"overlay opacity must be between 0 and 1, got {alpha}")
    if cmap not in COLORMAPS:
        raise ValueError(f"colour map must be one of {', '.join(COLORMAPS)}, got {cmap!r}")
    heat = colormap(mask, cmap).astype(np.float32)
    weight = (alpha * np.clip(mask, 0.0, 1.0))[..., None]
    out = (1.0 - weight) * base + weight * heat
    return Image.fromarray(np.clip(out + 0.5, 0, 255).astype(np.uint8))


def mask_image(mask: np.ndarray) -> Image.Image:
    """The mask as an 8-bit grayscale picture (white = salient)."""
    return Image.fromarray((np.clip(mask, 0, 1) * 255.0 + 0.5).astype(np.uint8), mode="L")
