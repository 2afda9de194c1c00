"""What the pages compute, as thin wrappers around ``saliency_core`` calls (no widgets, no Streamlit).

Pages and the benchmark call these; ``resources`` keeps one instance of each heavy object per
process. Results are cached in a :class:`ResultCache` shared by all sessions, keyed by the
classifier's identity, the image's hash and the JSON of the core options, and are never mutated.
"""
from __future__ import annotations

import atexit
import functools
import hashlib
import io
import json
import re
import shutil
import tempfile
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image

import saliency_core
from saliency_core import (
    CheckpointError,
    CheckpointInfo,
    Classifier,
    Entry,
    ExplainConfig,
    Explanation,
    ImageLoadError,
    LoadedImage,
    Method,
    Option,
    atomic_write_bytes,
    checkpoint_fixed_options,
    create_method,
    infiller_entry,
    list_infillers,
    load_image,
    method_entries,
)

from . import warmup  # noqa: F401 - lazy imports done once, before sessions race for them

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


#: The name every image has in the shared :class:`ResultCache`: the cache is keyed by content and shared by all
#: sessions, so a file name (one visitor's choice, possibly private) never goes into it. A session puts its own
#: name back on what it takes out (:func:`for_session`).
CACHED_NAME = "image"


def anonymous(loaded: LoadedImage) -> LoadedImage:
    """``loaded`` without its file name, fit for the shared cache (same picture, notes and sizes)."""
    return loaded if loaded.name == CACHED_NAME else replace(loaded, name=CACHED_NAME)


def for_session(loaded: LoadedImage, image: ImageInput) -> LoadedImage:
    """A cached image under the name this session gave it."""
    return replace(loaded, name=image.name)


def load_input(image: ImageInput, max_upload_mb: int, max_pixels: int, max_side: int) -> LoadedImage:
    """Decode an upload with the dashboard's limits; bad files raise ImageLoadError (one line)."""
    if len(image.data) > max_upload_mb * 1024 * 1024:
        raise ImageLoadError(f"{image.name}: the file is {len(image.data) / 2 ** 20:.1f} MB; "
                             f"the limit is {max_upload_mb} MB")
    return load_image(image.data, name=image.name, max_pixels=max_pixels, max_side=max_side)


def reference_pool(classifier: Classifier, loaded: LoadedImage) -> torch.Tensor:
    """The reference images of the ``random-image`` infiller (Gupta et al. fill with other photos):
    the core's default pool of scikit-image photos, without the photo being explained."""
    from saliency_core import default_pool

    pre = classifier.preprocessing
    x01 = pre.pil_to_tensor01(loaded.image)
    return default_pool(pre).excluding(x01).images


# --------------------------------------------------------------------------- methods


@dataclass(frozen=True)
class MethodEntry:
    """A registered method as the dashboard shows it: everything comes from what the method declares."""

    name: str
    summary: str
    per_label: bool
    group: str
    options: tuple[Option, ...]  # the declared options a widget can show
    on_request: bool  # slow: runs when the user presses Run, can be cancelled
    in_comparison: bool = False  # compared by default on the Compare page
    paper: str = ""
    own_infiller: bool = False  # has an infiller option of its own (its options go into ``infiller_options``)
    checkpoint_kinds: tuple[str, ...] | None = None  # masker checkpoint kinds it reads (None: any)
    takes_checkpoint: bool = False

    @property
    def title(self) -> str:
        return f"{self.name} ({self.group.lower()})"

    def fits(self, checkpoint: CheckpointInfo) -> bool:
        """Whether this method can read the checkpoint (unreadable ones are offered: loading says why)."""
        return self.checkpoint_kinds is None or checkpoint.kind in self.checkpoint_kinds or checkpoint.kind == "?"


