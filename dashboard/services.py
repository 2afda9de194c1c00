"""What the pages compute, as thin wrappers around ``saliency_core`` calls (no widgets, no Streamlit).

Pages and the benchmark call these; ``resources`` keeps one instance of each heavy object per
process. Results are cached in a :class:`ResultCache` shared by all sessions, keyed by the
classifier's identity, the image's hash and the JSON of the core options, and are never mutated.
"""
from __future__ import annotations

import hashlib
import io
import json
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image

from saliency_core.classifiers import Classifier
from saliency_core.explain import ExplainConfig, Explanation, explain
from saliency_core.images.loading import ImageLoadError, LoadedImage, load_image
from saliency_core.methods.base import Method, MethodSpec, create_method, method_entries

from . import warmup  # noqa: F401 - lazy imports done once, before sessions race for them
from .options import OptionSpec, method_options, takes_option

ProgressFn = Callable[..., None]

#: Upload types offered by the file picker (all decoded by saliency_core.images.loading).
IMAGE_TYPES = ("jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff", "gif")

#: scikit-image's bundled photos offered as a gallery: name -> (caption, loader name).
GALLERY: dict[str, tuple[str, str]] = {
    "chelsea": ("Chelsea the cat", "chelsea"),
    "coffee": ("a cup of coffee", "coffee"),
    "astronaut": ("astronaut Eileen Collins", "astronaut"),
    "rocket": ("a rocket on its launch pad", "rocket"),
    "camera": ("a cameraman (grayscale)", "camera"),
    "hubble": ("Hubble deep field", "hubble_deep_field"),
    "immunohistochemistry": ("stained tissue (microscopy)", "immunohistochemistry"),
    "retina": ("a human retina", "retina"),
}

#: Value of ``infiller_options["pool"]`` meaning "the core's reference photos" (filled in before the call).
GALLERY_POOL = "reference-photos"


# --------------------------------------------------------------------------- caching


class ResultCache:
    """A small thread-safe LRU of finished results, shared by every session of the process."""

    def __init__(self, max_entries: int = 48) -> None:
        self.max_entries = max_entries
        self._data: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> Any | None:
        with self._lock:
            if key not in self._data:
                return None
            self._data.move_to_end(key)
            return self._data[key]

    def put(self, key: str, value: Any) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.max_entries:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        return len(self._data)


def digest(data: bytes) -> str:
    """Short content hash of an image or checkpoint file."""
    return hashlib.sha256(data).hexdigest()[:20]


def cache_key(*parts: Any) -> str:
    """A stable key from JSON-able parts (paths and other objects are written as text)."""
    return json.dumps(parts, sort_keys=True, default=str)


# --------------------------------------------------------------------------- images


@dataclass(frozen=True)
class ImageInput:
    """An image the user gave: its bytes, display name and content hash."""

    data: bytes
    name: str
    digest: str

    @classmethod
    def from_bytes(cls, data: bytes, name: str) -> "ImageInput":
        return cls(data=data, name=name, digest=digest(data))


def gallery_input(name: str) -> ImageInput:
    """A gallery photo as PNG bytes (the same path as an upload: decode, hash, cache)."""
    if name not in GALLERY:
        raise ImageLoadError(f"unknown sample photo '{name}' (choose from {', '.join(GALLERY)})")
    from skimage import data as skdata

    arr = getattr(skdata, GALLERY[name][1])()
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return ImageInput.from_bytes(buf.getvalue(), f"{name}.png")


def load_input(image: ImageInput, max_upload_mb: int, max_pixels: int, max_side: int) -> LoadedImage:
    """Decode an upload with the dashboard's limits; bad files raise ImageLoadError (one line)."""
    if len(image.data) > max_upload_mb * 1024 * 1024:
        raise ImageLoadError(f"{image.name}: the file is {len(image.data) / 2 ** 20:.1f} MB; "
                             f"the limit is {max_upload_mb} MB")
    return load_image(image.data, name=image.name, max_pixels=max_pixels, max_side=max_side)


def reference_pool(classifier: Classifier, loaded: LoadedImage) -> torch.Tensor:
    """The reference images of the ``random-image`` infiller (Gupta et al. fill with other photos):
    the core's default pool of scikit-image photos, without the photo being explained."""
    from saliency_core.infill.reference_pool import default_pool

    pre = classifier.preprocessing
    x01 = pre.pil_to_tensor01(loaded.image)
    return default_pool(pre).excluding(x01).images


# --------------------------------------------------------------------------- methods


GROUPS = {
    "saliency_core.methods.trained": "Trained masker",
    "saliency_core.methods.optimize.engine": "Per-image optimisation",
    "saliency_core.methods.gradients": "Baseline",
}


