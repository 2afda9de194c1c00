"""Training and validating the area-conditioned conditional masker (amortised extremal perturbations).

A conditional run with ``target_area_high > 0`` draws, per image, a target area a (log-uniform over the trained
range) next to the objective, infiller, TV weight and upsampling; the masker returns a region of exactly area a
(:mod:`saliency_core.maskers.area`), and each image's loss is the bounded class-probability reward of its objective
(:func:`saliency_core.objectives.probability_reward_loss`: ``ssr`` keeps the class with the region alone, ``sdr``
removes it with the region, ``both`` both), judged against the classifier's own top-1 on the clean image (no label
needed, no correctness gating), plus the sorted area loss of Fong et al. (which also pushes the mask to 0/1) and
the drawn TV weight.

Without augmentation an image's clean activations and logits never change, so they are computed once and cached
(``cache_clean``): a step then costs the masker and the classifier's pass over the masked images only.

Validation (:class:`AreaValidation`) scores what the issue's targets measure on the held-out images, at a = 0.1 and
0.2 with gray fill: the top-1 probability with only the ``ssr`` region kept and with the ``sdr`` region removed (and
the crossed pairs), the same for Grad-CAM's top-a region, the area error and the share of half-transparent pixels.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch

from saliency_core.infill.composite import composite
from saliency_core.maskers.area_prior import training_prior
from saliency_core.maskers.conditional import Setting
from saliency_core.objectives import probability_reward_loss, sorted_area_loss, total_variation_per_mask
from saliency_core.train.teacher import TEACHER_OBJECTIVES, image_key, teacher_loss, teacher_rows

if TYPE_CHECKING:  # the trainer module imports this one: its names come in as arguments
    from collections.abc import Callable

    from saliency_core.train.loop import BaseTrainer as ConditionalTrainer

#: The areas and objectives the per-epoch validation scores.
VALIDATION_AREAS = (0.1, 0.2)


def draw_area(low: float, high: float, generator: torch.Generator) -> float:
    """A target area drawn log-uniformly over [low, high] (small regions, where the targets are, drawn as often as
    large ones per factor of area)."""
    if low >= high:
        return low
    u = float(torch.rand((), generator=generator))
    return math.exp(math.log(low) + (math.log(high) - math.log(low)) * u)


def teacher_games(settings: list[Setting], objectives: tuple[str, ...], generator: torch.Generator) -> list[Setting]:
    """The settings with each row whose objective has no teacher game (``both``) redrawn uniformly among the
    trained objectives that have one (distillation alone: such a row would learn nothing)."""
    import dataclasses

    games = [o for o in objectives if o in TEACHER_OBJECTIVES]
    if not games:
        raise ValueError(f"none of the objectives {objectives} has a teacher game ({TEACHER_OBJECTIVES})")
    out = []
    for s in settings:
        if s.objective not in games:
            s = dataclasses.replace(s, objective=games[int(torch.randint(len(games), (1,), generator=generator))])
        out.append(s)
    return out


def top_area_region(maps: torch.Tensor, area: float) -> torch.Tensor:
    """Binary regions (B x H x W) with exactly round(a N) ones: each map's top pixels (ties broken by position)."""
    flat = maps.flatten(1)
    k = int(round(area * flat.shape[1]))
    region = torch.zeros_like(flat)
    if k:
        region.scatter_(1, flat.topk(k, dim=1).indices, 1.0)
    return region.view_as(maps)


class CleanCache:
    """Clean stage activations and logits per image, keyed by the image's bytes (valid without augmentation)."""

    def __init__(self) -> None:
        self.store: dict[str, tuple[list[torch.Tensor], torch.Tensor]] = {}
        self.hits = self.misses = 0
        self.prior: torch.Tensor | None = None  # the last batch's class activation maps (score_prior cam)

    key = staticmethod(image_key)

    def get(self, trainer: "ConditionalTrainer", x01: torch.Tensor, x: torch.Tensor
            ) -> tuple[list[torch.Tensor], torch.Tensor]:
        keys = [self.key(x01[i]) for i in range(x01.shape[0])]
        missing = [i for i, k in enumerate(keys) if k not in self.store]
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        if missing:
            with trainer.autocast(), torch.no_grad():
                out = trainer.classifier.forward_features(x[missing])
            cams = training_prior(trainer.masker, trainer.classifier, out)  # None: the masker takes no prior
            for j, i in enumerate(missing):
                self.store[keys[i]] = ([s[j].detach().float().clone() for s in out.stages],
                                       out.logits[j].detach().float().clone(), None if cams is None else cams[j])
        rows = [self.store[k] for k in keys]
        self.prior = None if rows[0][2] is None else torch.stack([r[2] for r in rows])  # the batch's, for the step
        stages = [torch.stack([r[0][s] for r in rows]) for s in range(len(rows[0][0]))]
        return stages, torch.stack([r[1] for r in rows])


