"""Objective terms of the masking papers as pure tensor functions (batch means unless stated).

Phang et al. / CASM: masked-in classification maximisation (cross-entropy), masked-out
classification minimisation (negative cross-entropy), masked-out entropy maximisation (negative
entropy, counted only for images the classifier gets right), the conditional area terms (the mask's
mean area, counted only when the masked-in image is classified correctly, or when a correctly
classified image's masked-out version is misclassified), and total variation.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

# The objective vocabularies of the project, side by side (one place, so they can be compared):
#: per-image optimisation (FIDO's names): ssr keeps the smallest sufficient region (the masked-in term),
#: sdr removes the smallest destroying region (the masked-out term), both adds them.
PER_IMAGE_OBJECTIVES = ("ssr", "sdr", "both")
#: masker training (Phang et al.'s terms): "in" is MaxClass (= ssr's term), "out-class" MinClass (= sdr's),
#: "out-entropy" MaxEnt; pairs and the triple of their study.
OBJECTIVES = ("in", "out-entropy", "out-class", "in+out-entropy", "in+out-class",
              "out-class+out-entropy", "in+out-class+out-entropy")
#: FIDO's names accepted for masker training too.
PER_IMAGE_TO_TRAINING = {"ssr": "in", "sdr": "out-class", "both": "in+out-class"}
#: per-label masker training (Gupta et al.): saliency_core.vocabulary.LABEL_OBJECTIVES (declared by its config).


def masked_in_loss(logits_in: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """MaxClass on the masked-in image: mean cross-entropy CE(f(x*m), y)."""
    return F.cross_entropy(logits_in, labels)


def masked_out_class_loss(logits_out: torch.Tensor, labels: torch.Tensor,
                          weight: torch.Tensor | None = None) -> torch.Tensor:
    """MinClass on the masked-out image: -mean_i w_i CE(f(x*(1-m)), y_i)."""
    ce = F.cross_entropy(logits_out, labels, reduction="none")
    w = torch.ones_like(ce) if weight is None else weight.to(ce.dtype)
    return -(w * ce).mean()


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Per-row entropy (natural log) of softmax(logits)."""
    logp = F.log_softmax(logits, dim=-1)
    return -(logp.exp() * logp).sum(dim=-1)


