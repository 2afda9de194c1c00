"""Gradient baselines: ``grad-cam`` (pytorch-grad-cam), ``gradient-x-input`` and ``integrated-gradients``
(captum). Gradient maps are |attribution| summed over channels, divided by their maximum (ranks kept,
so insertion curves are unchanged); Grad-CAM is min-max scaled by pytorch-grad-cam itself.

Thread safety: pytorch-grad-cam registers forward/backward hooks on the model, so ``grad-cam`` runs
on its own copy of the classifier's network (one per classifier identity), behind a lock; the
shared classifier never carries hooks. Captum's gradient methods use no hooks.
"""
from __future__ import annotations

import copy
import threading
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from saliency_core.classifiers.base import Classifier, ClassifierOutput
from saliency_core.methods.base import MethodError, MethodResult, ProgressFn, register_method
from saliency_core.methods.scaling import normalise_max
from saliency_core.options import check_options, option


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


@dataclass(frozen=True)
class GradCamOptions:
    layer: str | None = option(None,
                               help=("Name of the convolutional layer whose activations and gradients are combined; "
                                     "empty means the last one. Deeper layers are more class-specific, shallower ones "
                                     "finer. (Selvaraju et al.)"))

    def __post_init__(self) -> None:
        check_options(self, "method 'grad-cam'")


@register_method("grad-cam", summary="Grad-CAM on the last convolutional layer (pytorch-grad-cam)",
                 config=GradCamOptions, group="Gradient baseline", per_label=True, on_request=False,
                 in_comparison=True,
                 paper='Selvaraju et al. (2017), Grad-CAM: Visual Explanations from Deep Networks',
                 cost=lambda cfg, k: 3.0 * k)
class GradCamMethod:
    """Grad-CAM (Selvaraju et al.) through pytorch-grad-cam, one map per label in one batched pass."""

    name = "grad-cam"

    def __init__(self, options: GradCamOptions | None = None) -> None:
        self.layer = (options or GradCamOptions()).layer or None
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
    return normalise_max(attr.detach().abs().sum(1))


@register_method("gradient-x-input", summary="gradient x input (captum InputXGradient)", group="Gradient baseline",
                 per_label=True, on_request=False,
                 paper='Shrikumar et al. (2016), Not Just a Black Box',
                 cost=lambda cfg, k: 3.0 * k)
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


@dataclass(frozen=True)
class IntegratedGradientsOptions:
    steps: int = option(32,
                        help=("How many optimisation steps (or integration steps, for Integrated Gradients) are run. "
                              "More steps give a more settled result at a proportional cost in time. (Chang, Creager, "
                              "Goldenberg & Duvenaud)"), low=1, high=1000, main=True)
    batch_size: int = option(8,
                             help=("How many images go through the classifier at once. It changes speed and memory, not"
                                   " the result. (Petsiuk, Das & Saenko)"), low=1, high=1024)

    def __post_init__(self) -> None:
        check_options(self, "method 'integrated-gradients'")


@register_method("integrated-gradients", summary="Integrated Gradients from a gray baseline (captum)",
                 config=IntegratedGradientsOptions, group="Gradient baseline", per_label=True, on_request=True,
                 paper='Sundararajan, Taly & Yan (2017), Axiomatic Attribution for Deep Networks',
                 cost=lambda cfg, k: 3.0 * k * cfg.steps)
class IntegratedGradientsMethod:
    """Integrated Gradients (Sundararajan et al.) from the gray image (0 in normalised space)."""

    name = "integrated-gradients"

    def __init__(self, options: IntegratedGradientsOptions | None = None) -> None:
        options = options or IntegratedGradientsOptions()
        self.steps, self.batch_size = options.steps, options.batch_size

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