def _entry(entry: Entry) -> MethodEntry:
    options = tuple(o for o in entry.options() if o.shown)
    ckpt = next((o for o in options if o.kind == "checkpoint"), None)
    return MethodEntry(name=entry.name, summary=entry.summary, per_label=bool(entry.attrs.get("per_label")),
                       group=entry.attrs.get("group", "Other"), options=options,
                       on_request=bool(entry.attrs.get("on_request")),
                       in_comparison=bool(entry.attrs.get("in_comparison")), paper=entry.attrs.get("paper", ""),
                       own_infiller=any(o.kind == "infiller" for o in options),
                       checkpoint_kinds=ckpt.checkpoint_kinds if ckpt else None, takes_checkpoint=ckpt is not None)


def method_catalog() -> dict[str, MethodEntry]:
    """The methods that can run here, in the core's display order (by group)."""
    return {name: _entry(e) for name, e in method_entries(available_only=True).items()}


def build_method(name: str, options: dict[str, Any]) -> Method:
    """A method object (its own caches, e.g. a loaded checkpoint, live inside it)."""
    return create_method(name, **options)


def fixed_options(checkpoint: str | None) -> dict[str, Any]:
    """The options the chosen checkpoint was trained at one value only, with that value (the core reads its header):
    not drawn, since no other value would be accepted."""
    return checkpoint_fixed_options(checkpoint) if checkpoint else {}


def checkpoints_for(entry: MethodEntry, checkpoints: list[CheckpointInfo],
                    catalog: dict[str, MethodEntry]) -> list[CheckpointInfo]:
    """The checkpoints a method should offer: those it can read, less the kinds that another method
    declares as its own (a per-label checkpoint belongs to the per-label masker's menu)."""
    claimed = {k for e in catalog.values() if e is not entry and e.checkpoint_kinds for k in e.checkpoint_kinds}
    if entry.checkpoint_kinds is None:
        return [c for c in checkpoints if c.kind not in claimed]
    return [c for c in checkpoints if entry.fits(c)]


def comparison_choices(catalog: dict[str, MethodEntry], checkpoints: list[CheckpointInfo]
                       ) -> tuple[dict[str, tuple[str, dict[str, Any]]], list[str]]:
    """What the Compare page offers: one choice per method, or per checkpoint for a method that reads one,
    as ``{label: (method, options)}``, and the choices compared by default (what the methods declare)."""
    choices: dict[str, tuple[str, dict[str, Any]]] = {}
    preferred: list[str] = []
    for entry in catalog.values():
        if entry.takes_checkpoint:
            own = checkpoints_for(entry, checkpoints, catalog)
            for i, ckpt in enumerate(own):
                label = f"{entry.name}: {ckpt.label}" if len(own) > 1 or entry.checkpoint_kinds is None else entry.name
                choices[label] = (entry.name, {"checkpoint": str(ckpt.path)})
                if entry.in_comparison and i < 2:
                    preferred.append(label)
        else:
            choices[entry.name] = (entry.name, {})
            if entry.in_comparison:
                preferred.append(entry.name)
    return choices, preferred


def infiller_catalog() -> dict[str, Entry]:
    """Registered infillers, each once (an alias such as ``none`` for ``gray`` is not listed)."""
    return {name: infiller_entry(name) for name in list_infillers(include_aliases=False)}


def infiller_options(name: str) -> tuple[Option, ...]:
    """The options of an infiller that a widget can show (e.g. blur ``sigma``)."""
    return tuple(o for o in infiller_entry(name).options() if o.shown)


def uses_reference_pool(name: str) -> bool:
    return bool(infiller_entry(name).attrs.get("reference_pool"))


# --------------------------------------------------------------------------- checkpoints


def find_checkpoints(extra_dirs: list[Path] | None = None) -> list[CheckpointInfo]:
    """Masker checkpoints in the shipped folder and ``extra_dirs`` (the core's catalogue)."""
    return saliency_core.find_checkpoints(extra_dirs)


