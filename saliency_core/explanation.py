"""Explain images end to end: load, classify, run a method, build the views, write the outputs.

``explain(image, ExplainConfig(...))`` is the one call used by ``saliency explain`` and the
dashboard. Views: *masked-in* keeps the salient pixels over gray (x * m), *masked-out* removes them
(x * (1 - m)), *infilled* removes them and fills the hole with the chosen infiller
(x * (1 - m) + fill * m). Every view is classified again.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image

from saliency_core.classifiers import Classifier, ClassifierOutput, load_classifier
from saliency_core.errors import RegistryError
from saliency_core.explain_config import ExplainConfig
from saliency_core.files import TargetExistsError, atomic_write, clean_stale, staged_folder
from saliency_core.images.loading import LoadedImage, load_image
from saliency_core.images.pictures import overlay
from saliency_core.images.preprocessing import resize_mask, tensor01_to_pil
from saliency_core.infill.base import create_infiller, infiller_entry
from saliency_core.infill.composite import composite
from saliency_core.labels import resolve_labels
from saliency_core.methods.base import Method, ProgressFn, create_method, method_entry
from saliency_core.seeding import with_seed

#: The four views, by one name each: the key of ``Explanation.views`` (the picture), of ``predictions`` and
#: ``label_probabilities`` (what the classifier says about it: the overlay view shows the whole photo, so its
#: predictions are the unmasked image's) and of the written file (``overlay.png``).
VIEWS = ("overlay", "masked_in", "masked_out", "infilled")


@dataclass
class Prediction:
    index: int
    name: str
    probability: float


@dataclass
class Explanation:
    """The result for one image: masks at the original resolution, views and their predictions."""

    name: str
    image: Image.Image
    labels: list[int]
    masks: np.ndarray  # K x H x W float32 at the original resolution (K = labels, or 1)
    per_label: bool
    views: dict[str, Image.Image]
    predictions: dict[str, list[Prediction]]
    label_probabilities: dict[str, list[float]]  # per view: probability of each explained label
    working_input: torch.Tensor
    working_masks: torch.Tensor
    timings: dict[str, float]
    config: ExplainConfig
    notes: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    original_size: tuple[int, int] | None = None  # (width, height) of the file as stored, when it was downscaled
    shown: int | None = None  # the label whose mask the views show (the first explained label by default)

    def mask_for(self, label: int) -> np.ndarray:
        return self.masks[self.labels.index(label)] if self.per_label else self.masks[0]

    def summary(self) -> dict[str, Any]:
        """JSON-ready description (what ``result.json`` holds). ``seed`` is the seed the method ran with (what
        decided the mask: an explicit ``seed`` method option overrides the explanation's); ``seeds`` lists the
        seed of each component that declares one (``method``, ``infiller``)."""
        seeds = seeds_used(self.config)
        return {
            "image": self.name,
            "size": list(self.image.size),
            "original_size": list(self.original_size or self.image.size),
            "method": self.config.method,
            "seed": seeds.get("method", self.config.seed),
            "seeds": seeds,
            "options": self.config.to_dict(),
            "labels": [{"index": i, "name": n} for i, n in zip(self.labels, self._label_names)],
            "per_label_masks": self.per_label,
            "predictions": {v: [asdict(p) for p in ps] for v, ps in self.predictions.items()},
            "label_probabilities": self.label_probabilities,
            "mask_mean": float(self.masks.mean()),
            "timings_s": self.timings,
            "notes": self.notes,
            "info": self.info,
        }

    _label_names: list[str] = field(default_factory=list)
    # the three masked views at the classifier's resolution while their predictions wait (render(...,
    # predict_views=False)); None once classify_views has filled them in
    _pending_views: torch.Tensor | None = field(default=None, repr=False)

    @property
    def views_classified(self) -> bool:
        """Whether the predictions on the masked views are there (see :func:`classify_views`)."""
        return self._pending_views is None


def seeds_used(config: ExplainConfig) -> dict[str, int]:
    """The seed the method and the infiller ran with, for each that declares a seed option: its own ``seed``
    option when one was given (``-o seed=3``), else the explanation's ``seed``."""
    parts = (("method", method_entry, config.method, config.method_options),
             ("infiller", infiller_entry, config.infiller, config.infiller_options))
    out = {}
    for part, entry_of, name, options in parts:
        try:
            used = with_seed(entry_of(name), options, config.seed).get("seed")
        except RegistryError:  # a method passed in as an object, under a name no registry knows
            used = options.get("seed")
        if used is not None:
            out[part] = int(used)
    return out


def _top(probs: torch.Tensor, names: tuple[str, ...], k: int) -> list[Prediction]:
    v, i = probs.topk(min(k, probs.numel()))
    return [Prediction(int(j), names[int(j)], float(p)) for p, j in zip(v.tolist(), i.tolist())]


@dataclass
class MaskResult:
    """What the method gave for one image: everything an explanation's views depend on but the fill.

    Kept apart so that a change of the view's infiller (or of how the masks are drawn) re-renders the
    views without running the method again (:func:`render`)."""

    loaded: LoadedImage
    working_input: torch.Tensor  # 1 x 3 x h x w normalised, on the classifier's device
    labels: list[int]
    masks: torch.Tensor  # K x h x w in [0, 1] (K = labels, or 1 shared mask)
    per_label: bool
    info: dict[str, Any]
    timings: dict[str, float]
    probs: torch.Tensor | None = None  # the classifier's probabilities on the whole image (1-D)
    #: an area-aware method's extra areas and its masks at them (A x K x h x w), as its ``MethodResult`` gave them
    areas: tuple[float, ...] = ()
    area_masks: torch.Tensor | None = None

    def for_labels(self, spec: str) -> "MaskResult":
        """The same label-agnostic mask, for another choice of labels (only a per-label method must run again)."""
        if self.per_label or self.probs is None:
            raise ValueError("only a label-agnostic mask serves every choice of labels")
        return dataclasses.replace(self, labels=resolve_labels(spec, self.probs))


def _loaded(image: LoadedImage | Image.Image | str | Path) -> LoadedImage:
    if isinstance(image, LoadedImage):
        return image
    if isinstance(image, Image.Image):
        return LoadedImage(image.convert("RGB"), "image", image.size)
    return load_image(image)


def compute_masks(
    image: LoadedImage | Image.Image | str | Path,
    config: ExplainConfig | None = None,
    classifier: Classifier | None = None,
    method: Method | None = None,
    progress: ProgressFn | None = None,
    clean: ClassifierOutput | None = None,
) -> MaskResult:
    """Run the method on one image: its masks for the chosen labels (the costly part of an explanation).

    Depends on the image, the classifier, ``method``/``method_options``, ``labels`` and, for a method that
    declares a seed, ``seed``; not on the view's infiller (see :func:`mask_key_options`). ``clean``: the
    classifier's ``forward_features`` of this image when the caller kept it (see :func:`classify_clean`), so
    that a change of options does not classify the unmasked image again."""
    config = config or ExplainConfig()
    t0 = time.perf_counter()
    loaded = _loaded(image)
    classifier = classifier or load_classifier()
    method = method or create_method(config.method, **mask_key_options(config))
    x = working_input(loaded, classifier)
    t1 = time.perf_counter()
    if clean is None:
        clean = classify_clean(classifier, x)
    elif clean.logits.shape[0] != x.shape[0]:
        raise ValueError(f"clean holds {clean.logits.shape[0]} images' outputs, the input has {x.shape[0]}")
    probs = clean.logits.softmax(-1)[0]
    labels = resolve_labels(config.labels, probs)
    t2 = time.perf_counter()
    result = method(classifier, x, labels, clean, progress)
    t3 = time.perf_counter()
    masks = result.masks.detach().float().clamp(0, 1)
    if not torch.isfinite(masks).all():
        raise FloatingPointError(f"method '{config.method}' returned a mask with NaN or infinite values")
    area_masks = result.area_masks
    return MaskResult(loaded, x, labels, masks, bool(result.per_label), dict(result.info),
                      {"load_s": t1 - t0, "classify_s": t2 - t1, "method_s": t3 - t2}, probs.detach().cpu(),
                      areas=tuple(result.areas), area_masks=None if area_masks is None else
                      area_masks.detach().float().clamp(0, 1))


def working_input(loaded: LoadedImage, classifier: Classifier) -> torch.Tensor:
    """The image as the classifier reads it (1 x 3 x h x w, normalised, on its device)."""
    return classifier.preprocessing.pil_to_input(loaded.image).to(classifier.device)


def classify_clean(classifier: Classifier, x: torch.Tensor) -> ClassifierOutput:
    """The classifier's logits and hidden stages on the unmasked image (what every method starts from)."""
    with torch.no_grad():
        return classifier.forward_features(x)


def mask_key_options(config: ExplainConfig) -> dict[str, Any]:
    """The method's options as it runs them (with the explanation's seed where the method declares one):
    together with the image, classifier and labels, what decides the masks."""
    return with_seed(method_entry(config.method), config.method_options, config.seed)


def render(masks: MaskResult, config: ExplainConfig, classifier: Classifier, show: int | None = None,
           predict_views: bool = True) -> Explanation:
    """The four views of one label's mask (``show``, a class index among the explained labels; default the
    first) and the classifier's predictions on them (one forward of the three masked images; the whole image's
    come from the method's own forward): what the view's infiller and its options change.

    ``predict_views=False`` leaves that forward for :func:`classify_views`, so that a caller can show the
    pictures first and classify them while they are drawn (the dashboard does, on every toggle)."""
    t3 = time.perf_counter()
    loaded, x, labels = masks.loaded, masks.working_input, masks.labels
    k = labels.index(show) if (show is not None and masks.per_label and show in labels) else 0
    infiller = create_infiller(config.infiller, **with_seed(infiller_entry(config.infiller), config.infiller_options,
                                                            config.seed))
    pre = classifier.preprocessing
    m_work = masks.masks.to(x.device)
    first = m_work[k:k + 1].unsqueeze(1)  # 1 x 1 x h x w: the views show one label's mask
    with torch.no_grad():
        fill = infiller(x, 1.0 - first)
        masked = torch.cat([composite(x, first), composite(x, 1.0 - first), composite(x, 1.0 - first, fill)])
        if masks.probs is not None:  # the whole image was classified once already, for the method
            original = masks.probs.to(x.device, torch.float32)
        else:
            original = classifier(x).softmax(-1).float()[0]
    t4 = time.perf_counter()

    w, h = loaded.image.size
    full_masks = resize_mask(masks.masks.cpu(), h, w).numpy().astype(np.float32)
    orig01 = torch.from_numpy(np.asarray(loaded.image, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
    m = torch.from_numpy(full_masks[k:k + 1])[None]
    gray = torch.tensor(pre.mean).view(1, 3, 1, 1)
    fill01 = pre.denormalize(torch.nn.functional.interpolate(fill.cpu(), size=(h, w), mode="bilinear",
                                                             align_corners=False))
    views = {  # keyed by VIEWS, as the predictions are
        "overlay": overlay(loaded.image, full_masks[k], config.overlay_opacity, config.colormap),
        "masked_in": tensor01_to_pil(composite(orig01, m, gray)),
        "masked_out": tensor01_to_pil(composite(orig01, 1 - m, gray)),
        "infilled": tensor01_to_pil(composite(orig01, 1 - m, fill01)),
    }
    names = classifier.class_names
    t5 = time.perf_counter()
    timings = {**masks.timings, "views_classify_s": t4 - t3, "render_s": t5 - t4}
    expl = Explanation(
        name=loaded.name, image=loaded.image, labels=labels, masks=full_masks, per_label=masks.per_label,
        views=views, predictions={"overlay": _top(original, names, config.top_k_predictions)},
        label_probabilities={"overlay": [float(original[j]) for j in labels]}, working_input=x.cpu(),
        working_masks=masks.masks.cpu(), timings=_rounded(timings), config=config,
        notes=list(loaded.notes), info=masks.info, _label_names=[names[i] for i in labels],
        original_size=tuple(loaded.original_size), shown=labels[k], _pending_views=masked,
    )
    return classify_views(expl, classifier) if predict_views else expl


def classify_views(expl: Explanation, classifier: Classifier) -> Explanation:
    """Fill in the classifier's predictions on the masked-in, masked-out and infilled views of an explanation
    rendered with ``predict_views=False`` (one forward of the three; nothing to do when they are there).
    ``classifier`` must be the one the explanation was rendered with. Returns ``expl``, completed in place."""
    pending = expl._pending_views
    if pending is None:
        return expl
    t0 = time.perf_counter()
    with torch.no_grad():
        probs = classifier(pending.to(classifier.device)).softmax(-1).float()
    names = classifier.class_names
    k = expl.config.top_k_predictions
    predictions = {"overlay": expl.predictions["overlay"]}
    label_probs = {"overlay": expl.label_probabilities["overlay"]}
    for i, view in enumerate(VIEWS[1:]):
        predictions[view] = _top(probs[i], names, k)
        label_probs[view] = [float(probs[i, j]) for j in expl.labels]
    timings = dict(expl.timings)
    timings["views_classify_s"] = timings.get("views_classify_s", 0.0) + time.perf_counter() - t0
    expl.predictions, expl.label_probabilities = predictions, label_probs
    expl.timings = _rounded({k_: v for k_, v in timings.items() if k_ != "total_s"})
    expl._pending_views = None
    return expl


def _rounded(timings: dict[str, float]) -> dict[str, float]:
    """The timings with their total, rounded for display and result.json."""
    out = {**timings, "total_s": sum(timings.values())}
    return {k: round(v, 4) for k, v in out.items()}


def explain(
    image: LoadedImage | Image.Image | str | Path,
    config: ExplainConfig | None = None,
    classifier: Classifier | None = None,
    method: Method | None = None,
    progress: ProgressFn | None = None,
) -> Explanation:
    """Explain one image: the method's masks (:func:`compute_masks`), then the views and their predictions
    (:func:`render`). ``classifier`` defaults to the embedded EfficientNet-Lite0."""
    config = config or ExplainConfig()
    classifier = classifier or load_classifier()
    return render(compute_masks(image, config, classifier, method, progress), config, classifier)


class OutputExistsError(ValueError):
    """The output folder already holds results and overwriting was not asked for."""


def _exists_message(folder: Path) -> str:
    return f"{folder} already exists; choose another output folder or overwrite it (--overwrite)"


def check_output(out_dir: str | Path, overwrite: bool = False) -> None:
    """Refuse an existing output folder unless ``overwrite``, before any work is done (removing what killed
    writers of it left beside it, as a write would). The claim in :func:`write_explanation` checks again, atomically."""
    folder = Path(out_dir)
    if os.path.lexists(folder) and not overwrite:
        clean_stale(folder)
        raise OutputExistsError(_exists_message(folder))


def _save(path: Path, shown: Path, write: Callable[[Path], None]) -> str:
    """Write one file through ``write`` (:func:`saliency_core.files.atomic_write`); an error is one line naming
    ``shown``, the file as the caller will find it (not the staging path)."""
    atomic_write(path, write, shown)
    return path.name


def _full_size_masks(expl: Explanation) -> np.ndarray:
    """The masks at the resolution of the file as stored (an image over the size limit was downscaled to load)."""
    w, h = expl.original_size or expl.image.size
    if (w, h) == expl.image.size:
        return expl.masks.astype(np.float32)
    return resize_mask(torch.from_numpy(expl.masks), h, w).numpy().astype(np.float32)


def write_explanation(expl: Explanation, out_dir: str | Path, overwrite: bool = False) -> Path:
    """Write ``mask.npy`` (+ ``mask_<label>.npy`` per label), the view PNGs and ``result.json`` into ``out_dir``.

    The files are written into a hidden folder beside it, which then claims ``out_dir`` in one rename
    (:func:`saliency_core.files.staged_folder`), so a kill or a full disk never leaves a half-written or mixed
    result, and of two writers of the same folder at once the slower is refused (or, with ``overwrite``, one
    wins whole). An existing ``out_dir`` is refused unless ``overwrite`` (it is then replaced whole: no stale
    file of an earlier run stays). ``result.json`` lists the files written; the masks have the size of the
    image as stored. What killed writers of ``out_dir`` left beside it is removed first.
    """
    folder = Path(out_dir)
    check_output(folder, overwrite)
    try:
        with staged_folder(folder, overwrite) as staging:
            _write_files(expl, staging, folder)
    except TargetExistsError:  # another writer's result got there first
        raise OutputExistsError(_exists_message(folder)) from None
    return folder


def _write_files(expl: Explanation, staging: Path, folder: Path) -> None:
    """The masks, the views and ``result.json`` (listing them) into ``staging``; errors name them in ``folder``."""
    def save(name: str, write: Callable[[Path], None]) -> str:
        return _save(staging / name, folder / name, write)

    masks = _full_size_masks(expl)
    written = [save("mask.npy", lambda p: _npy(p, masks[0]))]
    if expl.per_label:
        for label, mask in zip(expl.labels, masks):
            written.append(save(f"mask_{label}.npy", lambda p, m=mask: _npy(p, m)))
    for name, img in expl.views.items():
        written.append(save(f"{name}.png", lambda p, im=img: im.save(p, format="PNG")))
    summary = {**expl.summary(), "files": sorted([*written, "result.json"])}
    save("result.json", lambda p: p.write_text(json.dumps(summary, indent=2) + "\n"))


def _npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as f:  # a file object: np.save would add ".npy" to a temporary name
        np.save(f, array.astype(np.float32))


@torch.no_grad()
def predict(image: LoadedImage | Image.Image, classifier: Classifier, k: int = 5) -> list[Prediction]:
    """The classifier's top-``k`` labels on one unmasked image (what the dashboard shows first)."""
    pil = image.image if isinstance(image, LoadedImage) else image.convert("RGB")
    x = classifier.preprocessing.pil_to_input(pil).to(classifier.device)
    return _top(classifier(x).softmax(-1)[0], classifier.class_names, k)