@dataclass(frozen=True)
class MethodEntry:
    """A registered method as the dashboard shows it: group, options and whether it runs on request."""

    name: str
    summary: str
    per_label: bool
    group: str
    options: tuple[OptionSpec, ...]
    on_request: bool  # slow per-image optimisation: runs when the user presses Run, can be cancelled
    infiller_options: bool = False  # takes ``infiller_options`` (the options of its own infiller)
    checkpoint_kinds: tuple[str, ...] | None = None  # masker checkpoint kinds it accepts (None: any)

    @property
    def title(self) -> str:
        return f"{self.name} ({self.group.lower()})"


def _entry(spec: MethodSpec) -> MethodEntry:
    module = getattr(spec.factory, "__module__", "")
    group = GROUPS.get(module, "Other")
    return MethodEntry(name=spec.name, summary=spec.summary, per_label=spec.per_label, group=group,
                       options=method_options(spec.factory), on_request=group == "Per-image optimisation",
                       infiller_options=takes_option(spec.factory, "infiller_options"),
                       checkpoint_kinds=getattr(spec.factory, "checkpoint_kinds", None))


def method_catalog() -> dict[str, MethodEntry]:
    """Every method registered right now (found at run time), masker first, then optimisation, baselines."""
    order = {g: i for i, g in enumerate(GROUPS.values())}
    entries = [_entry(s) for s in method_entries().values()
               if getattr(s.factory, "is_available", lambda: True)()]  # no dead controls
    entries.sort(key=lambda e: (order.get(e.group, len(order)), e.name))
    return {e.name: e for e in entries}


def build_method(name: str, options: dict[str, Any]) -> Method:
    """A method object (its own caches, e.g. a loaded checkpoint, live inside it)."""
    return create_method(name, **options)


def infiller_factory(name: str) -> Callable | None:
    """The registered factory of an infiller (its signature lists the infiller's options)."""
    from saliency_core.infill import base as infill

    return getattr(infill, "_REGISTRY", {}).get(name)


# --------------------------------------------------------------------------- checkpoints


@dataclass(frozen=True)
class CheckpointInfo:
    path: Path
    label: str
    description: str
    kind: str = "phang"  # "phang" (one mask per image) or "label" (one mask per label); "?" when unreadable


def _describe(path: Path) -> str:
    sidecar = path.with_suffix(".json")
    try:
        meta = json.loads(sidecar.read_text())
    except (OSError, ValueError):
        return ""
    kind = meta.get("kind", "phang")
    clf = meta.get("classifier_name", "?")
    metrics = meta.get("metrics") or {}
    final = metrics.get("final") or {}
    names = {"val_in_acc": "masked-in acc", "val_out_acc": "masked-out acc", "val_mask_mean": "mean mask"}
    shown = ", ".join(f"{label} {final[k]:.2f}" for k, label in names.items()
                      if isinstance(final.get(k), (int, float)))
    mode = f" ({metrics['mode'].upper()})" if isinstance(metrics.get("mode"), str) else ""
    return f"{kind} masker{mode} for {clf}" + (f"; held-out classes: {shown}" if shown else "")


def _kind(path: Path) -> str:
    """The checkpoint's kind from its safetensors header (the header only: cheap), "?" when unreadable."""
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            return json.loads((f.metadata() or {}).get("kind", '"phang"'))
    except Exception:  # noqa: BLE001 - an unreadable file is reported when it is loaded, with its reason
        return "?"


def find_checkpoints(extra_dirs: list[Path] | None = None) -> list[CheckpointInfo]:
    """Masker checkpoints (``*.safetensors``) in the repository's checkpoints/ and ``extra_dirs``."""
    seen: dict[Path, CheckpointInfo] = {}
    for folder in [checkpoints_dir(), *(extra_dirs or [])]:
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.safetensors")):
            path = path.resolve()
            if path not in seen:
                seen[path] = CheckpointInfo(path, path.stem, _describe(path), _kind(path))
    # the shipped maskers first: each is the default of its method ('masker', 'label-masker')
    shipped = ("fix_lite0.safetensors", "label_lite0.safetensors")
    rank = {name: i for i, name in enumerate(shipped)}
    return sorted(seen.values(), key=lambda c: (rank.get(c.path.name, len(shipped)), c.label))


def store_uploaded_checkpoint(data: bytes, name: str, max_mb: int) -> Path:
    """Save an uploaded checkpoint under a content-addressed temporary name and return its path."""
    if len(data) > max_mb * 1024 * 1024:
        from saliency_core.maskers.checkpoint import CheckpointError

        raise CheckpointError(f"{name}: the file is {len(data) / 2 ** 20:.1f} MB; the limit is {max_mb} MB")
    folder = Path(tempfile.gettempdir()) / "saliency_dashboard_checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{digest(data)}.safetensors"
    if not path.exists():
        from saliency_core.maskers.checkpoint import atomic_write_bytes

        atomic_write_bytes(path, data)
    return path