#: Uploaded checkpoints live here, one sub-folder per browser session, removed when the session ends (its
#: state is collected) and the whole folder when the server stops.
UPLOAD_ROOT = Path(tempfile.mkdtemp(prefix="saliency-dashboard-uploads-"))
atexit.register(shutil.rmtree, UPLOAD_ROOT, True)
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


_SESSION_PREFIX = "session-"


class SessionUploads:
    """A browser session's upload folder, named after its session id (``session-<id>-<random>``) so that
    :func:`reap_session_uploads` can tell whose it is; it is deleted with the object too."""

    def __init__(self, session_id: str = "") -> None:
        tag = _SAFE_NAME.sub("_", session_id)
        self.folder = Path(tempfile.mkdtemp(dir=UPLOAD_ROOT, prefix=f"{_SESSION_PREFIX}{tag}-" if tag
                                            else _SESSION_PREFIX))
        self._finalizer = weakref.finalize(self, shutil.rmtree, str(self.folder), True)

    def remove(self) -> None:
        self._finalizer()


def session_of(folder: Path) -> str | None:
    """The session id a :class:`SessionUploads` folder was named after (None: not one of those)."""
    name = folder.name
    if not name.startswith(_SESSION_PREFIX) or name.count("-") < 2:
        return None
    return name[len(_SESSION_PREFIX):].rsplit("-", 1)[0] or None


def reap_session_uploads(root: Path, is_active: Callable[[str], bool], gone_since: dict[str, float],
                         now: float, grace_s: float) -> list[Path]:
    """Delete the upload folders of sessions that have been gone (closed or disconnected) for ``grace_s``.

    Streamlit keeps a closed browser's session for a possible reconnect and drops it only when another page
    loads, so its ``session_state`` (and the finaliser of its folder) could outlive the visitor by ten minutes
    and more. ``gone_since`` (kept by the caller between calls) remembers when each session was first seen
    gone; a session back within the grace keeps its folder. Returns the folders deleted."""
    removed = []
    for folder in sorted(root.glob(f"{_SESSION_PREFIX}*")):
        sid = session_of(folder)
        if sid is None:
            continue
        if is_active(sid):
            gone_since.pop(sid, None)
            continue
        first = gone_since.setdefault(sid, now)
        if now - first >= grace_s:
            shutil.rmtree(folder, ignore_errors=True)
            gone_since.pop(sid, None)
            removed.append(folder)
    return removed


def store_uploaded_checkpoint(data: bytes, name: str, max_mb: int, folder: Path | None = None) -> Path:
    """Save an uploaded checkpoint as ``<folder>/<content hash>/<its own name>`` and return the path, so that
    messages about it show the name the user knows (:func:`shown_path` hides the folders)."""
    if len(data) > max_mb * 1024 * 1024:
        raise CheckpointError(f"{name}: the file is {len(data) / 2 ** 20:.1f} MB; the limit is {max_mb} MB")
    safe = _SAFE_NAME.sub("_", Path(name).name).strip("._") or "checkpoint"
    if not safe.endswith(".safetensors"):
        safe += ".safetensors"
    path = Path(folder or UPLOAD_ROOT) / digest(data) / safe
    if not path.exists():
        atomic_write_bytes(path, data)
    return path


def shown_path(text: str) -> str:
    """A message with the upload folders taken out of any path in it (users see their file's own name)."""
    return re.sub(re.escape(str(UPLOAD_ROOT)) + r"/[^/'\" ]+/[0-9a-f]+/", "", text)


# --------------------------------------------------------------------------- explanations


def explanation_key(classifier: Classifier, image: ImageInput, config: ExplainConfig, show: int | None = None) -> str:
    return cache_key("explain", classifier.identity, image.digest, config.to_dict(), show)


def masks_key(classifier: Classifier, image: ImageInput, config: ExplainConfig, labels: bool = True) -> str:
    """What the masks depend on (not the view's infiller): the key of the method's work, and of the curves.
    ``labels=False``: the key under which a label-agnostic mask serves every choice of labels."""
    return cache_key("masks", classifier.identity, image.digest, config.method,
                     saliency_core.mask_key_options(config), config.labels if labels else None)


