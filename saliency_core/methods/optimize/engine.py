"""The per-image mask optimisation engine: FIDO, meaningful perturbation and per-label masks (Gupta et al.).

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
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.nn.functional as F

from saliency_core.classifiers.base import Classifier
from saliency_core.infill.base import create_infiller, infiller_entry
from saliency_core.labels import LabelSpecError
from saliency_core.methods.optimize.config import REFERENCE_SIDE, OptimizeConfig, OptimizeError
from saliency_core.objectives import total_variation_per_mask


class OptimizationCancelled(Exception):
    """Raised by a progress callback to abort a run; the engine re-raises it with ``partial`` set."""

    def __init__(self, message: str = "optimisation cancelled", partial: "OptimizeResult | None" = None) -> None:
        super().__init__(message)
        self.partial = partial


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


def regularisers(mask: torch.Tensor, tv_power: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(area, tv) per mask, as the papers' sums over a 224 x 224 mask (K x 1 x H x W -> K, K).

    Area is the mean times 224^2. TV of a bilinearly upsampled mask grows with the side of the
    mask for sharp edges, so it is scaled by 224 / sqrt(H W); both factors are 1 at 224 x 224.
    """
    h, w = mask.shape[-2:]
    area = mask.flatten(1).mean(1) * REFERENCE_SIDE ** 2
    tv = total_variation_per_mask(mask, tv_power) * (REFERENCE_SIDE / math.sqrt(h * w))
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
    if infiller_entry(cfg.infiller).traits.reference_pool and opts.get("pool") is None:
        from saliency_core.infill.reference_pool import default_pool, pool_from_folder

        pre = classifier.preprocessing
        pool = pool_from_folder(cfg.reference_dir, pre) if cfg.reference_dir else default_pool(pre)
        pool = pool.excluding(pre.denormalize(x.detach().cpu()))
        # resized once to the working size, so no draw pays for a resize
        opts["pool"] = F.interpolate(pool.images, size=size, mode="bilinear", align_corners=False,
                                     antialias=True).to(x.device)
    entry = infiller_entry(cfg.infiller)
    if entry.config is not None and "seed" in {o.name for o in entry.options()} and "seed" not in opts:
        opts["seed"] = int(cfg.seed) + 1  # the run's seed reaches a random infiller too
    return create_infiller(cfg.infiller, **opts)


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
    if infiller_entry(cfg.infiller).traits.static:
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