# --------------------------------------------------------------------------- explanations


def explanation_key(classifier: Classifier, image: ImageInput, config: ExplainConfig) -> str:
    return cache_key("explain", classifier.identity, image.digest, config.to_dict())


def resolve_config(config: ExplainConfig, classifier: Classifier, loaded: LoadedImage) -> ExplainConfig:
    """Replace dashboard placeholders (``pool="reference-photos"``) by the objects the core expects."""
    if config.infiller_options.get("pool") == GALLERY_POOL:
        opts = {**config.infiller_options, "pool": reference_pool(classifier, loaded)}
        return replace(config, infiller_options=opts)
    return config


def run_explanation(
    image: ImageInput,
    loaded: LoadedImage,
    config: ExplainConfig,
    classifier: Classifier,
    method: Method,
    cache: ResultCache,
    progress: ProgressFn | None = None,
) -> Explanation:
    """``saliency_core.explain`` with the result cached by image hash + options."""
    key = explanation_key(classifier, image, config)
    hit = cache.get(key)
    if hit is not None:
        return hit
    expl = explain(loaded, resolve_config(config, classifier, loaded), classifier=classifier, method=method,
                   progress=progress)
    cache.put(key, expl)
    return expl


def cached_explanation(image: ImageInput, config: ExplainConfig, classifier: Classifier,
                       cache: ResultCache) -> Explanation | None:
    """The cached explanation for these inputs, without computing anything."""
    return cache.get(explanation_key(classifier, image, config))


def top_predictions(loaded: LoadedImage, image: ImageInput, classifier: Classifier, cache: ResultCache,
                    k: int = 5) -> list:
    """The classifier's top-k labels on the unmasked image (``saliency_core.explain.predict``)."""
    from saliency_core.explain import predict

    key = cache_key("predict", classifier.identity, image.digest, k)
    hit = cache.get(key)
    if hit is None:
        hit = predict(loaded, classifier, k=k)
        cache.put(key, hit)
    return hit


# --------------------------------------------------------------------------- per-label curves


def curves_available() -> bool:
    """Whether the core has per-label scores (``saliency_core.metrics.completeness.label_scores``)."""
    try:
        from saliency_core.metrics.completeness import label_scores  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass(frozen=True)
class CurveRequest:
    """The named options of ``label_scores`` that the dashboard exposes."""

    steps: int = 16
    top_k: int = 5
    eps1: float = 0.01
    eps2: float = 0.001
    restrict: bool = False  # softmax over the curve labels only (restrict_to), as Gupta et al.


def curve_labels(expl: Explanation, predicted: list[int], top_k: int) -> list[int]:
    """Labels whose curves are drawn: a per-label method's explained labels (each has its own mask);
    for one shared mask, the explained labels then the top predictions, ``top_k`` in all."""
    if expl.per_label:
        return list(expl.labels)
    labels = list(expl.labels)
    labels += [label for label in predicted if label not in labels]
    return labels[:max(1, top_k)]


def run_label_scores(expl: Explanation, labels: list[int], request: CurveRequest, classifier: Classifier,
                     cache: ResultCache, expl_key: str, progress: ProgressFn | None = None):
    """Insertion curves, completeness and soundness per label (``label_scores``), cached."""
    from saliency_core.metrics.completeness import label_scores

    key = cache_key("scores", expl_key, labels, request.__dict__)
    hit = cache.get(key)
    if hit is not None:
        return hit
    masks = expl.working_masks if expl.per_label else expl.working_masks[:1]
    if expl.per_label:
        masks = masks[[expl.labels.index(v) for v in labels]]
    scores = label_scores(classifier, expl.working_input.to(classifier.device), masks.to(classifier.device),
                          labels, steps=request.steps, eps1=request.eps1, eps2=request.eps2,
                          restrict_to=labels if request.restrict else None, progress=progress)
    cache.put(key, scores)
    return scores


# --------------------------------------------------------------------------- downloads


def mask_png(mask: np.ndarray) -> bytes:
    from saliency_core.images.pictures import mask_image

    buf = io.BytesIO()
    mask_image(mask).save(buf, "PNG")
    return buf.getvalue()


def mask_npy(mask: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, mask.astype(np.float32))
    return buf.getvalue()


def image_png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def display_copy(image: Image.Image, max_side: int = 640) -> Image.Image:
    """A smaller copy for the page (the views keep their full resolution for downloads)."""
    if max(image.size) <= max_side:
        return image
    out = image.copy()
    out.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    return out