def masked_out_entropy_loss(logits_out: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """MaxEnt on the masked-out image: -mean_i w_i H(softmax f(x*(1-m)))."""
    h = entropy(logits_out)
    w = torch.ones_like(h) if weight is None else weight.to(h.dtype)
    return -(w * h).mean()


def mask_area(mask: torch.Tensor) -> torch.Tensor:
    """Per-image mean of the mask (B x 1 x H x W -> B)."""
    return mask.flatten(1).mean(dim=1)


def area_step(areas: torch.Tensor, pixels: int) -> torch.Tensor:
    """The sorted reference of Fong et al. 2019: per row, ``pixels - round(a * pixels)`` zeros then ones.

    ``areas`` is a tensor of fractions (N,); the result is (N, pixels), ascending like ``mask.sort()``.
    """
    ones = torch.round(areas.to(torch.float64) * pixels).clamp(0, pixels).to(torch.long)
    index = torch.arange(pixels, device=areas.device)
    return (index.unsqueeze(0) >= (pixels - ones).unsqueeze(1)).to(torch.float32)


def sorted_area_loss(mask: torch.Tensor, areas: torch.Tensor | float) -> torch.Tensor:
    """Per-mask area constraint of extremal perturbations: mean_j (sort(m)_j - step_a,j)^2.

    Zero exactly when the mask is binary with round(a * pixels) ones; a flat gray mask of mean a (which a mean-area
    term accepts) is penalised. ``mask`` is (N, ...) in [0, 1]; ``areas`` a float or a tensor (N,); returns (N,).
    """
    flat = mask.flatten(1)
    a = torch.as_tensor(areas, device=flat.device, dtype=torch.float32).reshape(-1).expand(flat.shape[0])
    ref = area_step(a, flat.shape[1]).to(flat.dtype)
    return (flat.sort(dim=1).values - ref).pow(2).mean(dim=1)


def conditional_area(mask: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
    """mean_i c_i * area(m_i): the area is penalised only where the condition holds."""
    return (condition.to(mask.dtype) * mask_area(mask)).mean()


def total_variation_per_mask(mask: torch.Tensor, power: float = 2.0, border_weight: float = 0.0) -> torch.Tensor:
    """Sum over pixels of |neighbour differences|^power (plus an optional border term), one value per mask.

    ``border_weight`` adds w * sum(m^power) on the four border lines (Phang et al. use 0.3), which
    pushes masks to 0 at the image's edge. The one TV term of the project: training and per-image
    optimisation both use it.
    """
    m = mask.flatten(0, -3) if mask.dim() > 3 else mask
    m = m.reshape(mask.shape[0], -1, *mask.shape[-2:])
    dh = (m[..., 1:, :] - m[..., :-1, :]).abs().pow(power).flatten(1).sum(1)
    dw = (m[..., :, 1:] - m[..., :, :-1]).abs().pow(power).flatten(1).sum(1)
    tv = dh + dw
    if border_weight:
        border = (m[..., 0, :].abs().pow(power).flatten(1).sum(1) + m[..., -1, :].abs().pow(power).flatten(1).sum(1)
                  + m[..., :, 0].abs().pow(power).flatten(1).sum(1) + m[..., :, -1].abs().pow(power).flatten(1).sum(1))
        tv = tv + border_weight * border
    return tv


def total_variation(mask: torch.Tensor, power: float = 2.0, border_weight: float = 0.0) -> torch.Tensor:
    """:func:`total_variation_per_mask`, averaged over the batch (the masker training term)."""
    return total_variation_per_mask(mask, power, border_weight).mean()


@dataclass
class MaskerObjective:
    """Weights of the masker training objective (defaults: FIX best of Phang et al.)."""

    objective: str = "in+out-entropy"
    lambda_in: float = 1.0
    lambda_out: float = 1.0
    lambda_area_in: float = 1.0
    lambda_area_out: float = 10.0
    lambda_tv: float = 1e-3
    tv_border: float = 0.0

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ValueError(f"unknown objective '{self.objective}' (choose from {', '.join(OBJECTIVES)})")
        for name in ("lambda_in", "lambda_out", "lambda_area_in", "lambda_area_out", "lambda_tv", "tv_border"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    @property
    def uses_in(self) -> bool:
        return self.objective.startswith("in")

    @property
    def uses_out(self) -> bool:
        return "out" in self.objective

    def to_dict(self) -> dict:
        return asdict(self)


def masker_loss(cfg: MaskerObjective, mask: torch.Tensor, labels: torch.Tensor, clean_logits: torch.Tensor,
                logits_in: torch.Tensor | None, logits_out: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """All terms of the masker objective and their weighted sum under key ``total``.

    ``mask`` is B x 1 x H x W; the masked-out terms count only images whose clean prediction is right.
    """
    clean_correct = (clean_logits.argmax(-1) == labels).to(mask.dtype)
    terms: dict[str, torch.Tensor] = {}
    total = mask.new_zeros(())
    if cfg.uses_in:
        assert logits_in is not None
        terms["in_ce"] = masked_in_loss(logits_in, labels)
        in_correct = (logits_in.argmax(-1) == labels).to(mask.dtype)
        terms["area_in"] = conditional_area(mask, in_correct)
        total = total + cfg.lambda_in * terms["in_ce"] + cfg.lambda_area_in * terms["area_in"]
    if cfg.uses_out:
        assert logits_out is not None
        if "out-entropy" in cfg.objective:
            terms["out_negentropy"] = masked_out_entropy_loss(logits_out, clean_correct)
            total = total + cfg.lambda_out * terms["out_negentropy"]
        if "out-class" in cfg.objective:
            terms["out_negce"] = masked_out_class_loss(logits_out, labels, clean_correct)
            total = total + cfg.lambda_out * terms["out_negce"]
        out_wrong = (logits_out.argmax(-1) != labels).to(mask.dtype)
        terms["area_out"] = conditional_area(mask, clean_correct * out_wrong)
        total = total + cfg.lambda_area_out * terms["area_out"]
    terms["tv"] = total_variation(mask, border_weight=cfg.tv_border)
    terms["total"] = total + cfg.lambda_tv * terms["tv"]
    return terms


def conditional_masker_loss(mask: torch.Tensor, labels: torch.Tensor, clean_logits: torch.Tensor,
                            logits_in: torch.Tensor | None, in_rows: torch.Tensor,
                            logits_out: torch.Tensor | None, out_rows: torch.Tensor, tv_weight: torch.Tensor,
                            lambda_in: float = 1.0, lambda_out: float = 1.0, lambda_area_in: float = 1.0,
                            lambda_area_out: float = 10.0, out_term: str | list[str] = "out-entropy",
                            image_weight: torch.Tensor | None = None,
                            area_weight: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """:func:`masker_loss` with a setting per image (loss-conditional training): the mean over images of
    each image's own objective.

    ``in_rows`` / ``out_rows`` index the images whose objective has the masked-in / masked-out term
    (``logits_in`` / ``logits_out`` hold exactly those rows); ``tv_weight`` (B) is each image's TV
    weight. With one setting for every image it equals :func:`masker_loss`. Logged terms are means over
    the images that have them; ``total`` is what is minimised. ``image_weight`` (B) scales each image's loss:
    a positive factor per setting leaves each setting's minimiser unchanged but balances their gradients.
    ``out_term`` is the masked-out term (``out-entropy``: MaxEnt, ``out-class``: MinClass), or one per row of
    ``out_rows`` (objectives with different masked-out terms in one batch). ``area_weight`` (B) multiplies each
    image's two area weights (None: 1); logged area terms are unweighted.
    """
    terms_out = [out_term] * len(out_rows) if isinstance(out_term, str) else list(out_term)
    named = {out_term} if isinstance(out_term, str) else set(terms_out)
    if len(terms_out) != len(out_rows) or not named <= {"out-entropy", "out-class"}:
        raise ValueError(f"out_term must be out-entropy or out-class (one, or one per out row), got {out_term!r}")
    b = mask.shape[0]
    area = mask_area(mask)
    area_scale = mask.new_ones(b) if area_weight is None else area_weight.to(mask.dtype)
    per_image = mask.new_zeros(b)
    terms: dict[str, torch.Tensor] = {}
    clean_correct = (clean_logits.argmax(-1) == labels).to(mask.dtype)
    if len(in_rows):
        y = labels[in_rows]
        ce = F.cross_entropy(logits_in, y, reduction="none")
        in_correct = (logits_in.argmax(-1) == y).to(mask.dtype)
        area_in = in_correct * area[in_rows]
        per_image = per_image.index_add(0, in_rows, lambda_in * ce + lambda_area_in * area_scale[in_rows] * area_in)
        terms["in_ce"], terms["area_in"] = ce.mean(), area_in.mean()
    if len(out_rows):
        y, c = labels[out_rows], clean_correct[out_rows]
        use_class = torch.tensor([t == "out-class" for t in terms_out], device=mask.device)
        negentropy = -(c * entropy(logits_out))
        negce = -(c * F.cross_entropy(logits_out, y, reduction="none"))
        term = torch.where(use_class, negce, negentropy)
        if not use_class.all():
            terms["out_negentropy"] = negentropy[~use_class].mean()
        if use_class.any():
            terms["out_negce"] = negce[use_class].mean()
        area_out = c * (logits_out.argmax(-1) != y).to(mask.dtype) * area[out_rows]
        per_image = per_image.index_add(0, out_rows, lambda_out * term
                                     + lambda_area_out * area_scale[out_rows] * area_out)
        terms["area_out"] = area_out.mean()
    tv = total_variation_per_mask(mask)
    terms["tv"] = tv.mean()
    per_image = per_image + tv_weight.to(tv.dtype) * tv
    if image_weight is not None:
        per_image = per_image * image_weight.to(per_image.dtype)
    terms["total"] = per_image.mean()
    return terms


def gupta_label_loss(log_p_composite: torch.Tensor) -> torch.Tensor:
    """Gupta et al.: maximise the label's log-probability on the composite (mean over (image, label))."""
    return -log_p_composite.mean()


def calibrated_label_loss(log_p_composite: torch.Tensor, log_f: torch.Tensor,
                          overshoot_weight: float = 1.0) -> torch.Tensor:
    """Track the classifier's own belief f(x,a) instead of maximising the composite's probability.

    Completeness asks the composite to reach f(x,a) (a shortfall log f - log p is penalised);
    soundness asks it not to exceed f(x,a) (an overshoot log p - log f is penalised with
    ``overshoot_weight``). Maximising p for a label the classifier does not believe is exactly how
    unsound masks arise, so the plain Gupta objective has no overshoot term.
    """
    if overshoot_weight < 0:
        raise ValueError("overshoot_weight must be >= 0")
    gap = log_p_composite - log_f.detach()
    return (F.relu(-gap) + overshoot_weight * F.relu(gap)).mean()


def soft_insertion_keep(logits: torch.Tensor, fractions: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """Soft "keep the top t of the pixels" maps, a differentiable stand-in for an insertion step.

    ``logits``: K x 1 x h x w mask logits; ``fractions``: K x T shares of pixels to keep. Returns
    K x T x h x w maps ~1 on the pixels ranked in the top t of their mask and ~0 elsewhere: a sigmoid
    of (logit - threshold) / temperature, the threshold being the logit at rank t·N (the gradient
    reaches the threshold through the sort). Only the ranking and the logits' spread matter, not
    their offset.
    """
    if logits.dim() != 4 or logits.shape[1] != 1:
        raise ValueError(f"logits must be K x 1 x h x w, got {tuple(logits.shape)}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    flat = logits.flatten(1)
    n = flat.shape[1]
    ranked = flat.sort(dim=1, descending=True).values
    index = (fractions * n).long().clamp(0, n - 1)
    threshold = ranked.gather(1, index)                                   # K x T
    return torch.sigmoid((logits - threshold[..., None, None]) / temperature)


def completeness_soundness_loss(g: torch.Tensor, f: torch.Tensor, eps1: float = 0.01, eps2: float = 0.001,
                                soundness_weight: float = 1.0) -> torch.Tensor:
    """(1 - completeness) + w (1 - soundness) of Gupta et al. from an insertion AUC ``g`` and f(x,a).

    completeness = min(max(g, eps1) / f, 1) and soundness = min(max(f, eps2) / g, 1): the loss is
    zero exactly when g is close to f, so a mask is rewarded for a composite probability that tracks
    the classifier's own belief, never for pushing a label the classifier does not believe. Per label.
    """
    if soundness_weight < 0:
        raise ValueError("soundness_weight must be >= 0")
    f = f.detach().clamp_min(1e-12)
    completeness = torch.clamp(torch.maximum(g, torch.full_like(g, eps1)) / f, max=1.0)
    soundness = torch.clamp(torch.clamp(f, min=eps2) / g.clamp_min(1e-12), max=1.0)
    return (1 - completeness) + soundness_weight * (1 - soundness)


def probability_reward_loss(logits: torch.Tensor, target: torch.Tensor, keep: bool,
                            log_weight: float = 0.0) -> torch.Tensor:
    """Per-image loss of a bounded class-probability reward (Fong et al. 2019), no correctness gating.

    ``keep`` (preserve, ssr): 1 - p(target | masked image), minimised when the kept region holds the class;
    otherwise (delete, sdr): p(target | masked image), zero once the class is gone, so it stops pulling (the
    masked-out cross-entropy kept growing after the class was gone). ``log_weight`` adds w * -log p (keep) or
    w * -log(1 - p) (delete): the same minimiser, a gradient where p is near 0 (keep) or 1 (delete).
    """
    log_p = logits.float().log_softmax(-1).gather(1, target.view(-1, 1))[:, 0]
    p = log_p.exp()
    if keep:
        return (1 - p) - log_weight * log_p
    return p - log_weight * torch.log1p(-p.clamp(max=1 - 1e-6))