def cached_masks(image: ImageInput, config: ExplainConfig, classifier: Classifier,
                 cache: ResultCache) -> saliency_core.MaskResult | None:
    """The method's masks for these inputs if they are at hand: for these labels, or a label-agnostic mask
    made for other labels (the same mask serves every label)."""
    hit = cache.get(masks_key(classifier, image, config))
    if hit is None:
        agnostic = cache.get(masks_key(classifier, image, config, labels=False))
        if agnostic is not None:
            hit = agnostic.for_labels(config.labels)
    return hit


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
    show: int | None = None,
    predict_views: bool = True,
) -> Explanation:
    """The explanation, cached by image hash + options. The method's masks are cached on their own key, so a
    change that only affects the views (the view's infiller and its options, the label shown) re-renders
    without running the method again, and a label-agnostic mask is not recomputed for another label choice.
    ``predict_views=False``: the masked views' predictions are left for ``saliency_core.classify_views`` (the
    Explain page sends the pictures first and classifies them while the browser draws them)."""
    key = explanation_key(classifier, image, config, show)
    hit = cache.get(key)
    if hit is not None:
        return hit
    loaded = anonymous(loaded)  # masks and explanation go into the shared cache: no session's file name
    masks = cached_masks(image, config, classifier, cache)
    if masks is None:
        masks = saliency_core.compute_masks(loaded, config, classifier=classifier, method=method, progress=progress,
                                            clean=clean_output(image, loaded, classifier, cache))
        if not masks.per_label:
            cache.put(masks_key(classifier, image, config, labels=False), masks)
    cache.put(masks_key(classifier, image, config), masks)
    expl = saliency_core.render(masks, resolve_config(config, classifier, loaded), classifier, show=show,
                                predict_views=predict_views)
    cache.put(key, expl)
    return expl


def clean_output(image: ImageInput, loaded: LoadedImage, classifier: Classifier, cache: ResultCache):
    """The classifier's output on the unmasked image, kept per image: a toggle does not classify it again."""
    key = cache_key("clean", classifier.identity, image.digest)
    hit = cache.get(key)
    if hit is None:
        hit = saliency_core.classify_clean(classifier, saliency_core.working_input(loaded, classifier))
        cache.put(key, hit)
    return hit


def cached_explanation(image: ImageInput, config: ExplainConfig, classifier: Classifier,
                       cache: ResultCache, show: int | None = None) -> Explanation | None:
    """The cached explanation for these inputs, without computing anything."""
    return cache.get(explanation_key(classifier, image, config, show))


def has_masks(image: ImageInput, config: ExplainConfig, classifier: Classifier, cache: ResultCache) -> bool:
    """Whether the method's masks for these inputs are at hand (then views need no Run, only a render)."""
    return cached_masks(image, config, classifier, cache) is not None


def top_predictions(loaded: LoadedImage, image: ImageInput, classifier: Classifier, cache: ResultCache,
                    k: int = 5) -> list:
    """The classifier's top-k labels on the unmasked image (``saliency_core.explanation.predict``)."""
    from saliency_core import predict

    key = cache_key("predict", classifier.identity, image.digest, k)
    hit = cache.get(key)
    if hit is None:
        hit = predict(loaded, classifier, k=k)
        cache.put(key, hit)
    return hit


# --------------------------------------------------------------------------- estimates


def seconds_per_pass(classifier: Classifier, loaded: LoadedImage, cache: ResultCache) -> float:
    """Seconds of one classifier image pass at this image's working size, measured once (a batch of 8)."""
    x = classifier.preprocessing.pil_to_input(loaded.image).to(classifier.device)
    key = cache_key("pass-time", classifier.identity, tuple(x.shape))
    hit = cache.get(key)
    if hit is None:
        import time

        batch = x.repeat(8, 1, 1, 1)
        with torch.no_grad():
            classifier(batch[:1])  # warm-up
            t = time.perf_counter()
            classifier(batch)
        hit = (time.perf_counter() - t) / 8
        cache.put(key, hit)
    return hit


