"""Every registered method and infiller, run on a small image: the contract holds for each of them.

Parametrised over the registries, so a new method or infiller is checked without a line here. A method
that reads a checkpoint gets an untrained one of each kind it accepts, made for the tiny classifier.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from saliency_core.seeding import with_seed
from saliency_core.infill import INFILLERS, create_infiller, infiller_entry
from saliency_core.infill.composite import composite
from saliency_core.maskers.checkpoint import save_masker
from saliency_core.maskers.conditional import ConditionalMasker, ConditionalMaskerConfig
from saliency_core.maskers.label import LabelMasker, LabelMaskerConfig, output_layer_weights
from saliency_core.maskers.phang import MaskerConfig, PhangMasker
from saliency_core.methods import METHODS, create_method, method_entry

#: Cheaper values for options that only set how much work is done (used when a method declares them).
CHEAP = {"steps": 2, "iterations": 2, "num_masks": 12, "batch_size": 8}
#: An untrained masker of each masker kind, for the tiny classifier.
MASKERS = {
    "phang": lambda clf: PhangMasker(MaskerConfig(stage_channels=clf.stage_channels)),
    "label": lambda clf: LabelMasker(LabelMaskerConfig(stage_channels=clf.stage_channels,
                                                       label_dim=output_layer_weights(clf).shape[1])),
    "conditional": lambda clf: ConditionalMasker(ConditionalMaskerConfig(stage_channels=clf.stage_channels)),
}


@pytest.fixture(scope="module")
def image(tiny_classifier):
    g = torch.Generator().manual_seed(3)
    return torch.randn(1, 3, 48, 64, generator=g)


@pytest.fixture(scope="module")
def checkpoints(tiny_classifier, tmp_path_factory):
    folder = tmp_path_factory.mktemp("every_method")
    torch.manual_seed(0)
    return {kind: save_masker(folder / f"{kind}.safetensors", build(tiny_classifier).eval(), tiny_classifier, {},
                              kind=kind) for kind, build in MASKERS.items()}


def _options(name: str, checkpoints: dict, seed: int) -> dict:
    entry = method_entry(name)
    declared = {o.name: o for o in entry.options()}
    opts = {k: v for k, v in CHEAP.items() if k in declared}
    ckpt = next((o for o in declared.values() if o.kind == "checkpoint"), None)
    if ckpt is not None:
        kind = (ckpt.checkpoint_kinds or ("phang",))[0]
        assert kind in checkpoints, f"add an untrained '{kind}' masker to MASKERS for method '{name}'"
        opts["checkpoint"] = str(checkpoints[kind])
    return with_seed(entry, opts, seed)


@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize("name", METHODS.list())
def test_method_contract(name, tiny_classifier, image, checkpoints):
    labels = [1, 4]
    clean = tiny_classifier.forward_features(image)
    runs = []
    for _ in range(2):  # the same seed twice: the same masks
        method = create_method(name, **_options(name, checkpoints, seed=5))
        method.show_progress = False
        result = method(tiny_classifier, image, labels, clean)
        runs.append(result.masks.detach().float())
    masks = runs[0]
    assert masks.shape in ((len(labels), 48, 64), (1, 48, 64)), masks.shape
    assert torch.isfinite(masks).all() and masks.min() >= 0 and masks.max() <= 1
    assert (masks.shape[0] == len(labels)) == bool(result.per_label) or masks.shape[0] == 1
    assert torch.equal(runs[0], runs[1]), "same seed, same options: the same mask"
    assert method_entry(name).summary


@pytest.mark.parametrize("name", INFILLERS.list())
def test_infiller_contract(name, image):
    entry = infiller_entry(name)
    keep = (torch.rand(2, 1, 48, 64, generator=torch.Generator().manual_seed(1)) > 0.5).float()
    x = image.expand(2, -1, -1, -1).clone()
    before = x.clone()
    fills = [create_infiller(name, **with_seed(entry, {}, 7))(x, keep) for _ in range(2)]
    fill = fills[0]
    assert fill.shape == x.shape and torch.isfinite(fill).all()
    assert torch.equal(x, before), "an infiller must not change its input"
    assert torch.equal(composite(x, torch.ones_like(keep), fill), x), "keeping everything leaves the image as it is"
    assert torch.equal(fills[0], fills[1]), "the same seed gives the same fill"
    if entry.attrs.get("static"):  # the fill depends on the image only
        assert torch.equal(create_infiller(name)(x, 1 - keep), fill)
    assert np.isfinite(fill.numpy()).all()
