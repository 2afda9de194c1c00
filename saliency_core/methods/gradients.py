"""Methods to compare the maskers against, registered in the method registry.

- ``grad-cam`` (pytorch-grad-cam): class activation map of the last convolutional layer.
- ``gradient-x-input`` and ``integrated-gradients`` (captum): |attribution| summed over channels.
- ``rise`` (Petsiuk et al.; no maintained library, written here): batched, seeded random masks.
- ``center-gaussian`` and ``random``: label-free controls.

Every method returns masks in [0, 1] at x's size, one per label where the method depends on the
label. Gradient maps are divided by their maximum (ranks kept, so insertion curves are unchanged);
Grad-CAM and RISE are min-max scaled (pytorch-grad-cam does this itself for Grad-CAM).

Thread safety: pytorch-grad-cam registers forward/backward hooks on the model, so ``grad-cam`` runs
on its own copy of the classifier's network (one per classifier identity), behind a lock; the
shared classifier never carries hooks. Captum's gradient methods use no hooks.
"""
from __future__ import annotations

import copy
import math
import threading
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from saliency_core.classifiers.builders import Classifier, ClassifierOutput
from saliency_core.methods.base import MethodError, MethodResult, ProgressFn, register_method


def _normalise_max(a: torch.Tensor) -> torch.Tensor:
    """K x h x w non-negative maps -> divided by each map's maximum (all-zero maps stay 0)."""
    peak = a.flatten(1).amax(1).clamp_min(1e-12).view(-1, 1, 1)
    return (a / peak).clamp(0, 1)


def _normalise_minmax(a: torch.Tensor) -> torch.Tensor:
    flat = a.flatten(1)
    lo = flat.amin(1).view(-1, 1, 1)
    hi = flat.amax(1).view(-1, 1, 1)
    return ((a - lo) / (hi - lo).clamp_min(1e-12)).clamp(0, 1)


def default_cam_layer(model: nn.Module) -> str:
    """Name of the last convolutional feature layer: timm EfficientNet ``bn2`` (conv_head + BN + act),
    ResNet ``layer4``, else the last stage of ``feature_info``, else the last Conv2d."""
    names = dict(model.named_modules())
    for candidate in ("bn2", "layer4"):
        if candidate in names and ("conv_head" in names or candidate == "layer4"):
            return candidate
    info = getattr(model, "feature_info", None)
    if info is not None:
        try:
            return info[-1]["module"]
        except (TypeError, KeyError, IndexError):
            pass
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise MethodError("grad-cam: the model has no Conv2d layer; give option layer=NAME")
    return convs[-1]


