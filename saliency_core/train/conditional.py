"""Loss-conditional training of the conditional masker (Dosovitskiy & Djolonga, "You Only Train Once").

Every training image draws its own setting (objective, infiller, TV weight, upsampling factor) from the
space in :class:`ConditionalTrainConfig`; the masker sees that setting as an input and the image's loss is
the objective of that setting (:func:`saliency_core.objectives.conditional_masker_loss`). A space of one
point trains a *dedicated* masker with exactly the same network, data, budget and loss: the baseline the
conditional masker is measured against.

Everything else (data, augmentation, resumable state, logs, validation on held-out classes at the default
setting, torchrun / DDP) is the FIX training of :mod:`saliency_core.train.masker`.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import torch

from saliency_core.infill.base import INFILLERS, create_infiller
from saliency_core.infill.composite import composite
from saliency_core.maskers.area_prior import head_channels
from saliency_core.maskers.conditional import ConditionalMasker, Setting
from saliency_core.objectives import PER_IMAGE_TO_TRAINING, conditional_masker_loss
from saliency_core.train.conditional_area import AreaValidation, CleanCache, area_training_step, draw_area
from saliency_core.train.conditional_config import ConditionalTrainConfig
from saliency_core.train.teacher import Teacher
from saliency_core.train.distributed import all_reduce_mean_, cleanup
from saliency_core.train.masker import ProgressFn, Trainer

#: Objectives with the masked-in (kept) term and with the masked-out (removed) term (from the one vocabulary).
HAS_IN = tuple(o for o, terms in PER_IMAGE_TO_TRAINING.items() if "in" in terms.split("+"))
HAS_OUT = tuple(o for o, terms in PER_IMAGE_TO_TRAINING.items() if "out" in terms)
__all__ = ["ConditionalTrainConfig", "ConditionalTrainer", "draw_settings", "train_conditional"]


def draw_settings(cfg: ConditionalTrainConfig, n: int, generator: torch.Generator) -> list[Setting]:
    """``n`` settings drawn independently: uniform choices, TV 0 with ``tv_zero_prob`` else log-uniform; the area
    weight 1 with ``area_one_prob`` else log-uniform (drawn only when its range is not one point, so runs without
    it draw as they always did)."""
    def pick(values: tuple) -> Any:
        return values[int(torch.randint(len(values), (1,), generator=generator))]

    lo, hi = math.log(cfg.tv_low), math.log(cfg.tv_high)
    out = []
    for _ in range(n):
        objective, infiller, upsample = pick(cfg.objectives), pick(cfg.infillers), pick(cfg.upsample_factors)
        zero = float(torch.rand((), generator=generator)) < cfg.tv_zero_prob
        u = float(torch.rand((), generator=generator))
        tv = 0.0 if zero else math.exp(lo + (hi - lo) * u)
        area = cfg.area_low
        if cfg.area_low < cfg.area_high:
            one = float(torch.rand((), generator=generator)) < cfg.area_one_prob
            v = float(torch.rand((), generator=generator))
            a_lo, a_hi = math.log(cfg.area_low), math.log(cfg.area_high)
            area = 1.0 if one and cfg.area_low <= 1 <= cfg.area_high else math.exp(a_lo + (a_hi - a_lo) * v)
        target = draw_area(cfg.target_area_low, cfg.target_area_high, generator) if cfg.target_area_high > 0 else None
        out.append(Setting(objective, infiller, tv, upsample, area, target))
    return out


class ConditionalTrainer(Trainer):
    """FIX training of a :class:`ConditionalMasker`, each image under its own drawn setting."""

    masker_kind = "conditional"
    cfg: ConditionalTrainConfig

    def __init__(self, cfg: ConditionalTrainConfig, progress: ProgressFn | None = None, show_bars: bool = True) -> None:
        super().__init__(cfg, progress=progress, show_bars=show_bars)
        if cfg.teacher:  # read and checked before the run writes anything
            self.teacher = Teacher.load(cfg.teacher, self.classifier.identity, cfg.image_size)
            self.log(f"teacher: {len(self.teacher.regions)} photos at areas {self.teacher.areas}")

    def build_masker(self) -> torch.nn.Module:
        heads = head_channels(self.classifier) if self.cfg.prior_features else 0
        masker = ConditionalMasker(self.cfg.masker_config(self.classifier.stage_channels, heads))
        masker.grad_temperature = self.cfg.grad_temperature
        return masker

    def masker_skips_parameters(self) -> bool:
        """A masker with per-objective branches runs only the branches its batch drew."""
        return self.masker.config.branches > 1

    def _step_generator(self) -> torch.Generator:
        """The step's own generator (seed, rank, step): a resumed run draws what an uninterrupted one would."""
        return torch.Generator().manual_seed((self.cfg.seed * 1_000_003 + self.dist.rank) * 1_000_003 + self.step)

    def _infiller(self, name: str, seed: int):
        config = INFILLERS.get(name).config
        takes_seed = config is not None and "seed" in {f.name for f in dataclasses.fields(config)}
        return create_infiller(name, **({"seed": seed} if takes_seed else {}))

    def _fills(self, x: torch.Tensor, keep: torch.Tensor, settings: list[Setting], rows: list[int],
               seed: int) -> torch.Tensor:
        """The fill of each listed row under its own setting's infiller (rows x C x H x W)."""
        fill = x.new_empty(len(rows), *x.shape[1:])
        for name in sorted({settings[i].infiller for i in rows}):
            picked = [j for j, i in enumerate(rows) if settings[i].infiller == name]
            whole = self._infiller(name, seed)(x, keep)  # the whole batch: random-image draws from the others
            fill[picked] = whole[[rows[j] for j in picked]].to(x.dtype)
        return fill.detach()

    def masked_logits(self, x: torch.Tensor, m: torch.Tensor, settings: list, seed: int
                      ) -> tuple[list[int], list[int], torch.Tensor, torch.Tensor]:
        """One classifier pass over the masked-in views (rows whose objective keeps) and the masked-out views
        (rows whose objective removes), each filled by its own setting's infiller.

        Returns the in rows, the out rows and their logits (float32), in that order.
        """
        in_rows = [i for i, s in enumerate(settings) if s.objective in HAS_IN]
        out_rows = [i for i, s in enumerate(settings) if s.objective in HAS_OUT]
        parts = []
        if in_rows:
            parts.append(composite(x[in_rows], m[in_rows], self._fills(x, m, settings, in_rows, seed)))
        if out_rows:
            parts.append(composite(x[out_rows], 1 - m[out_rows], self._fills(x, 1 - m, settings, out_rows, seed + 1)))
        with self.autocast():
            logits = self.classifier(torch.cat(parts)).float()
        return in_rows, out_rows, logits[:len(in_rows)], logits[len(in_rows):]

    clean_cache: CleanCache | None = None
    teacher: Teacher | None = None
    area_validation: AreaValidation | None = None

    def training_step(self, x01: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
        if self.cfg.target_area_high > 0:
            if self.clean_cache is None and self.cfg.cache_clean and not self.cfg.augment:
                self.clean_cache = CleanCache()
            return area_training_step(self, x01, y, draw_settings)
        cfg, dev = self.cfg, self.device
        x = self.classifier.preprocessing.normalize(x01.to(dev, non_blocking=True))
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = y.to(dev, non_blocking=True)
        size = tuple(x.shape[-2:])
        g = self._step_generator()
        settings = draw_settings(cfg, x.shape[0], g)
        seed = int(torch.randint(2**31 - 1, (1,), generator=g))

        self.classifier.eval()
        with self.autocast(), torch.no_grad():
            clean = self.classifier.forward_features(x)
        m = self.masker_train([s.detach().float() for s in clean.stages], size, settings).float()
        in_rows, out_rows, li, lo = self.masked_logits(x, m, settings, seed)
        idx = lambda rows: torch.tensor(rows, dtype=torch.long, device=dev)  # noqa: E731
        tv_weight = torch.tensor([s.tv_weight for s in settings], device=dev)
        area_weight = torch.tensor([s.area_weight for s in settings], device=dev)
        # ssr's area term is part of the objective's definition (not the drawn weight, so not balanced below)
        ssr_factor = torch.tensor([cfg.ssr_area_scale if s.objective == "ssr" else 1.0 for s in settings], device=dev)
        out_terms = [cfg.sdr_out_term if settings[i].objective == "sdr" else cfg.out_term for i in out_rows]
        terms = conditional_masker_loss(
            m, y, clean.logits.detach().float(), li if in_rows else None, idx(in_rows), lo if out_rows else None,
            idx(out_rows), tv_weight, cfg.lambda_in, cfg.lambda_out, cfg.lambda_area_in, float(cfg.lambda_area_out),
            out_terms,
            # a large TV or area weight scales that image's whole loss up: divided back, no setting drowns the others'
            # gradients, and each setting's minimiser is unchanged
            image_weight=1.0 / ((1.0 + cfg.tv_loss_scale * tv_weight)
                                * (area_weight.clamp(min=1.0) if cfg.area_loss_balance else 1.0)
                                * (ssr_factor.clamp(min=1.0) if cfg.ssr_area_balance else 1.0)),
            area_weight=area_weight * ssr_factor)

        self.opt_m.zero_grad(set_to_none=True)
        self._scale(terms["total"]).backward(inputs=self.masker_params)
        if self.scaler is not None:
            self.scaler.unscale_(self.opt_m)
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.masker_params, cfg.grad_clip)
        self._opt_step(self.opt_m)
        if self.scaler is not None:
            self.scaler.update()
        row: dict[str, Any] = {k: float(v.detach()) for k, v in terms.items()}
        row["mask_mean"] = float(m.detach().mean())
        row["clean_acc"] = float((clean.logits.detach().argmax(-1) == y).float().mean())
        if self.dist.enabled:  # each process's images drew their own objectives: weight each term by its images
            n_class = sum(t == "out-class" for t in out_terms)
            counts = {"in_ce": len(in_rows), "area_in": len(in_rows), "out_negentropy": len(out_rows) - n_class,
                      "out_negce": n_class, "area_out": len(out_rows)}
            keys = sorted({*counts, *row})  # a term this process has no rows for counts 0
            n = torch.tensor([float(counts.get(k, x.shape[0]) if k in row else 0) for k in keys], dtype=torch.float64)
            sums = torch.tensor([row.get(k, 0.0) for k in keys], dtype=torch.float64) * n
            all_reduce_mean_([sums, n], self.dist)
            row = {k: float(v / c) for k, v, c in zip(keys, sums.tolist(), n.tolist()) if c > 0}
        row["judge"] = "latest"
        return row


    def _end_epoch(self, n_batches: int) -> None:
        """The base epoch end; area masks: the fixed-area figures of the held-out images in the epoch's row instead
        of the base validation at the default setting (a mean mask and accuracies that a set area makes moot)."""
        extra: dict[str, float] = {}
        loader = self.val_loader
        if self.cfg.target_area_high > 0 and self.dist.is_main and loader is not None and self.validates_this_epoch():
            if self.area_validation is None:
                self.area_validation = AreaValidation(self, gradcam=self.cfg.area_gradcam)
            extra = self.area_validation(self.masker)
            self.val_loader = None
        try:
            super()._end_epoch(n_batches)
        finally:
            self.val_loader = loader
        if extra:
            from saliency_core.train.masker import _write_csv

            self.epoch_rows[-1].update({f"val_{k}": round(v, 5) for k, v in extra.items()})
            _write_csv(self.out / "epochs.csv", self.epoch_rows)
            self.log(" ".join(f"{k}={v:.3f}" for k, v in extra.items()))


def train_conditional(cfg: ConditionalTrainConfig, progress: ProgressFn | None = None,
                      show_bars: bool = True) -> Path:
    """Run (or resume) a conditional-masker training and return the saved checkpoint's path."""
    try:
        return ConditionalTrainer(cfg, progress=progress, show_bars=show_bars).run()
    finally:
        cleanup()
