"""Per-image mask optimisation: FIDO, meaningful perturbation and per-label masks (Gupta et al.).

One engine, :func:`optimize_masks`, learns one mask per label for one image by gradient descent
through a frozen classifier. Every choice of the three papers is an option of
:class:`OptimizeConfig`, and presets named after the papers fill them in (:data:`PRESETS`):

* parametrisation: ``continuous`` (mask = sigmoid of a logit map, Fong & Vedaldi, Gupta et al.) or
  ``concrete`` (FIDO: each pixel is kept or dropped by a Bernoulli draw, relaxed with a Concrete
  sample at temperature 0.1, computed in logit space so float32 stays stable; >= 4 samples a step);
* objective: ``ssr`` (smallest region that keeps the label: masked-in), ``sdr`` (smallest region
  whose removal destroys it: masked-out) or ``both``; the class score as ``log-odds`` (FIDO),
  ``log-prob`` or ``prob`` (Fong & Vedaldi), averaged over the samples of a step as scores
  (FIDO) or as probabilities (Gupta et al. average the softmax over their random references);
* any infiller of :mod:`saliency_core.infill.base`; ``random-image`` draws a fresh reference image for
  every sample of every step from a pool (:mod:`saliency_core.infill.reference_pool`);
* regularisers: L1 area and squared total variation, both as the papers' sums over a 224 x 224
  mask (other sizes are rescaled so a weight means the same at any size), and the upsampling
  factor ``s``: the mask is learned on an (H/s) x (W/s) grid and bilinearly upsampled;
* Adam (lr 0.05), optional linear decay, regulariser warm-up, seeded randomness, per-label early
  stopping, a progress callback that also receives the current masks, and cancellation.

The returned mask is the *salient* region in [0, 1]: the kept pixels under SSR (the keep
probability), the removed pixels under SDR. Labels are optimised together in one batched run.

For speed the classifier may see a smaller copy of the image (``resolution``, its short side; by
default the input as given, since the classifier at 160 px is a different function and the masks
suffer, most for the deletion game); the mask grid and the regularisers stay on the input's size.
"""
from __future__ import annotations

import inspect
import math
import time
from dataclasses import dataclass, field, fields
from typing import Any, Callable

import torch
import torch.nn.functional as F

from saliency_core.classifiers.builders import Classifier, ClassifierOutput
from saliency_core.infill.base import available_infillers, make_infiller
from saliency_core.labels import LabelSpecError
from saliency_core.methods.base import MethodError, MethodResult, ProgressFn, register_method

OBJECTIVES = ("ssr", "sdr", "both")
SCORES = ("log-odds", "log-prob", "prob")
PARAMETRIZATIONS = ("continuous", "concrete")
AVERAGES = ("score", "probability")
UPSAMPLE_FACTORS = (1, 2, 4, 8)
#: Infillers whose fill depends on the image only: computed once, at the input's resolution.
STATIC_INFILLERS = frozenset({"gray", "none", "mean", "blur"})
#: Infillers that give the same fill for the same mask (no randomness).
DETERMINISTIC_INFILLERS = STATIC_INFILLERS | {"local-mean", "inpaint"}
#: The papers' regularisers are sums over a 224 x 224 mask.
REFERENCE_SIDE = 224
MIN_CONCRETE_SAMPLES = 4


class OptimizeError(MethodError):
    """A bad optimisation option (the message names the option and what is allowed)."""


class OptimizationCancelled(Exception):
    """Raised by a progress callback to abort a run; the engine re-raises it with ``partial`` set."""

    def __init__(self, message: str = "optimisation cancelled", partial: "OptimizeResult | None" = None) -> None:
        super().__init__(message)
        self.partial = partial


