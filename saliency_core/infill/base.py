"""Infillers: what replaces the pixels a mask removes, in a registry keyed by name.

An infiller maps ``(x, keep)`` -> ``fill`` (same shape as ``x``, normalised space, detached); the
composite is ``x * keep + fill * (1 - keep)`` (see :mod:`saliency_core.infill.composite`).

Built in: ``gray`` (alias ``none``: zeros), ``mean`` (the image's mean colour), ``blur`` (Gaussian
blur of the image, ``sigma``), ``noise`` (random colour plus Gaussian noise, as FIDO),
``random-image`` (a randomly drawn other image from a reference pool, as Gupta et al.),
``local-mean`` (mean of the kept pixels in a 15x15 window, as FIDO) and ``inpaint``
(scikit-image biharmonic inpainting of the removed pixels; slow, about seconds per image).
A learned inpainting network is plugged in with :class:`ModuleInfiller` or :func:`register_infiller`.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class Infiller(Protocol):
    def __call__(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor: ...


_REGISTRY: dict[str, Callable[..., Infiller]] = {}


class InfillerError(ValueError):
    """Unknown infiller or bad infiller option."""


def register_infiller(name: str) -> Callable:
    """Decorator: register a factory ``factory(**options) -> Infiller`` under ``name``."""

    def wrap(factory: Callable[..., Infiller]) -> Callable[..., Infiller]:
        _REGISTRY[name] = factory
        return factory

    return wrap


def available_infillers() -> list[str]:
    return sorted(_REGISTRY)


def make_infiller(name: str, **options) -> Infiller:
    """Build an infiller by registry name, e.g. ``make_infiller("blur", sigma=10)``."""
    if name not in _REGISTRY:
        raise InfillerError(f"unknown infiller '{name}' (choose from {', '.join(available_infillers())})")
    try:
        return _REGISTRY[name](**options)
    except TypeError as exc:
        raise InfillerError(f"bad option for infiller '{name}': {exc}") from None


class GrayInfiller:
    """Zeros in normalised space: the normalisation's mean colour."""

    def __call__(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


register_infiller("gray")(GrayInfiller)
register_infiller("none")(GrayInfiller)


@register_infiller("mean")
class MeanColourInfiller:
    """Each image's own mean colour."""

    def __call__(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        return x.detach().mean(dim=(2, 3), keepdim=True).expand_as(x).clone()


def gaussian_kernel1d(sigma: float, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Normalised 1-D Gaussian kernel with half-width ceil(3 sigma)."""
    half = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-half, half + 1, device=device, dtype=dtype)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with replicate padding (works for any kernel/image size)."""
    k = gaussian_kernel1d(sigma, x.device, x.dtype)
    c = x.shape[1]
    half = (k.numel() - 1) // 2
    y = F.pad(x, (half, half, 0, 0), mode="replicate")
    y = F.conv2d(y, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    y = F.pad(y, (0, 0, half, half), mode="replicate")
    return F.conv2d(y, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


@register_infiller("blur")
class BlurInfiller:
    """Gaussian blur of the original image (sigma in pixels of the working resolution)."""

    def __init__(self, sigma: float = 10.0) -> None:
        if not sigma > 0:
            raise InfillerError(f"blur sigma must be > 0, got {sigma}")
        self.sigma = float(sigma)

    def __call__(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        return gaussian_blur(x.detach(), self.sigma)


@register_infiller("noise")
class NoiseInfiller:
    """FIDO's RandomColor: a uniform random colour per image plus N(0, std) noise, in pixel space."""

    def __init__(self, std: float = 0.2, seed: int | None = None,
                 mean: tuple[float, ...] = (0.5, 0.5, 0.5), scale: tuple[float, ...] = (0.5, 0.5, 0.5)) -> None:
        if std < 0:
            raise InfillerError("noise std must be >= 0")
        self.std = std
        self.generator = torch.Generator().manual_seed(seed) if seed is not None else None
        self.mean = mean
        self.scale = scale

    def __call__(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        colour = torch.rand(b, c, 1, 1, generator=self.generator)
        noise = torch.randn(b, c, h, w, generator=self.generator) * self.std
        pix = (colour + noise).clamp(0, 1).to(x.device, x.dtype)
        mean = torch.tensor(self.mean, device=x.device, dtype=x.dtype).view(1, c, 1, 1)
        scale = torch.tensor(self.scale, device=x.device, dtype=x.dtype).view(1, c, 1, 1)
        return (pix - mean) / scale


@register_infiller("local-mean")
class LocalMeanInfiller:
    """FIDO's LocalMean: mean of the kept pixels in a window (15x15); gray where none is kept."""

    def __init__(self, window: int = 15) -> None:
        if window < 1 or window % 2 == 0:
            raise InfillerError(f"local-mean window must be an odd number >= 1, got {window}")
        self.window = window

    def __call__(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        keep = keep.detach().round()
        x = x.detach()
        pad = self.window // 2
        num = F.avg_pool2d(x * keep, self.window, stride=1, padding=pad, count_include_pad=False)
        den = F.avg_pool2d(keep.expand_as(x), self.window, stride=1, padding=pad, count_include_pad=False)
        return torch.where(den > 1e-6, num / den.clamp_min(1e-6), torch.zeros_like(x))


@register_infiller("random-image")
class RandomImageInfiller:
    """Pixels of a randomly drawn other image (Gupta et al.) from a pool of normalised images.

    ``pool`` is an N x 3 x h x w tensor in the classifier's normalised space; each image in the
    batch gets an independent draw, resized to its size. Without a pool, the batch itself is used
    (each image is filled from another image of the batch).
    """

    def __init__(self, pool: torch.Tensor | None = None, seed: int | None = None) -> None:
        if pool is not None and (pool.dim() != 4 or pool.shape[0] < 1):
            raise InfillerError("random-image pool must be an N x 3 x H x W tensor with N >= 1")
        self.pool = pool
        self.generator = torch.Generator().manual_seed(seed) if seed is not None else None

    def __call__(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        if self.pool is None:
            if b < 2:
                raise InfillerError("random-image infill needs a reference pool (or a batch of 2+ images)")
            shift = 1 + torch.randint(0, b - 1, (1,), generator=self.generator).item()
            return x.detach().roll(shifts=int(shift), dims=0)
        idx = torch.randint(0, self.pool.shape[0], (b,), generator=self.generator)
        picked = self.pool[idx].to(x.device, x.dtype)
        if picked.shape[-2:] != x.shape[-2:]:
            picked = F.interpolate(picked, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return picked


@register_infiller("inpaint")
class InpaintInfiller:
    """scikit-image biharmonic inpainting of the removed pixels (keep < 0.5). Slow: CPU numpy."""

    def __call__(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        from skimage.restoration import inpaint_biharmonic

        out = x.detach().clone()
        holes = (keep.detach() < 0.5).squeeze(1).cpu().numpy()
        arr = x.detach().permute(0, 2, 3, 1).cpu().numpy().astype(np.float64)
        for i in range(x.shape[0]):
            if holes[i].any() and not holes[i].all():
                filled = inpaint_biharmonic(arr[i], holes[i], channel_axis=-1)
                out[i] = torch.from_numpy(filled).permute(2, 0, 1).to(x.dtype)
            elif holes[i].all():
                out[i] = 0.0
        return out


class ModuleInfiller:
    """A learned inpainting network ``net(x, keep) -> fill`` whose weights come from a local file.

    The user builds the network (code), and the weights are read safely (safetensors or
    ``torch.load(weights_only=True)``): nothing in a weights file can run code.
    """

    def __init__(self, net: nn.Module, weights: str | Path | None = None) -> None:
        if weights is not None:
            from saliency_core.classifiers.builders import _read_state_dict

            net.load_state_dict(_read_state_dict(Path(weights)))
        self.net = net.eval().requires_grad_(False)

    def __call__(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.net(x.detach(), keep.detach())
