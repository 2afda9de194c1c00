"""Sanity checks for saliency methods (Adebayo et al. 2018), as Phang et al. ran them on maskers.

Model parameter randomisation test (MPRT): re-initialise the *classifier's* layers, from the
logits down, and compare the new maps with the original ones (a method that ignores the model
keeps them). Cascading: layers stay randomised as the test moves down. Independent: one layer at a
time, the others restored. The masker itself is never re-initialised: it reads the randomised
classifier's activations (for the ``masker`` method the checkpoint is loaded once against the
original classifier, so its identity check does not refuse the randomised copy).

Units (Phang's ``get_parametered_layer_names(depth=2)``): modules at depth <= 2 that hold
parameters, a parent replaced by its children; top-down is the reverse of registration order.
Re-initialisation as Phang's ``randomize_layer``: 4-D (conv) weights N(0, sqrt(2 / n)) with
n = out x in x kernel width (the script's formula; it ignores the kernel height), 2-D (linear)
weights Kaiming-uniform (a = sqrt 5), every 1-D parameter (biases, BatchNorm scales and shifts)
U(+-1/sqrt(len)); BatchNorm running statistics are kept. The randomisation is seeded.
"""
from __future__ import annotations

import copy
import math
from typing import Callable, Iterator

import torch
from torch import nn

from saliency_core.classifiers import Classifier
from saliency_core.methods.base import Method, ProgressFn
from saliency_core.metrics.similarity import similarity

MaskFn = Callable[[Classifier, torch.Tensor, int], torch.Tensor]
MPRT_MODES = ("cascading", "independent")


def randomization_units(model: nn.Module, depth: int = 2) -> list[str]:
    """Names of the modules to randomise, top-down (logits first)."""
    names: list[str] = []
    for name, module in model.named_modules():
        if not name or len(name.split(".")) > depth or not any(True for _ in module.parameters()):
            continue
        names = [n for n in names if not name.startswith(n + ".")]
        names.append(name)
    return names[::-1]


@torch.no_grad()
def randomize_module_(module: nn.Module, generator: torch.Generator) -> None:
    """Re-initialise every parameter of ``module`` in place (Phang et al.'s scheme, seeded)."""
    for param in module.parameters():
        if param.dim() == 4:
            n = param.shape[0] * param.shape[1] * param.shape[3]
            new = torch.randn(param.shape, generator=generator) * math.sqrt(2.0 / n)
        elif param.dim() == 2:
            fan_in = param.shape[1]
            bound = math.sqrt(6.0 / ((1 + 5.0) * fan_in))  # kaiming_uniform_(a=sqrt(5))
            new = (torch.rand(param.shape, generator=generator) * 2 - 1) * bound
        elif param.dim() == 1:
            bound = 1.0 / math.sqrt(param.numel())
            new = (torch.rand(param.shape, generator=generator) * 2 - 1) * bound
        else:
            raise ValueError(f"cannot re-initialise a parameter of shape {tuple(param.shape)}")
        param.copy_(new.to(param.device, param.dtype))


def _module(model: nn.Module, name: str) -> nn.Module:
    return dict(model.named_modules())[name]


def randomized_classifiers(classifier: Classifier, mode: str = "cascading", depth: int = 2, seed: int = 0,
                           units: list[str] | None = None) -> Iterator[tuple[str, Classifier]]:
    """Yield ``(unit, classifier)`` with that unit randomised (and, cascading, all above it too).

    Works on a private copy: the given classifier is never changed.
    """
    if mode not in MPRT_MODES:
        raise ValueError(f"mode must be one of {MPRT_MODES}, got '{mode}'")
    work = copy.deepcopy(classifier)
    units = units or randomization_units(work.model, depth)
    gen = torch.Generator().manual_seed(seed)
    for unit in units:
        module = _module(work.model, unit)
        saved = copy.deepcopy(module.state_dict()) if mode == "independent" else None
        randomize_module_(module, gen)
        work.refresh_identity()
        yield unit, work
        if saved is not None:
            module.load_state_dict(saved)
            work.refresh_identity()


def method_mask_fn(method: Method, reference: Classifier) -> MaskFn:
    """``mask_fn(classifier, x, label) -> h x w`` for a registered method; a masker checkpoint is
    loaded once against ``reference`` and then reads any (randomised) classifier's activations."""
    from saliency_core.methods.trained import MaskerMethod

    if isinstance(method, MaskerMethod):
        ckpt = method.load(reference)

        @torch.no_grad()
        def masker_fn(clf: Classifier, x: torch.Tensor, label: int) -> torch.Tensor:
            return ckpt.masker(clf.forward_features(x).stages, tuple(x.shape[-2:]))[0, 0]

        return masker_fn

    def fn(clf: Classifier, x: torch.Tensor, label: int) -> torch.Tensor:
        with torch.no_grad():
            clean = clf.forward_features(x)
        res = method(clf, x, [int(label)], clean)
        return res.masks[0].detach()

    return fn


def mprt(classifier: Classifier, mask_fn: MaskFn, x: torch.Tensor, labels: list[int], mode: str = "cascading",
         depth: int = 2, seed: int = 0, units: list[str] | None = None, progress: ProgressFn | None = None):
    """Model parameter randomisation test on images ``x`` (N x 3 x h x w) for their ``labels``.

    Returns a pandas DataFrame, one row per (step, image): mode, step (0 = original model), unit,
    image, and Spearman, Spearman of |m - 0.5|, HOG correlation and SSIM to the original map.
    """
    import pandas as pd

    n = x.shape[0]
    reference = [mask_fn(classifier, x[i:i + 1], int(labels[i])).cpu() for i in range(n)]
    rows = [dict(mode=mode, step=0, unit="original", image=i, **similarity(reference[i], reference[i]))
            for i in range(n)]
    units = units or randomization_units(classifier.model, depth)
    for step, (unit, clf) in enumerate(randomized_classifiers(classifier, mode, depth, seed, units), start=1):
        for i in range(n):
            m = mask_fn(clf, x[i:i + 1], int(labels[i])).cpu()
            rows.append(dict(mode=mode, step=step, unit=unit, image=i, **similarity(reference[i], m)))
        if progress is not None:
            progress(step / len(units), f"{mode} randomisation: {unit}")
    return pd.DataFrame(rows)