@register_method("grad-cam", "Grad-CAM on the last convolutional layer (pytorch-grad-cam)", per_label=True)
class GradCamMethod:
    """Grad-CAM (Selvaraju et al.) through pytorch-grad-cam, one map per label in one batched pass."""

    name = "grad-cam"

    def __init__(self, layer: str | None = None) -> None:
        self.layer = layer
        self._lock = threading.Lock()
        self._copies: dict[str, nn.Module] = {}

    def _private_model(self, classifier: Classifier) -> nn.Module:
        key = classifier.identity
        if key not in self._copies:
            self._copies.clear()  # keep one copy: a new classifier replaces the old one
            self._copies[key] = copy.deepcopy(classifier.model).eval()
        return self._copies[key]

    def __call__(self, classifier: Classifier, x: torch.Tensor, labels: list[int], clean: ClassifierOutput,
                 progress: ProgressFn | None = None) -> MethodResult:
        from pytorch_grad_cam import GradCAM
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        with self._lock:
            model = self._private_model(classifier)
            layer_name = self.layer or default_cam_layer(model)
            modules = dict(model.named_modules())
            if layer_name not in modules:
                raise MethodError(f"grad-cam: the model has no layer '{layer_name}'")
            cam = GradCAM(model=model, target_layers=[modules[layer_name]])
            cam.compute_input_gradient = True  # the parameters are frozen: the graph starts at the input
            try:
                with torch.enable_grad():
                    maps = cam(input_tensor=x.detach().repeat(len(labels), 1, 1, 1),
                               targets=[ClassifierOutputTarget(int(v)) for v in labels])
            finally:
                cam.activations_and_grads.release()
        masks = torch.from_numpy(maps).float().to(x.device)
        if tuple(masks.shape[-2:]) != tuple(x.shape[-2:]):
            masks = F.interpolate(masks[:, None], size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
        if progress is not None:
            progress(1.0, "grad-cam done")
        return MethodResult(masks=masks.clamp(0, 1), per_label=True, info={"layer": layer_name})


def _captum_masks(attr: torch.Tensor) -> torch.Tensor:
    """K x 3 x h x w attributions -> K x h x w maps in [0, 1]: |a| summed over channels / max."""
    return _normalise_max(attr.detach().abs().sum(1))


@register_method("gradient-x-input", "gradient x input (captum InputXGradient)", per_label=True)
class GradientXInputMethod:
    name = "gradient-x-input"

    def __call__(self, classifier: Classifier, x: torch.Tensor, labels: list[int], clean: ClassifierOutput,
                 progress: ProgressFn | None = None) -> MethodResult:
        from captum.attr import InputXGradient

        inp = x.detach().repeat(len(labels), 1, 1, 1).requires_grad_(True)
        with torch.enable_grad():
            attr = InputXGradient(classifier).attribute(inp, target=[int(v) for v in labels])
        if progress is not None:
            progress(1.0, "gradient x input done")
        return MethodResult(masks=_captum_masks(attr), per_label=True, info={})


@register_method("integrated-gradients", "Integrated Gradients from a gray baseline (captum)", per_label=True)
class IntegratedGradientsMethod:
    """Integrated Gradients (Sundararajan et al.) from the gray image (0 in normalised space)."""

    name = "integrated-gradients"

    def __init__(self, steps: int = 32, batch_size: int = 32) -> None:
        if steps < 1 or batch_size < 1:
            raise MethodError("integrated-gradients: steps and batch_size must be >= 1")
        self.steps = int(steps)
        self.batch_size = int(batch_size)

    def __call__(self, classifier: Classifier, x: torch.Tensor, labels: list[int], clean: ClassifierOutput,
                 progress: ProgressFn | None = None) -> MethodResult:
        from captum.attr import IntegratedGradients

        ig = IntegratedGradients(classifier)
        maps = []
        for k, label in enumerate(labels):  # one label at a time keeps memory at batch_size images
            with torch.enable_grad():
                attr = ig.attribute(x.detach().clone().requires_grad_(True), baselines=torch.zeros_like(x),
                                    target=int(label), n_steps=self.steps, internal_batch_size=self.batch_size)
            maps.append(attr)
            if progress is not None:
                progress((k + 1) / len(labels), f"integrated gradients: label {k + 1}/{len(labels)}")
        return MethodResult(masks=_captum_masks(torch.cat(maps)), per_label=True, info={"steps": self.steps})


def rise_params(n: int, size: tuple[int, int], grid: int, p: float, generator: torch.Generator
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random draws of n RISE masks: binary grid x grid cells (1 with probability p) and shifts."""
    h, w = size
    ch, cw = math.ceil(h / grid), math.ceil(w / grid)
    cells = (torch.rand(n, 1, grid, grid, generator=generator) < p).float()
    dy = torch.randint(0, ch, (n,), generator=generator)
    dx = torch.randint(0, cw, (n,), generator=generator)
    return cells, dy, dx


def build_rise_masks(cells: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Cells bilinearly upsampled to (grid + 1) cells, shifted by (dy, dx), cropped -> n x 1 x h x w."""
    h, w = size
    n, grid = cells.shape[0], cells.shape[-1]
    ch, cw = math.ceil(h / grid), math.ceil(w / grid)
    up = F.interpolate(cells, size=((grid + 1) * ch, (grid + 1) * cw), mode="bilinear", align_corners=False)
    rows = (dy.view(n, 1) + torch.arange(h).view(1, h)).view(n, 1, h, 1).expand(n, 1, h, w)
    cols = (dx.view(n, 1) + torch.arange(w).view(1, w)).view(n, 1, 1, w).expand(n, 1, h, w)
    idx = (rows * up.shape[-1] + cols).reshape(n, 1, -1)
    return up.flatten(2).gather(2, idx).view(n, 1, h, w)


def rise_masks(n: int, size: tuple[int, int], grid: int, p: float, generator: torch.Generator) -> torch.Tensor:
    """RISE masks (Petsiuk et al.): n binary grid x grid masks (1 with probability p), bilinearly
    upsampled to (grid + 1) cells and randomly shifted by up to one cell, cropped to ``size``.
    Returns n x 1 x h x w in [0, 1]."""
    return build_rise_masks(*rise_params(n, size, grid, p, generator), size)


@register_method("rise", "RISE: randomised input sampling (Petsiuk et al.), batched and seeded", per_label=True)
class RiseMethod:
    """saliency_c = sum_i p_c(x * M_i) M_i / (N p): masked pixels are gray (0 in normalised space).

    Defaults: 1000 masks (the paper used 4000-8000), 7 x 7 grid, p = 0.5, seed 0.
    """

    name = "rise"

    def __init__(self, num_masks: int = 1000, grid: int = 7, p: float = 0.5, seed: int = 0,
                 batch_size: int = 50) -> None:
        if num_masks < 1 or grid < 1 or batch_size < 1 or not 0 < p < 1:
            raise MethodError("rise: num_masks, grid, batch_size must be >= 1 and 0 < p < 1")
        self.num_masks, self.grid, self.p, self.seed, self.batch_size = int(num_masks), int(grid), float(p), \
            int(seed), int(batch_size)

    @torch.no_grad()
    def __call__(self, classifier: Classifier, x: torch.Tensor, labels: list[int], clean: ClassifierOutput,
                 progress: ProgressFn | None = None) -> MethodResult:
        gen = torch.Generator().manual_seed(self.seed)
        h, w = x.shape[-2:]
        cells, dy, dx = rise_params(self.num_masks, (h, w), self.grid, self.p, gen)  # drawn up front: the
        # result does not depend on the batch size
        lab = torch.tensor([int(v) for v in labels], device=x.device)
        sal = torch.zeros(len(labels), h, w, device=x.device)
        done = 0
        while done < self.num_masks:
            n = min(self.batch_size, self.num_masks - done)
            sl = slice(done, done + n)
            m = build_rise_masks(cells[sl], dy[sl], dx[sl], (h, w)).to(x.device, x.dtype)
            probs = classifier(x * m).float().softmax(-1)[:, lab]  # n x K
            sal += torch.einsum("nk,nhw->khw", probs, m[:, 0].float())
            done += n
            if progress is not None:
                progress(done / self.num_masks, f"rise: {done}/{self.num_masks} masks")
        sal /= self.num_masks * self.p
        return MethodResult(masks=_normalise_minmax(sal), per_label=True,
                            info={"num_masks": self.num_masks, "grid": self.grid, "p": self.p, "seed": self.seed})


def center_gaussian(h: int, w: int, sigma: float = 0.25) -> torch.Tensor:
    """exp(-(dy^2 / (2 (sigma h)^2) + dx^2 / (2 (sigma w)^2))) around the image centre, h x w, max 1."""
    ys = torch.arange(h, dtype=torch.float32) - (h - 1) / 2
    xs = torch.arange(w, dtype=torch.float32) - (w - 1) / 2
    g = torch.exp(-(ys.view(-1, 1) ** 2) / (2 * (sigma * h) ** 2) - (xs.view(1, -1) ** 2) / (2 * (sigma * w) ** 2))
    return g / g.max()


@register_method("center-gaussian", "label-free control: a Gaussian at the image centre")
class CenterGaussianMethod:
    name = "center-gaussian"

    def __init__(self, sigma: float = 0.25) -> None:
        if not sigma > 0:
            raise MethodError(f"center-gaussian: sigma must be > 0, got {sigma}")
        self.sigma = float(sigma)

    def __call__(self, classifier: Classifier, x: torch.Tensor, labels: list[int], clean: ClassifierOutput,
                 progress: ProgressFn | None = None) -> MethodResult:
        mask = center_gaussian(*x.shape[-2:], sigma=self.sigma).to(x.device)
        return MethodResult(masks=mask[None], per_label=False, info={"sigma": self.sigma})


@register_method("random", "label-free control: seeded uniform noise (cells of `cell` pixels)")
class RandomMethod:
    """Uniform random map; the same seed gives the same map for an image size (reproducible)."""

    name = "random"

    def __init__(self, seed: int = 0, cell: int = 1) -> None:
        if cell < 1:
            raise MethodError(f"random: cell must be >= 1, got {cell}")
        self.seed, self.cell = int(seed), int(cell)

    def __call__(self, classifier: Classifier, x: torch.Tensor, labels: list[int], clean: ClassifierOutput,
                 progress: ProgressFn | None = None) -> MethodResult:
        h, w = x.shape[-2:]
        gen = torch.Generator().manual_seed(self.seed)
        small = torch.rand(1, 1, math.ceil(h / self.cell), math.ceil(w / self.cell), generator=gen)
        mask = F.interpolate(small, scale_factor=self.cell, mode="nearest")[0, 0, :h, :w]
        return MethodResult(masks=mask[None].to(x.device), per_label=False, info={"seed": self.seed, "cell": self.cell})


__all__: list[Any] = ["GradCamMethod", "GradientXInputMethod", "IntegratedGradientsMethod", "RiseMethod",
                      "CenterGaussianMethod", "RandomMethod", "rise_masks", "center_gaussian", "default_cam_layer"]