def area_training_step(trainer: "ConditionalTrainer", x01: torch.Tensor, y: torch.Tensor,
                       draw_settings: "Callable[..., list[Setting]]") -> dict[str, Any]:
    """One step of the area-conditioned masker (see the module docstring); returns the logged figures.
    ``draw_settings`` is the conditional trainer's (passed: it imports this module)."""
    cfg, dev = trainer.cfg, trainer.device
    x = trainer.classifier.preprocessing.normalize(x01.to(dev, non_blocking=True))
    if trainer.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    size = tuple(x.shape[-2:])
    g = trainer._step_generator()
    settings = draw_settings(cfg, x.shape[0], g)
    seed = int(torch.randint(2**31 - 1, (1,), generator=g))
    trainer.classifier.eval()
    if trainer.clean_cache is not None:
        stages, clean_logits = trainer.clean_cache.get(trainer, x01, x)
        prior = trainer.clean_cache.prior
    else:
        with trainer.autocast(), torch.no_grad():
            out = trainer.classifier.forward_features(x)
        stages, clean_logits = [s.detach().float() for s in out.stages], out.logits.detach().float()
        prior = training_prior(trainer.masker, trainer.classifier, out)
    target = clean_logits.argmax(-1)  # the classifier's own top-1: unlabelled images train as well
    taught: list[tuple[int, torch.Tensor]] = []
    distil_only = cfg.reward_weight == 0
    if distil_only:  # the teacher alone: only its games are drawn, every row taught
        settings = teacher_games(settings, cfg.objectives, g)
    if getattr(trainer, "teacher", None) is not None:  # some ssr / sdr rows at the teacher's setting
        share = 1.0 if distil_only else cfg.teacher_share
        settings, taught = teacher_rows(settings, x01, trainer.teacher, share, g)
    areas = torch.tensor([float(s.area) for s in settings], device=dev)
    m, scores = trainer.masker_train(stages, size, settings, prior=prior, with_scores=True)
    m, scores = m.float(), scores.float()
    idx = lambda rows: torch.tensor(rows, dtype=torch.long, device=dev)  # noqa: E731
    per_image = m.new_zeros(x.shape[0])
    row: dict[str, Any] = {}
    if not distil_only:
        in_rows, out_rows, li, lo = trainer.masked_logits(x, m, settings, seed)
        if in_rows:
            keep = probability_reward_loss(li, target[idx(in_rows)], keep=True, log_weight=cfg.reward_log_weight)
            per_image = per_image.index_add(0, idx(in_rows), cfg.reward_weight * keep)
            row["in_prob"] = float(li.detach().softmax(-1).gather(1, target[idx(in_rows)][:, None]).mean())
        if out_rows:
            remove = probability_reward_loss(lo, target[idx(out_rows)], keep=False, log_weight=cfg.reward_log_weight)
            per_image = per_image.index_add(0, idx(out_rows), cfg.reward_weight * remove)
            row["out_prob"] = float(lo.detach().softmax(-1).gather(1, target[idx(out_rows)][:, None]).mean())
    if taught:
        rows = [i for i, _ in taught]
        distil = teacher_loss(scores[rows], areas[rows], torch.stack([r for _, r in taught]).to(dev),
                              cfg.teacher_temperature)
        per_image = per_image.index_add(0, idx(rows), cfg.teacher_weight * distil)
        row["teacher_bce"] = float(distil.detach().mean())
    sorted_area = sorted_area_loss(m, areas)
    tv_weight = torch.tensor([s.tv_weight for s in settings], device=dev)
    tv = total_variation_per_mask(m)
    per_image = per_image + cfg.lambda_sorted_area * sorted_area + tv_weight * tv
    per_image = per_image / (1.0 + cfg.tv_loss_scale * tv_weight)  # a large TV term does not drown the others
    total = per_image.mean()

    trainer.opt_m.zero_grad(set_to_none=True)
    trainer._scale(total).backward(inputs=trainer.masker_params)
    if trainer.scaler is not None:
        trainer.scaler.unscale_(trainer.opt_m)
    if cfg.grad_clip:
        torch.nn.utils.clip_grad_norm_(trainer.masker_params, cfg.grad_clip)
    trainer._opt_step(trainer.opt_m)
    if trainer.scaler is not None:
        trainer.scaler.update()
    md = m.detach()
    row.update(total=float(total.detach()), sorted_area=float(sorted_area.detach().mean()),
               tv=float(tv.detach().mean()),
               mask_mean=float(md.mean()),
               area_error=float(((md > 0.5).float().flatten(1).mean(1) - areas).abs().mean()),
               half=float(((md > 0.1) & (md < 0.9)).float().mean()),
               clean_acc=float((clean_logits.argmax(-1) == y.to(dev)).float().mean()), judge="latest")
    return row