def estimate_seconds(name: str, options: dict[str, Any], n_labels: int, classifier: Classifier,
                     loaded: LoadedImage, cache: ResultCache) -> float | None:
    """About how long a method takes here: the image passes it declares times the measured time of one pass."""
    try:
        passes = saliency_core.estimated_passes(name, n_labels, **options)
    except ValueError:
        return None
    return None if passes is None else passes * seconds_per_pass(classifier, loaded, cache)


def method_options(config: ExplainConfig) -> dict[str, Any]:
    """The options the method runs with (the explanation's seed included where the method declares one)."""
    return saliency_core.mask_key_options(config)


def label_count(spec: str) -> int:
    """How many labels a labels choice explains (``top5`` -> 5, ``3,7`` -> 2)."""
    spec = str(spec).strip().lower()
    if spec.startswith("top") and spec[3:].isdigit():
        return int(spec[3:])
    return max(1, len([t for t in spec.split(",") if t.strip()]))


def describe_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "an unknown time"
    if seconds < 1:
        return "under a second"
    if seconds < 90:
        return f"about {seconds:.0f} s"
    if seconds < 5400:
        return f"about {seconds / 60:.0f} min"
    return f"about {seconds / 3600:.1f} h"


# --------------------------------------------------------------------------- per-label curves


def curves_available() -> bool:
    """Whether the core has per-label scores (``saliency_core.metrics.completeness.label_scores``)."""
    try:
        from saliency_core import label_scores  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass(frozen=True)
class CurveRequest:
    """The named options of ``label_scores`` that the dashboard exposes."""

    steps: int = 16
    eps1: float = 0.01
    eps2: float = 0.001
    restrict: bool = False  # softmax over the curve labels only (restrict_to), as Gupta et al.


def curve_labels(expl: Explanation) -> list[int]:
    """The labels whose curves are drawn: the explained labels (one "labels" choice drives masks and curves;
    a label-agnostic method's one mask is scored for each of them)."""
    return list(expl.labels)


#: The most pixels the curves send through the classifier in one forward (about 128 images at 224 x 352): the
#: curves of the top-5 labels' own masks (75 images at 16 steps) go in one forward pass.
CURVE_BATCH_PIXELS = 10_000_000


def label_scores_key(labels: list[int], request: CurveRequest, expl_key: str) -> str:
    return cache_key("scores", expl_key, [int(v) for v in labels], request.__dict__)


def cached_label_scores(labels: list[int], request: CurveRequest, cache: ResultCache, expl_key: str):
    """The per-label scores for these masks if they are at hand (a toggle back to a seen setting), else None."""
    return cache.get(label_scores_key(labels, request, expl_key))


