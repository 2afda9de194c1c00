"""How a picture becomes the classifier's input, and back: resize policy and normalisation.

Resize policy (``resize="fit"``, the default): the *whole* image is used, never cropped. Its
shorter side is scaled to ``input_size`` (224), the longer side keeps the aspect ratio up to
``max_aspect`` (beyond that the image is squeezed), and both sides are rounded to a multiple of
32 so every stage of the classifier has an integer size. Masks come back at this working size and
are resized bilinearly to the original resolution, so they always cover the full picture.
``resize="squash"`` scales any image to ``input_size`` x ``input_size`` (used for batches).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

RESIZE_POLICIES = ("fit", "squash")


@dataclass(frozen=True)
class Preprocessing:
    """Preprocessing that travels with a classifier's weights."""

    mean: tuple[float, float, float]  # per channel, in [0, 1] pixel units
    std: tuple[float, float, float]
    input_size: int = 224
    resize: str = "fit"
    max_aspect: float = 2.0
    multiple: int = 32

    def __post_init__(self) -> None:
        if self.resize not in RESIZE_POLICIES:
            raise ValueError(f"unknown resize policy '{self.resize}' (choose from {', '.join(RESIZE_POLICIES)})")

    def to_dict(self) -> dict:
        return asdict(self)

    def working_size(self, width: int, height: int) -> tuple[int, int]:
        """(height, width) of the tensor the classifier sees for an image of ``width`` x ``height``."""
        if self.resize == "squash":
            return self.input_size, self.input_size
        short, long_ = min(width, height), max(width, height)
        long_target = min(self.input_size * long_ / short, self.input_size * self.max_aspect)
        long_target = max(self.multiple, int(round(long_target / self.multiple)) * self.multiple)
        short_target = self.input_size
        return (short_target, long_target) if height <= width else (long_target, short_target)

    def _stats(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = torch.tensor(self.mean, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        return mean, std

    def normalize(self, x01: torch.Tensor) -> torch.Tensor:
        """Pixels in [0, 1] -> classifier space (where 0 is the 'gray' of the normalisation)."""
        mean, std = self._stats(x01)
        return (x01 - mean) / std

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Classifier space -> pixels in [0, 1] (clamped), for display."""
        mean, std = self._stats(x)
        return (x * std + mean).clamp(0.0, 1.0)

    def pil_to_tensor01(self, image: Image.Image, size: tuple[int, int] | None = None) -> torch.Tensor:
        """RGB PIL image -> 1x3xHxW float tensor in [0, 1] at the working size (or ``size``)."""
        h, w = size or self.working_size(*image.size)
        resized = image.convert("RGB").resize((w, h), Image.Resampling.BICUBIC)
        arr = np.asarray(resized, dtype=np.float32) / 255.0
        return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0).contiguous()

    def pil_to_input(self, image: Image.Image, size: tuple[int, int] | None = None) -> torch.Tensor:
        """RGB PIL image -> normalised 1x3xHxW tensor, ready for the classifier."""
        return self.normalize(self.pil_to_tensor01(image, size))


def resize_mask(mask: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bilinearly resize masks (..., h, w) to (..., height, width), keeping values in [0, 1]."""
    lead = mask.shape[:-2]
    flat = mask.reshape(-1, 1, *mask.shape[-2:]).float()
    out = F.interpolate(flat, size=(height, width), mode="bilinear", align_corners=False)
    return out.clamp(0.0, 1.0).reshape(*lead, height, width)


def tensor01_to_pil(x01: torch.Tensor) -> Image.Image:
    """3xHxW (or 1x3xHxW) tensor in [0, 1] -> RGB PIL image."""
    if x01.dim() == 4:
        x01 = x01[0]
    arr = (x01.detach().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255.0 + 0.5).astype(np.uint8)
    return Image.fromarray(arr, mode="RGB")