class AreaValidation:
    """The issue's fixed-area figures on the held-out images, once per epoch (clean passes and Grad-CAM once)."""

    def __init__(self, trainer: "ConditionalTrainer", gradcam: bool = True) -> None:
        from saliency_core.methods.base import create_method

        self.trainer = trainer
        clf = trainer.classifier
        clf.eval()
        xs, stages, logits, cams, priors = [], [], [], [], []
        cam = create_method("grad-cam") if gradcam else None
        for x01, _ in trainer.val_loader:
            x = clf.preprocessing.normalize(x01.to(trainer.device))
            with torch.no_grad():
                out = clf.forward_features(x)
            xs.append(x)
            stages.append([s.float() for s in out.stages])
            logits.append(out.logits.float())
            priors.append(training_prior(trainer.masker, clf, out))
            if cam is not None:
                for i in range(x.shape[0]):
                    one = clf.forward_features(x[i:i + 1])
                    label = int(out.logits[i].argmax())
                    cams.append(cam(clf, x[i:i + 1], [label], one).masks[:1].detach())
        self.x = torch.cat(xs)
        self.stages = [torch.cat([s[k] for s in stages]) for k in range(len(stages[0]))]
        self.target = torch.cat(logits).argmax(-1)
        self.prior = None if priors[0] is None else torch.cat(priors)  # CAMs of the top-1 (score_prior cam)
        self.gradcam: dict[str, float] = {}  # Grad-CAM's figures: its maps do not change, scored once
        if cams:
            c = torch.nn.functional.interpolate(torch.cat(cams)[:, None], size=self.x.shape[-2:], mode="bilinear",
                                                align_corners=False)[:, 0]
            for a in VALIDATION_AREAS:
                kept, removed = self._probs(top_area_region(c, a))
                self.gradcam.update({f"gradcam_kept_{a:g}": float(kept.mean()),
                                     f"gradcam_removed_{a:g}": float(removed.mean())})

    @torch.no_grad()
    def _probs(self, region: torch.Tensor, batch: int = 50) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-1 probability with only the region kept and with it removed (gray fill), per image."""
        clf = self.trainer.classifier
        kept, removed = [], []
        for i in range(0, self.x.shape[0], batch):
            x, r = self.x[i:i + batch], region[i:i + batch, None]
            t = self.target[i:i + batch]
            p = clf(torch.cat([composite(x, r), composite(x, 1 - r)])).float().softmax(-1)
            p = p.gather(1, torch.cat([t, t])[:, None])[:, 0]
            kept.append(p[:len(x)])
            removed.append(p[len(x):])
        return torch.cat(kept), torch.cat(removed)

    @torch.no_grad()
    def __call__(self, masker: torch.nn.Module) -> dict[str, float]:
        was = masker.training
        masker.eval()
        size = tuple(self.x.shape[-2:])
        default = masker.config.default_setting
        out: dict[str, float] = {}
        for a in VALIDATION_AREAS:
            for objective in ("ssr", "sdr"):
                setting = Setting(objective, "gray", default.tv_weight, default.upsample, default.area_weight, a)
                m = torch.cat([masker([s[i:i + 50] for s in self.stages], size, setting,
                                      prior=None if self.prior is None else self.prior[i:i + 50])[:, 0]
                               for i in range(0, self.x.shape[0], 50)])
                kept, removed = self._probs(top_area_region(m, a))
                out[f"{objective}_kept_{a:g}"] = float(kept.mean())
                out[f"{objective}_removed_{a:g}"] = float(removed.mean())
                out[f"{objective}_area_error_{a:g}"] = float(((m > 0.5).float().flatten(1).mean(1) - a).abs().max())
                out[f"{objective}_half_{a:g}"] = float(((m > 0.1) & (m < 0.9)).float().mean())
        masker.train(was)
        return {**out, **self.gradcam}