def curve_batch_size(expl: Explanation, labels: list[int], steps: int) -> int:
    """Images in one classifier forward of the curves: all of them (every step of every distinct mask) when they
    fit in :data:`CURVE_BATCH_PIXELS`."""
    h, w = expl.working_input.shape[-2:]
    images = (len(labels) if expl.per_label else 1) * max(steps - 1, 0) + 2
    return max(1, min(images, max(8, CURVE_BATCH_PIXELS // (h * w))))


def run_label_scores(expl: Explanation, labels: list[int], request: CurveRequest, classifier: Classifier,
                     cache: ResultCache, expl_key: str, progress: ProgressFn | None = None):
    """Insertion curves, completeness and soundness per label (``label_scores``), cached on the masks' key.

    All the steps of all the labels go through the classifier in one batched pass (as many forwards as
    :func:`curve_batch_size` needs: one at the dashboard's sizes). The two end points of every curve (the
    unmasked image and the gray fill) do not depend on the mask: they are classified once per image and reused,
    so a toggle costs ``steps - 1`` images per distinct mask."""
    from saliency_core import label_scores

    key = label_scores_key(labels, request, expl_key)
    hit = cache.get(key)
    if hit is not None:
        return hit
    masks = expl.working_masks if expl.per_label else expl.working_masks[:1]
    if expl.per_label:
        masks = masks[[expl.labels.index(v) for v in labels]]
    x = expl.working_input
    ends_key = cache_key("curve-ends", classifier.identity, hashlib.sha256(x.numpy().tobytes()).hexdigest()[:20],
                         tuple(x.shape))
    ends = cache.get(ends_key)
    scores = label_scores(classifier, x.to(classifier.device), masks.to(classifier.device),
                          labels, steps=request.steps, eps1=request.eps1, eps2=request.eps2,
                          restrict_to=labels if request.restrict else None, progress=progress,
                          batch_size=curve_batch_size(expl, labels, request.steps),
                          clean_logits=ends[0] if ends else None, fill_logits=ends[1] if ends else None)
    if ends is None and scores.curves.clean_logits is not None:
        cache.put(ends_key, (scores.curves.clean_logits, scores.curves.fill_logits))
    cache.put(key, scores)
    return scores


#: Worst-case scores this close are taken as equal (the score table shows three decimals).
SCORE_TIE = 0.005


def why_scores_cannot_separate(top_probability: float, scores: list) -> list[str]:
    """Why the worst-case scores of the compared methods (each one's ``label_scores`` on the same photo) cannot
    tell them apart here, in plain words; empty when they can. From the numbers only: the classifier is unsure of
    its top label (under 40 %, the Demo's "not sure"); every method gets the same worst completeness and the same
    worst soundness; or most methods' worst completeness is the floor eps1 / f(x) of a weak label (its insertion
    AUC is under eps1 whatever the mask, so the score is the label's probability, not the mask's)."""
    from .plain_words import UNSURE

    reasons = []
    if top_probability < UNSURE:
        reasons.append(f"the classifier is unsure of this photo (its top label has {top_probability:.0%}, "
                       f"under {UNSURE:.0%})")
    if len(scores) < 2:
        return reasons
    worst_c = [s.worst_completeness for s in scores]
    worst_s = [s.worst_soundness for s in scores]
    if max(worst_c) - min(worst_c) <= SCORE_TIE and max(worst_s) - min(worst_s) <= SCORE_TIE:
        reasons.append(f"every method gets the same worst completeness ({worst_c[0]:.2f}) and worst soundness "
                       f"({worst_s[0]:.2f})")
    floors = []
    for s in scores:
        k = int(torch.as_tensor(s.completeness).argmin())
        if float(s.auc[k]) <= s.eps1 + 1e-9:  # max(AUC, eps1) / f(x) = eps1 / f(x): the label, not the mask
            floors.append(float(s.f[k]))
    if len(floors) >= 2 and 2 * len(floors) >= len(scores):
        reasons.append(f"the worst completeness of {len(floors)} of {len(scores)} methods is the floor set by a "
                       f"weak label (f(x) {min(floors):.2f}: eps1 / f(x), whatever the mask)")
    return reasons


def top1_scores_row(name: str, scores) -> dict[str, Any]:
    """One method's scores on the top-1 label alone (the first of the explained labels, scored with its own mask)."""
    return {"method": name, "top-1 label": scores.names[0], "f(x)": float(scores.f[0]),
            "insertion AUC": float(scores.auc[0]), "completeness": float(scores.completeness[0]),
            "soundness": float(scores.soundness[0])}


# --------------------------------------------------------------------------- downloads


def mask_png(mask: np.ndarray) -> bytes:
    from saliency_core import mask_image

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


# --------------------------------------------------------------------------- the Compare page as one file


@functools.lru_cache(maxsize=64)
def _file_sha256(path: str, mtime_ns: int, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def checkpoint_name(path: str | Path) -> str:
    """A file as an export names it: its catalog name (the file's stem, as the menus show it) and the short sha256
    of its content, ``fix_lite0 (sha256 1a2b3c4d5e6f)``; never where it lies on the server."""
    p = Path(path)
    try:
        st_ = p.stat()
        return f"{p.stem} (sha256 {_file_sha256(str(p), st_.st_mtime_ns, st_.st_size)[:12]})"
    except OSError:
        return p.stem or p.name


#: An absolute path inside a text (not the tail of a URL or of a relative path).
_ABS_PATH = re.compile(r"(?<![\w.:/~-])/(?:[^\s'\"<>,;|()\[\]{}]+)")


def export_safe(value: Any) -> Any:
    """A JSON-able value fit for a file that leaves the server: every absolute path in it (a checkpoint option, a
    path inside a note) becomes the file's name and short content hash (:func:`checkpoint_name`), or its last
    part when it is no file."""
    if isinstance(value, dict):
        return {export_safe(k): export_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [export_safe(v) for v in value]
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, str) and "/" in value:
        def name(match: re.Match) -> str:
            path = Path(match.group(0))
            return checkpoint_name(path) if path.is_file() else path.name
        return _ABS_PATH.sub(name, value)
    return value


def result_json(summary: dict[str, Any]) -> bytes:
    """``result.json``: an explanation's summary with no server path in it (:func:`export_safe`)."""
    return (json.dumps(export_safe(summary), indent=2, default=str) + "\n").encode()


def comparison_report(image_name: str, entries: list[tuple[str, Explanation]], rows: list[dict[str, Any]],
                      settings: dict[str, Any], classifier: Classifier) -> bytes:
    """The Compare page as one self-contained HTML file: every method's four views (embedded JPEGs), the scores
    table, the settings and the versions, so that it can be mailed or archived and opened offline."""
    import base64
    import datetime
    import html

    import pandas as pd
    import torch as _torch

    def jpeg(img: Image.Image) -> str:
        buf = io.BytesIO()
        display_copy(img, 480).convert("RGB").save(buf, "JPEG", quality=85)
        return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()

    titles = {"overlay": "Mask overlay", "masked_in": "Masked in (kept)", "masked_out": "Masked out (removed)",
              "infilled": "Infilled"}
    preds = {"overlay": "original", "masked_in": "masked_in", "masked_out": "masked_out", "infilled": "infilled"}
    grid = ["<tr><th>method</th>" + "".join(f"<th>{t}</th>" for t in titles.values()) + "</tr>"]
    for name, expl in entries:
        cells = []
        for view in titles:
            top = expl.predictions[preds[view]][0]
            cells.append(f"<td><img src='{jpeg(expl.views[view])}'><br>{html.escape(top.name)} "
                         f"{top.probability:.0%}</td>")
        grid.append(f"<tr><th>{html.escape(export_safe(name))}</th>{''.join(cells)}</tr>")
    rows = export_safe(rows)
    table = pd.DataFrame(rows).to_html(index=False, float_format=lambda v: f"{v:.3f}", na_rep="-") if rows else ""
    versions = {"saliency_core": saliency_core.__version__, "torch": _torch.__version__,
                "classifier": classifier.identity, "made": datetime.datetime.now().isoformat(timespec="seconds")}
    safe = export_safe({**{k: str(v) for k, v in settings.items()}, **versions})  # no server path leaves it
    meta = "".join(f"<li><b>{html.escape(str(k))}</b>: {html.escape(str(v))}</li>" for k, v in safe.items())
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>Comparison: {html.escape(image_name)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1500px}} img{{max-width:300px;height:auto}}
table{{border-collapse:collapse}} td,th{{border:1px solid #ddd;padding:4px 8px;vertical-align:top;text-align:left}}
</style></head><body><h1>Comparison of saliency methods: {html.escape(image_name)}</h1>
<h2>Views</h2><table>{"".join(grid)}</table><h2>Scores</h2>{table}<h2>Settings and versions</h2><ul>{meta}</ul>
</body></html>"""
    return page.encode()
