"""Pictures of masks: heat-map overlays and colour-mapped masks (numpy in, PIL out)."""
from __future__ import annotations

import numpy as np
from PIL import Image


def colormap(mask: np.ndarray, name: str = "inferno") -> np.ndarray:
    """H x W values in [0, 1] -> H x W x 3 uint8 colours of a matplotlib colour map."""
    from matplotlib import colormaps

    rgba = colormaps[name](np.clip(mask, 0.0, 1.0))
    return (rgba[..., :3] * 255.0 + 0.5).astype(np.uint8)


def overlay(image: Image.Image, mask: np.ndarray, alpha: float = 0.55, cmap: str = "inferno") -> Image.Image:
    """The image with the mask's heat map blended on top (mask at the image's resolution)."""
    base = np.asarray(image.convert("RGB"), dtype=np.float32)
    if mask.shape != base.shape[:2]:
        raise ValueError(f"mask {mask.shape} does not match image {base.shape[:2]}")
    heat = colormap(mask, cmap).astype(np.float32)
    out = (1.0 - alpha) * base + alpha * heat
    return Image.fromarray(np.clip(out + 0.5, 0, 255).astype(np.uint8))


def mask_image(mask: np.ndarray) -> Image.Image:
    """The mask as an 8-bit grayscale picture (white = salient)."""
    return Image.fromarray((np.clip(mask, 0, 1) * 255.0 + 0.5).astype(np.uint8), mode="L")