@dataclass
class OptimizeConfig:
    """Every option of the mask optimisation engine (shared by the CLI, the dashboard and presets).

    Defaults are the fast FIDO preset (``fido``); see :data:`PRESETS` for the others.
    """

    objective: str = "ssr"  # ssr | sdr | both
    score: str = "log-odds"  # log-odds | log-prob | prob
    average: str = "score"  # how the samples of a step combine: mean score, or score of the mean probability
    parametrization: str = "concrete"  # continuous | concrete
    temperature: float = 0.1  # Concrete temperature
    samples: int = 4  # samples per step (Concrete draws and/or random reference images)
    infiller: str = "blur"
    infiller_options: dict[str, Any] = field(default_factory=dict)
    reference_dir: str | None = None  # random-image: folder of reference photos (default: scikit-image samples)
    l1_weight: float = 1e-3  # weight of sum(mask) over a 224 x 224 mask
    tv_weight: float = 0.01  # weight of sum |grad mask|^tv_power over a 224 x 224 mask
    tv_power: float = 2.0
    upsample: int = 4  # s: the mask is learned at H/s x W/s
    resolution: int | None = None  # short side of the image the classifier sees (None: the input as given)
    steps: int = 36
    lr: float = 0.2
    lr_decay: bool = True  # linear decay of the learning rate to 0 (FIDO)
    warmup: float = 0.1  # fraction of the steps over which the regulariser weights ramp up from 0
    init: float = 0.5  # initial mask value (salient probability)
    seed: int = 0
    early_stop_tol: float = 0.01  # per label: stop when the mean loss of a window of steps improved on the
    early_stop_patience: int = 10  # previous window by less than this fraction (0: off); window = patience steps
    max_batch: int = 64  # images per classifier call (labels are split into chunks above it)
    preview_every: int = 5  # send the current masks to the progress callback every N steps (0: never)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`OptimizeError` naming the first bad option."""

        def choice(name: str, allowed: tuple) -> None:
            if getattr(self, name) not in allowed:
                raise OptimizeError(f"{name} must be one of {', '.join(map(str, allowed))}, "
                                    f"got {getattr(self, name)!r}")

        def number(name: str, low: float, high: float = math.inf, low_open: bool = False,
                   integer: bool = False) -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise OptimizeError(f"{name} must be a finite number, got {v!r}")
            if integer and int(v) != v:
                raise OptimizeError(f"{name} must be a whole number, got {v!r}")
            if (v <= low if low_open else v < low) or v > high:
                lo = f"> {low}" if low_open else f">= {low}"
                raise OptimizeError(f"{name} must be {lo}" + (f" and <= {high}" if high != math.inf else "")
                                    + f", got {v!r}")
            if integer:
                setattr(self, name, int(v))

        choice("objective", OBJECTIVES)
        choice("score", SCORES)
        choice("average", AVERAGES)
        choice("parametrization", PARAMETRIZATIONS)
        if self.upsample not in UPSAMPLE_FACTORS or isinstance(self.upsample, bool):
            raise OptimizeError(f"upsample (s) must be one of 1, 2, 4, 8, got {self.upsample!r}")
        self.upsample = int(self.upsample)
        if self.infiller not in available_infillers():
            raise OptimizeError(f"unknown infiller '{self.infiller}' (choose from {', '.join(available_infillers())})")
        if not isinstance(self.infiller_options, dict):
            raise OptimizeError(f"infiller_options must be a dict, got {self.infiller_options!r}")
        number("temperature", 0.0, low_open=True)
        number("samples", 1, integer=True)
        if self.parametrization == "concrete" and self.samples < MIN_CONCRETE_SAMPLES:
            raise OptimizeError(f"the concrete parametrisation needs samples >= {MIN_CONCRETE_SAMPLES} per step, "
                                f"got {self.samples}")
        for name in ("l1_weight", "tv_weight", "early_stop_tol"):
            number(name, 0.0)
        number("tv_power", 1.0)
        if self.resolution is not None:
            number("resolution", 16, integer=True)
        number("steps", 1, integer=True)
        number("lr", 0.0, low_open=True)
        number("warmup", 0.0, 1.0)
        number("init", 0.0, 1.0, low_open=True)
        if not self.init < 1.0:
            raise OptimizeError(f"init must be < 1, got {self.init!r}")
        number("seed", -(2 ** 63), integer=True)
        number("early_stop_patience", 1, integer=True)
        number("max_batch", 1, integer=True)
        number("preview_every", 0, integer=True)
        if self.reference_dir is not None and not isinstance(self.reference_dir, str):
            raise OptimizeError(f"reference_dir must be a folder path, got {self.reference_dir!r}")
        if not isinstance(self.lr_decay, bool):
            raise OptimizeError(f"lr_decay must be true or false, got {self.lr_decay!r}")

    @property
    def effective_samples(self) -> int:
        """Samples actually drawn per step: 1 when nothing is random (continuous mask, deterministic fill)."""
        if self.parametrization == "continuous" and self.infiller in DETERMINISTIC_INFILLERS:
            return 1
        return int(self.samples)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (a tensor option, such as a reference pool, is described by its shape)."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["infiller_options"] = {k: f"<tensor {tuple(v.shape)}>" if torch.is_tensor(v) else v
                                 for k, v in self.infiller_options.items()}
        return d


#: Presets named after the papers. The fast ones fit the CPU budget (see the README); the ``-paper``
#: ones are the papers' full settings (meant for a GPU).
PRESETS: dict[str, dict[str, Any]] = {
    "fido": dict(parametrization="concrete", samples=4, temperature=0.1, objective="ssr", score="log-odds",
                 average="score", infiller="blur", l1_weight=1e-3, tv_weight=0.01, upsample=4, steps=36,
                 lr=0.2, lr_decay=True, warmup=0.1, resolution=None),
    "fido-paper": dict(parametrization="concrete", samples=8, temperature=0.1, objective="ssr", score="log-odds",
                       average="score", infiller="local-mean", l1_weight=1e-3, tv_weight=0.01, upsample=4,
                       steps=300, lr=0.05, lr_decay=True, warmup=0.1, resolution=None, early_stop_tol=0.0),
    "meaningful-perturbation": dict(parametrization="continuous", samples=1, objective="sdr", score="prob",
                                    average="score", infiller="blur", infiller_options={"sigma": 10.0},
                                    l1_weight=1e-4, tv_weight=0.01, tv_power=3.0, upsample=8, steps=100, lr=0.1,
                                    lr_decay=True, warmup=0.0, resolution=None),
    "meaningful-perturbation-paper": dict(parametrization="continuous", samples=1, objective="sdr", score="prob",
                                          average="score", infiller="blur", infiller_options={"sigma": 10.0},
                                          l1_weight=1e-4, tv_weight=0.01, tv_power=3.0, upsample=8, steps=500,
                                          lr=0.1, lr_decay=False, warmup=0.0, resolution=None, early_stop_tol=0.0),
    "gupta": dict(parametrization="continuous", samples=4, objective="ssr", score="log-prob", average="probability",
                  infiller="random-image", l1_weight=5e-4, tv_weight=0.01, upsample=4, steps=36, lr=0.2,
                  lr_decay=True, warmup=0.0, resolution=None),
    "gupta-paper": dict(parametrization="continuous", samples=10, objective="ssr", score="log-prob",
                        average="probability", infiller="random-image", l1_weight=2e-5, tv_weight=0.01, upsample=4,
                        steps=2000, lr=0.05, lr_decay=False, warmup=0.0, resolution=None, early_stop_tol=0.0),
}

#: One line per option, for help texts and the dashboard's widgets; choices where the option has them.
OPTION_HELP: dict[str, str] = {
    "objective": "ssr: keep the smallest region that preserves the label; sdr: remove the smallest region that "
                 "destroys it; both",
    "score": "class score: log-odds (FIDO), log-prob, prob (Fong & Vedaldi)",
    "average": "samples of a step combine as the mean score (FIDO) or the score of the mean probability (Gupta)",
    "parametrization": "continuous (sigmoid mask) or concrete (relaxed Bernoulli dropout, FIDO)",
    "temperature": "Concrete temperature (FIDO: 0.1)",
    "samples": "samples per step: Concrete draws and/or random reference images (concrete: >= 4)",
    "infiller": "what replaces removed pixels (any infiller of the registry)",
    "infiller_options": "options of the infiller, e.g. {\"sigma\": 10} for blur",
    "reference_dir": "random-image: folder of reference photos (default: scikit-image's sample photos)",
    "l1_weight": "area weight, on the mask's sum over a 224 x 224 image",
    "tv_weight": "total-variation weight, on the squared TV of a 224 x 224 mask",
    "tv_power": "exponent of the TV differences (2; Fong & Vedaldi use 3)",
    "upsample": "s: the mask is learned at H/s x W/s and upsampled bilinearly (1, 2, 4, 8)",
    "resolution": "short side of the image the classifier sees while optimising (null: as given)",
    "steps": "optimisation steps",
    "lr": "Adam learning rate (papers: 0.05)",
    "lr_decay": "decay the learning rate linearly to 0 (FIDO)",
    "warmup": "fraction of the steps over which the regularisers ramp up from 0 (FIDO: 0.1)",
    "init": "initial mask value",
    "seed": "random seed (same seed, same mask)",
    "early_stop_tol": "stop a label when its loss improves by less than this fraction over a window (0: off)",
    "early_stop_patience": "window of the early-stopping test, in steps",
    "max_batch": "images per classifier call; more labels are split into chunks",
    "preview_every": "send the current masks to the progress callback every N steps",
}
OPTION_CHOICES: dict[str, tuple] = {"objective": OBJECTIVES, "score": SCORES, "average": AVERAGES,
                                    "parametrization": PARAMETRIZATIONS, "upsample": UPSAMPLE_FACTORS}

#: Short option names accepted besides the field names.
ALIASES = {"s": "upsample", "tv": "tv_weight", "l1": "l1_weight", "parameterization": "parametrization"}


def option_names() -> list[str]:
    return [f.name for f in fields(OptimizeConfig)]


def make_config(preset: str | None = None, **options: Any) -> OptimizeConfig:
    """A config from a preset name (or the defaults) with ``options`` overriding it; errors are clear."""
    if preset is not None and preset not in PRESETS:
        raise OptimizeError(f"unknown preset '{preset}' (choose from {', '.join(PRESETS)})")
    base = dict(PRESETS[preset]) if preset else {}
    names = set(option_names())
    for key, value in options.items():
        key = ALIASES.get(key, key)
        if key not in names:
            raise OptimizeError(f"unknown option '{key}' (options: {', '.join(sorted(names | set(ALIASES)))})")
        base[key] = value
    return OptimizeConfig(**base)


# --------------------------------------------------------------------------------------------------
# Pure tensor functions


def class_log_probs(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(log p_y, log(1 - p_y)) per row, both computed stably from the logits (B x C, B)."""
    logp = F.log_softmax(logits.float(), dim=-1)
    lp = logp.gather(1, labels[:, None])[:, 0]
    others = logp.scatter(1, labels[:, None], float("-inf"))
    return lp, others.logsumexp(dim=-1)


def class_score(logits: torch.Tensor, labels: torch.Tensor, score: str, average: str,
                samples: int) -> torch.Tensor:
    """Score of each label from ``samples`` consecutive rows of logits each (K*S x C -> K).

    ``average="score"`` averages the per-sample scores (FIDO); ``"probability"`` scores the mean
    probability of the samples (Gupta et al.): log-prob = log mean p, log-odds = log mean p -
    log mean (1 - p), prob = mean p.
    """
    lp, lq = class_log_probs(logits, labels)
    lp, lq = lp.view(-1, samples), lq.view(-1, samples)
    if average == "score":
        per = {"log-odds": lambda: lp - lq, "log-prob": lambda: lp, "prob": lambda: lp.exp()}[score]()
        return per.mean(dim=1)
    log_s = math.log(samples)
    mean_lp = lp.logsumexp(dim=1) - log_s
    if score == "log-prob":
        return mean_lp
    if score == "prob":
        return mean_lp.exp()
    return mean_lp - (lq.logsumexp(dim=1) - log_s)


def upsample_probability(theta: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """sigmoid(theta) bilinearly upsampled to ``size`` (K x 1 x h x w -> K x 1 x H x W)."""
    return F.interpolate(torch.sigmoid(theta), size=size, mode="bilinear", align_corners=False)


def upsample_logit(theta: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """logit of the bilinearly upsampled probability, stable in float32.

    FIDO upsamples p = sigmoid(theta) and takes log p - log(1 - p); in float32, 1 - p rounds to 0
    once p > 1 - 6e-8. Interpolating sigmoid(theta) and sigmoid(-theta) separately keeps both tails
    accurate (bilinear weights are a convex combination, so up(1 - p) = 1 - up(p) exactly in reals).
    """
    tiny = torch.finfo(torch.float32).tiny
    p = F.interpolate(torch.sigmoid(theta), size=size, mode="bilinear", align_corners=False)
    q = F.interpolate(torch.sigmoid(-theta), size=size, mode="bilinear", align_corners=False)
    return torch.log(p.clamp_min(tiny)) - torch.log(q.clamp_min(tiny))


def logistic_noise(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """log u - log(1 - u), u ~ U(0, 1): the noise of a Concrete (binary Gumbel-softmax) sample."""
    u = torch.rand(shape, generator=generator).clamp_(1e-6, 1.0 - 1e-6)
    return torch.log(u) - torch.log1p(-u)


def concrete_sample(logit: torch.Tensor, noise: torch.Tensor, temperature: float) -> torch.Tensor:
    """sigmoid((logit + noise) / temperature): a relaxed Bernoulli(sigmoid(logit)) draw."""
    return torch.sigmoid((logit + noise) / temperature)


def tv_per_mask(mask: torch.Tensor, power: float = 2.0) -> torch.Tensor:
    """Sum over pixels of |neighbour difference|^power, one value per mask (K x 1 x H x W -> K)."""
    dh = (mask[..., 1:, :] - mask[..., :-1, :]).abs().pow(power).flatten(1).sum(1)
    dw = (mask[..., :, 1:] - mask[..., :, :-1]).abs().pow(power).flatten(1).sum(1)
    return dh + dw


def regularisers(mask: torch.Tensor, tv_power: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(area, tv) per mask, as the papers' sums over a 224 x 224 mask (K x 1 x H x W -> K, K).

    Area is the mean times 224^2. TV of a bilinearly upsampled mask grows with the side of the
    mask for sharp edges, so it is scaled by 224 / sqrt(H W); both factors are 1 at 224 x 224.
    """
    h, w = mask.shape[-2:]
    area = mask.flatten(1).mean(1) * REFERENCE_SIDE ** 2
    tv = tv_per_mask(mask, tv_power) * (REFERENCE_SIDE / math.sqrt(h * w))
    return area, tv


def grid_size(height: int, width: int, s: int) -> tuple[int, int]:
    return max(1, math.ceil(height / s)), max(1, math.ceil(width / s))


def working_size(height: int, width: int, resolution: int | None) -> tuple[int, int]:
    """Size the classifier sees: short side ``resolution`` (never upscaled), aspect kept."""
    if resolution is None or min(height, width) <= resolution:
        return height, width
    scale = resolution / min(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


# --------------------------------------------------------------------------------------------------
# The engine


@dataclass
class OptimizeResult:
    """Masks K x H x W in [0, 1] (salient region, one per label) at the input's size, and the run's record."""

    masks: torch.Tensor
    labels: list[int]
    steps_run: int
    stopped: str  # completed | converged | cancelled
    loss_history: list[float]  # sum over labels, per step
    converged_at: list[int | None]  # step at which each label stopped early (None: ran to the end)
    batch_sizes: list[int]  # images per classifier call, in order (what one run costs)
    seconds: float
    config: OptimizeConfig
    scores: dict[str, list[float]] = field(default_factory=dict)

    def info(self) -> dict[str, Any]:
        return {"steps_run": self.steps_run, "stopped": self.stopped, "converged_at": self.converged_at,
                "images_forwarded": int(sum(self.batch_sizes)), "seconds": round(self.seconds, 3),
                "final_loss": self.loss_history[-1] if self.loss_history else None, "scores": self.scores,
                "config": self.config.to_dict()}


def _converged(losses: list[float], window: int, tol: float) -> bool:
    """Whether the mean loss of the last ``window`` steps improved on the window before by less than
    ``tol`` (relative, or absolute below 1): a noise-robust test for a flat loss curve."""
    if len(losses) < 2 * window:
        return False
    prev = sum(losses[-2 * window:-window]) / window
    cur = sum(losses[-window:]) / window
    return prev - cur < tol * max(1.0, abs(prev))


def _accepts_masks(progress: Callable | None) -> bool:
    """Whether the progress callback takes the ``current_masks`` keyword (or **kwargs)."""
    if progress is None:
        return False
    try:
        params = inspect.signature(progress).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "current_masks" or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def _build_infiller(cfg: OptimizeConfig, classifier: Classifier, x: torch.Tensor, size: tuple[int, int]):
    """The infiller of the config; random-image gets the reference pool (without the explained photo)."""
    opts = dict(cfg.infiller_options)
    if cfg.infiller == "random-image" and opts.get("pool") is None:
        from saliency_core.infill.reference_pool import default_pool, pool_from_folder

        pre = classifier.preprocessing
        pool = pool_from_folder(cfg.reference_dir, pre) if cfg.reference_dir else default_pool(pre)
        pool = pool.excluding(pre.denormalize(x.detach().cpu()))
        # resized once to the working size, so no draw pays for a resize
        opts["pool"] = F.interpolate(pool.images, size=size, mode="bilinear", align_corners=False,
                                     antialias=True).to(x.device)
    from saliency_core.infill.base import _REGISTRY  # the factory's signature says whether it takes a seed

    factory = _REGISTRY[cfg.infiller]
    try:
        takes_seed = "seed" in inspect.signature(factory).parameters
    except (TypeError, ValueError):
        takes_seed = False
    if takes_seed and "seed" not in opts:
        opts["seed"] = int(cfg.seed) + 1
    return make_infiller(cfg.infiller, **opts)


def optimize_masks(
    classifier: Classifier | torch.nn.Module,
    x: torch.Tensor,
    labels: list[int],
    config: OptimizeConfig | None = None,
    progress: Callable[..., None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> OptimizeResult:
    """Learn one mask per label for the image ``x`` (1 x 3 x H x W, normalised) in one batched run.

    ``progress(fraction, message)`` is called after every step; if it accepts a ``current_masks``
    keyword it also gets the current K x H x W masks every ``preview_every`` steps and at the end.
    ``should_stop()`` returning True ends the run early and returns the masks so far
    (``stopped="cancelled"``); a progress callback raising :class:`OptimizationCancelled` aborts it
    (the exception carries the partial result).
    """
    cfg = config or OptimizeConfig()
    cfg.validate()
    if x.dim() != 4 or x.shape[0] != 1 or x.shape[1] != 3:
        raise OptimizeError(f"expected one image as a 1 x 3 x H x W tensor, got shape {tuple(x.shape)}")
    num_classes = getattr(classifier, "num_classes", None)
    labels = [int(i) for i in labels]
    if not labels:
        raise LabelSpecError("no label given to optimise a mask for")
    if num_classes is not None:
        bad = [i for i in labels if not 0 <= i < num_classes]
        if bad:
            raise LabelSpecError(f"label {bad[0]} is out of range (the classifier has classes 0..{num_classes - 1})")

    t_start = time.perf_counter()
    device, dtype = x.device, torch.float32
    x = x.detach().to(dtype)
    H, W = x.shape[-2:]
    hw = working_size(H, W, cfg.resolution)
    x_work = x if hw == (H, W) else F.interpolate(x, size=hw, mode="bilinear", align_corners=False, antialias=True)
    gh, gw = grid_size(H, W, cfg.upsample)
    K, S = len(labels), cfg.effective_samples
    n_obj = 2 if cfg.objective == "both" else 1
    use_in, use_out = cfg.objective in ("ssr", "both"), cfg.objective in ("sdr", "both")

    infiller = _build_infiller(cfg, classifier, x, hw)
    static_fill = None
    if cfg.infiller in STATIC_INFILLERS:
        with torch.no_grad():
            full = infiller(x, torch.ones_like(x[:, :1]))
            static_fill = full if hw == (H, W) else F.interpolate(full, size=hw, mode="bilinear",
                                                                  align_corners=False, antialias=True)

    gen = torch.Generator().manual_seed(int(cfg.seed))
    theta = torch.full((K, 1, gh, gw), math.log(cfg.init / (1 - cfg.init)), device=device, dtype=dtype,
                       requires_grad=True)
    opt = torch.optim.Adam([theta], lr=cfg.lr)
    label_t = torch.tensor(labels, device=device)
    warm_steps = cfg.warmup * cfg.steps
    per_chunk = max(1, cfg.max_batch // (S * n_obj))
    send_masks = _accepts_masks(progress)

    per_label_losses: list[list[float]] = [[] for _ in range(K)]
    converged_at: list[int | None] = [None] * K
    history: list[float] = []
    batch_sizes: list[int] = []
    stopped = "completed"
    steps_run = 0

    def fill_for(keep: torch.Tensor) -> torch.Tensor:
        if static_fill is not None:
            return static_fill
        return infiller(x_work.expand(keep.shape[0], -1, -1, -1), keep.detach())

    def chunk_loss(idx: list[int], reg_scale: float) -> torch.Tensor:
        th = theta[idx]
        k = len(idx)
        if cfg.parametrization == "continuous":
            keep = upsample_probability(th, hw).repeat_interleave(S, dim=0)
        else:
            logit = upsample_logit(th, hw).repeat_interleave(S, dim=0)
            noise = logistic_noise(tuple(logit.shape), gen).to(device, dtype)
            keep = concrete_sample(logit, noise, cfg.temperature)
        batch = []
        if use_in:  # SSR: the salient mask is what is kept
            batch.append(x_work * keep + fill_for(keep) * (1 - keep))
        if use_out:  # SDR: the salient mask is what is removed
            batch.append(x_work * (1 - keep) + fill_for(1 - keep) * keep)
        images = torch.cat(batch)
        batch_sizes.append(int(images.shape[0]))
        logits = classifier(images)
        y = label_t[idx].repeat_interleave(S)
        loss = torch.zeros(k, device=device, dtype=dtype)
        if use_in:
            loss = loss - class_score(logits[: k * S], y, cfg.score, cfg.average, S)
        if use_out:
            loss = loss + class_score(logits[-k * S:], y, cfg.score, cfg.average, S)
        if reg_scale > 0 and (cfg.l1_weight > 0 or cfg.tv_weight > 0):
            area, tv = regularisers(upsample_probability(th, (H, W)), cfg.tv_power)
            loss = loss + reg_scale * (cfg.l1_weight * area + cfg.tv_weight * tv)
        return loss

    def current_masks() -> torch.Tensor:
        with torch.no_grad():
            return upsample_probability(theta.detach(), (H, W))[:, 0].clamp(0, 1).cpu()

    def result() -> OptimizeResult:
        return OptimizeResult(current_masks(), labels, steps_run, stopped, history, converged_at, batch_sizes,
                              time.perf_counter() - t_start, cfg)

    try:
        for t in range(cfg.steps):
            active = [k for k in range(K) if converged_at[k] is None]
            if not active:
                stopped = "converged"
                break
            for group in opt.param_groups:
                group["lr"] = cfg.lr * (1.0 - t / cfg.steps) if cfg.lr_decay else cfg.lr
            reg_scale = min(1.0, t / warm_steps) if warm_steps > 0 else 1.0
            frozen = theta.detach()[[k for k in range(K) if k not in active]].clone() if len(active) < K else None
            grad = torch.zeros_like(theta)
            step_losses = torch.zeros(K)
            for c in range(0, len(active), per_chunk):
                idx = active[c:c + per_chunk]
                loss = chunk_loss(idx, reg_scale)
                (g,) = torch.autograd.grad(loss.sum(), theta)
                grad += g
                step_losses[idx] = loss.detach().cpu()
            theta.grad = grad
            opt.step()
            if frozen is not None:  # Adam's momentum must not move a converged mask
                with torch.no_grad():
                    theta[[k for k in range(K) if k not in active]] = frozen
            steps_run = t + 1
            history.append(float(step_losses[active].sum()))

            for k in active:
                per_label_losses[k].append(float(step_losses[k]))
                # both windows must lie after the warm-up, where the loss rises by construction
                after_warmup = t + 1 >= warm_steps + 2 * cfg.early_stop_patience
                if cfg.early_stop_tol > 0 and after_warmup and _converged(per_label_losses[k],
                                                                          cfg.early_stop_patience,
                                                                          cfg.early_stop_tol):
                    converged_at[k] = t + 1
            if progress is not None:
                msg = f"step {t + 1}/{cfg.steps}, loss {history[-1]:.4g}"
                done = t + 1 == cfg.steps
                if send_masks and (done or (cfg.preview_every and (t + 1) % cfg.preview_every == 0)):
                    progress((t + 1) / cfg.steps, msg, current_masks=current_masks())
                else:
                    progress((t + 1) / cfg.steps, msg)
            if should_stop is not None and should_stop():
                stopped = "cancelled"
                break
        else:
            if all(c is not None for c in converged_at):
                stopped = "converged"
        if progress is not None and steps_run < cfg.steps:  # ended early: the caller still sees 100 %
            msg = f"{stopped} after {steps_run} of {cfg.steps} steps"
            if send_masks:
                progress(1.0, msg, current_masks=current_masks())
            else:
                progress(1.0, msg)
    except OptimizationCancelled as exc:
        stopped = "cancelled"
        exc.partial = result()
        raise
    out = result()
    out.scores = _final_scores(classifier, x, out.masks.to(device), label_t)
    return out


@torch.no_grad()
def _final_scores(classifier, x: torch.Tensor, masks: torch.Tensor, labels: torch.Tensor) -> dict[str, list[float]]:
    """Probability of each label on the clean image, masked-in (x * m) and masked-out (x * (1 - m)), gray fill."""
    m = masks[:, None].to(x.dtype)
    k = m.shape[0]
    probs = classifier(torch.cat([x, x * m, x * (1 - m)])).softmax(-1)
    ar = torch.arange(k, device=labels.device)
    return {"clean": probs[0, labels].tolist(), "masked_in": probs[1 + ar, labels].tolist(),
            "masked_out": probs[1 + k + ar, labels].tolist(), "area": m.flatten(1).mean(1).tolist()}


# --------------------------------------------------------------------------------------------------
# Registered methods


class _TqdmProgress:
    """A tqdm bar as a progress callback (used when the caller gives none, e.g. the CLI)."""

    def __init__(self, desc: str) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=100, desc=desc, unit="%", leave=False, disable=None)

    def __call__(self, fraction: float, message: str) -> None:
        self.bar.n = round(100 * fraction)
        self.bar.set_postfix_str(message, refresh=True)

    def close(self) -> None:
        self.bar.close()


class OptimizeMethod:
    """A registered method around :func:`optimize_masks` (one mask per label, optimised together).

    Options are the fields of :class:`OptimizeConfig` (plus ``preset``), so ``-o steps=100``
    works on the command line. ``should_stop`` (a callable) lets the dashboard cancel a run;
    ``show_progress`` draws a tqdm bar when no progress callback is given.
    """

    name = "optimize"

    def __init__(self, preset: str | None = None, should_stop: Callable[[], bool] | None = None,
                 show_progress: bool = True, **options: Any) -> None:
        self.config = make_config(preset, **options)
        self.preset = preset
        self.should_stop = should_stop
        self.show_progress = show_progress

    def __call__(self, classifier: Classifier, x: torch.Tensor, labels: list[int], clean: ClassifierOutput,
                 progress: ProgressFn | None = None) -> MethodResult:
        bar = _TqdmProgress(f"{self.name} ({len(labels)} label{'s' if len(labels) > 1 else ''})") \
            if progress is None and self.show_progress else None
        try:
            res = optimize_masks(classifier, x, labels, self.config, progress=progress or bar,
                                 should_stop=self.should_stop)
        finally:
            if bar is not None:
                bar.close()
        info = res.info()
        info["preset"] = self.preset
        return MethodResult(masks=res.masks.to(x.device), per_label=True, info=info)


def _register(name: str, summary: str, preset: str | None) -> None:
    def factory(**options: Any) -> OptimizeMethod:
        chosen = options.pop("preset", preset)
        return OptimizeMethod(chosen, **options)

    register_method(name, summary, per_label=True)(factory)


_register("fido", "FIDO (Chang et al.): Concrete dropout mask, SSR, log-odds; fast CPU defaults", "fido")
_register("fido-paper", "FIDO with the paper's settings (300 steps, 8 samples, local-mean infill)", "fido-paper")
_register("meaningful-perturbation", "Fong & Vedaldi: continuous mask, blur deletion (SDR), fast defaults",
          "meaningful-perturbation")
_register("meaningful-perturbation-paper", "Fong & Vedaldi with the paper's settings (500 steps)",
          "meaningful-perturbation-paper")
_register("gupta", "Gupta et al.: per-label masks, random-image infill; fast CPU defaults", "gupta")
_register("gupta-paper", "Gupta et al. with the paper's settings (2000 steps, 10 references a step)", "gupta-paper")
_register("optimize", "per-image mask optimisation with every option (-o preset=NAME to start from a preset)", None)
