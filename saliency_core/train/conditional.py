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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from saliency_core.infill.base import INFILLERS, create_infiller
from saliency_core.infill.composite import composite
from saliency_core.maskers.conditional import (
    AREA_ENCODING_SPAN,
    CONDITION_INFILLERS,
    CONDITION_OBJECTIVES,
    DEFAULT_TV_RANGE,
    OBJECTIVE_BRANCHES,
    TV_MAX,
    UPSAMPLE_FACTORS,
    ConditionalMasker,
    ConditionalMaskerConfig,
    Setting,
)
from saliency_core.maskers.area_prior import SCORE_PRIORS
from saliency_core.maskers.toggles import TOGGLE
from saliency_core.objectives import PER_IMAGE_TO_TRAINING, conditional_masker_loss
from saliency_core.train.conditional_area import AreaValidation, CleanCache, area_training_step, draw_area
from saliency_core.options import option
from saliency_core.train.config import LR_SCHEDULES, ConfigError, TrainConfig
from saliency_core.train.distributed import all_reduce_mean_, cleanup
from saliency_core.train.masker import ProgressFn, Trainer

#: Objectives with the masked-in (kept) term and with the masked-out (removed) term (from the one vocabulary).
HAS_IN = tuple(o for o, terms in PER_IMAGE_TO_TRAINING.items() if "in" in terms.split("+"))
HAS_OUT = tuple(o for o, terms in PER_IMAGE_TO_TRAINING.items() if "out" in terms)
_UNUSED = {"objective": "objectives", "lambda_tv": "tv_low / tv_high / tv_zero_prob", "infiller": "infillers",
           "infiller_options": "infillers", "gumbel": None, "final_upsample": "upsample_factors"}


_OUT_TERMS = ("out-class", "out-entropy")


@dataclass(frozen=True)
class ConditionalTrainConfig(TrainConfig):
    """A conditional-masker run: the FIX training config plus the toggle space drawn from per image.

    Defaults: the whole space (ssr / sdr / both; gray, blur, noise, random-image; TV 0 with probability
    0.2, else log-uniform over 1e-4 .. 0.1; upsampling 1, 2, 4, 8), fix_lite0's area lambdas (an area-weight range,
    ``area_low`` < ``area_high``, makes the area weight an input too), lr and batch,
    a cosine learning-rate decay, the smoothing stage over 3 levels, and ``sdr`` trained with MinClass:
    the shipped ``conditional_lite0``'s recipe.
    """

    out: str = option("runs/conditional", help="run folder (config, logs, state, masker)")
    lambda_area_in: float = option(1.5, low=0.0, help="lambda_M,in (conditional area, masked-in)")
    lambda_area_out: float | None = option(15.0, low=0.0, help="lambda_M,out (conditional area, masked-out)")
    batch_size: int = option(16, low=1, help="images per step and process")
    lr: float = option(2e-3, low=0.0, help="masker Adam learning rate")
    lr_schedule: str = option("cosine", choices=LR_SCHEDULES, help=(
        "step (lr_step_epochs, lr_gamma) or cosine (the rate falls from lr to near 0 over the epochs, one "
        "cosine step per epoch; without it a short run's figures swing from epoch to epoch)"))
    objectives: tuple[str, ...] = option(CONDITION_OBJECTIVES, kind="list", choices=CONDITION_OBJECTIVES, help=(
        "objectives drawn per image: ssr (masked-in), sdr (masked-out), both"))
    out_term: str = option("out-class", choices=_OUT_TERMS, help=(
        "the masked-out term of both: out-class (MinClass, as the per-image both; with it the default "
        "setting removes the evidence as fix_lite0 does) or out-entropy (Phang's MaxEnt, fix_lite0's term)"))
    ssr_area_scale: float = option(1.0, low=0.0, low_open=True, high=100.0, help=(
        "a factor on lambda_area_in for ssr alone (ssr has no masked-out area term; at 1 it keeps nearly the "
        "whole image, FIDO's SSR keeps a small region with an area weight like SDR's)"))
    ssr_area_balance: bool = option(False, help=(
        "also divide an ssr image's loss by ssr_area_scale (when above 1): its minimiser is unchanged, its "
        "share of the gradient stays that of the other objectives"))
    sdr_out_term: str = option("out-class", choices=_OUT_TERMS, help=(
        "the masked-out term of sdr alone: out-class (MinClass: FIDO's SDR, the per-image sdr) or out-entropy"))
    infillers: tuple[str, ...] = option(CONDITION_INFILLERS, kind="list", choices=CONDITION_INFILLERS, help=(
        "infillers drawn per image for the masked composites"))
    tv_low: float = option(DEFAULT_TV_RANGE[0], low=0.0, low_open=True, high=TV_MAX, help=(
        "smallest non-zero TV weight drawn (log-uniform)"))
    tv_high: float = option(DEFAULT_TV_RANGE[1], low=0.0, low_open=True, high=TV_MAX, help=(
        "largest TV weight drawn"))
    tv_zero_prob: float = option(0.2, low=0.0, high=1.0, help="probability that an image's TV weight is 0")
    upsample_factors: tuple[int, ...] = option(UPSAMPLE_FACTORS, kind="list", choices=UPSAMPLE_FACTORS, help=(
        "upsampling factors s drawn per image (the mask is made at 1/s of input/4)"))
    area_low: float = option(1.0, low=AREA_ENCODING_SPAN[0], high=AREA_ENCODING_SPAN[1], help=(
        "smallest area weight drawn (log-uniform; it multiplies lambda_area_in and lambda_area_out); "
        "area_low = area_high (the default): the area weight is not an input. 0.25 .. 4 was measured: "
        "docs/conditional-masker.md"))
    area_high: float = option(1.0, low=AREA_ENCODING_SPAN[0], high=AREA_ENCODING_SPAN[1], help=(
        "largest area weight drawn"))
    area_loss_balance: bool = option(True, help=(
        "divide each image's loss by its area weight when above 1 (as by 1 + tv_loss_scale x TV), so large "
        "area weights do not drown the others' gradients"))
    area_one_prob: float = option(0.5, low=0.0, high=1.0, help=(
        "probability that an image's area weight is exactly 1 (the lambdas as given), so the default "
        "setting keeps its share of the training"))
    tv_loss_scale: float = option(50.0, low=0.0, high=1e6, help=(
        "each image's loss is divided by 1 + tv_weight x this (about the TV of a trained mask), so settings "
        "with a large TV term do not drown the others' gradients; each setting's minimiser is unchanged (0: off)"))
    hidden_channels: int = option(64, low=1, help="channels of the masker's decoder")
    smooth_levels: int = option(3, low=0, help=(
        "the masker's smoothing stage: logits mixed with copies averaged over 2 .. 2^n cells, weights "
        "from the setting (0: none)"))
    objective_branches: str = option("shared", choices=OBJECTIVE_BRANCHES, help=(
        "what each objective has of its own in the masker: shared (one decoder), head (its own last conv) or "
        "decoder (its own reducers and head); the objective is a FiLM input in every case"))
    default_objective: str = option(TOGGLE["objective"].default, choices=CONDITION_OBJECTIVES, help=(
        "the masker's default setting: objective"))
    default_infiller: str = option(TOGGLE["infiller"].default, choices=CONDITION_INFILLERS, help=(
        "the masker's default setting: infiller"))
    default_tv_weight: float = option(TOGGLE["tv_weight"].default, low=0.0, high=TV_MAX, help=(
        "the masker's default setting: TV weight"))
    default_upsample: int = option(TOGGLE["upsample"].default, choices=UPSAMPLE_FACTORS, help=(
        "the masker's default setting: upsampling"))
    default_area_weight: float = option(TOGGLE["area_weight"].default, low=AREA_ENCODING_SPAN[0],
                                        high=AREA_ENCODING_SPAN[1], help="the masker's default setting: area weight")
    target_area_low: float = option(0.0, low=0.0, high=1.0, help=(
        "smallest target area (fraction of the image) drawn, log-uniformly; with target_area_high > 0 the "
        "area is an input and the mask a region of exactly that area (saliency_core/maskers/area.py)"))
    target_area_high: float = option(0.0, low=0.0, high=1.0, help="largest target area drawn (0: not an input)")
    default_area: float = option(0.2, low=0.0, high=1.0, help="the masker's default setting: target area")
    temperature: float = option(0.05, low=0.0, low_open=True, high=1.0, help=(
        "area masks: sigmoid((z - q_a) / T) of the standardised scores z"))
    area_hidden: int = option(64, low=1, help="channels of the area decoder's hidden 3x3 layer")
    grad_temperature: float = option(0.0, low=0.0, help=(
        "area masks: the mask's gradient as if its temperature were this (straight-through; 0: off); the "
        "masks themselves stay at temperature"))
    resolution_divisor: int = option(4, choices=(1, 2, 4, 8), help=(
        "the mask is made at input/d before upsampling"))
    reward_log_weight: float = option(0.1, low=0.0, help=(
        "area masks: weight of -log p (keep) / -log(1 - p) (remove) added to the probability reward"))
    lambda_sorted_area: float = option(1.0, low=0.0, help=(
        "area masks: weight of the sorted area loss (Fong et al. 2019)"))
    cache_clean: bool = option(True, help=(
        "area masks without augmentation: compute each image's clean activations and logits once"))
    area_gradcam: bool = option(True, help="area masks: score Grad-CAM's top-a regions in the per-epoch validation "
                                           "too")
    score_prior: str = option("none", choices=SCORE_PRIORS, help=(
        "area masks: cam (the scores start from the class activation map of the image's top-1, the decoder "
        "learning a correction: step 0 is CAM's top-a region) or none"))

    def validate(self) -> None:
        super().validate()
        base = {f.name: f for f in dataclasses.fields(TrainConfig)}
        for name, instead in _UNUSED.items():
            f = base[name]
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            if name == "objective":
                default = "in+out-entropy"
            if getattr(self, name) != default:
                raise ConfigError(f"{name} is drawn per image in conditional training"
                                  + (f"; set {instead} instead" if instead else " (not supported)"))
        if self.mode != "fix":
            raise ConfigError("conditional training is FIX only (mode fix): its classifier stays frozen")
        if not 0 < self.tv_low <= self.tv_high <= TV_MAX:
            raise ConfigError(f"need 0 < tv_low <= tv_high <= {TV_MAX:g}, got {self.tv_low:g} .. {self.tv_high:g}")
        lo, hi = AREA_ENCODING_SPAN
        if not lo <= self.area_low <= self.area_high <= hi:
            raise ConfigError(f"need {lo:g} <= area_low <= area_high <= {hi:g}, got {self.area_low:g} .. "
                              f"{self.area_high:g}")
        if self.target_area_high > 0:
            if not 0 < self.target_area_low <= self.target_area_high < 1:
                raise ConfigError(f"need 0 < target_area_low <= target_area_high < 1, got {self.target_area_low:g} .. "
                                  f"{self.target_area_high:g}")
            if self.area_low != self.area_high:
                raise ConfigError("an area-conditioned masker has its area set by target_area_low/high; leave the "
                                  "area weight range (area_low/area_high) at one value")
        if self.score_prior != "none" and not self.target_area_high > 0:
            raise ConfigError("score_prior is for area-conditioned maskers (set target_area_low/high)")
        try:
            self.masker_config([1] * max(self.stages))
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    def infillers_in_use(self) -> list[tuple[str, dict[str, Any]]]:
        """Each infiller of the drawn space, with its default options (a step fills with any of them)."""
        return [(name, {}) for name in self.infillers]

    def masker_config(self, stage_channels: list[int]) -> ConditionalMaskerConfig:
        """The masker's architecture and trained space (what its checkpoint records)."""
        return ConditionalMaskerConfig(
            stages=self.stages, hidden_channels=self.hidden_channels, stage_channels=list(stage_channels),
            smooth_levels=self.smooth_levels, objective_branches=self.objective_branches,
            objectives=self.objectives, infillers=self.infillers, upsample_factors=self.upsample_factors,
            tv_low=self.tv_low, tv_high=self.tv_high, tv_zero=self.tv_zero_prob > 0,
            area_low=self.area_low, area_high=self.area_high,
            default_objective=self.default_objective, default_infiller=self.default_infiller,
            default_tv_weight=self.default_tv_weight, default_upsample=self.default_upsample,
            default_area_weight=self.default_area_weight, resolution_divisor=self.resolution_divisor,
            **(dict(target_area_low=self.target_area_low, target_area_high=self.target_area_high,
                    default_area=self.default_area, temperature=self.temperature, area_hidden=self.area_hidden,
                    score_prior=self.score_prior)
               if self.target_area_high > 0 else {}))

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        for k in ("objectives", "infillers", "upsample_factors"):
            d[k] = list(d[k])
        return d


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

    def build_masker(self) -> torch.nn.Module:
        masker = ConditionalMasker(self.cfg.masker_config(self.classifier.stage_channels))
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

    clean_cache: CleanCache | None = None
    area_validation: AreaValidation | None = None

    def training_step(self, x01: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
        if self.cfg.target_area_high > 0:
            if self.clean_cache is None and self.cfg.cache_clean and not self.cfg.augment:
                self.clean_cache = CleanCache()
            return area_training_step(self, x01, y, draw_settings, HAS_IN, HAS_OUT)
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
        in_rows = [i for i, s in enumerate(settings) if s.objective in HAS_IN]
        out_rows = [i for i, s in enumerate(settings) if s.objective in HAS_OUT]
        parts = []
        if in_rows:
            parts.append(composite(x[in_rows], m[in_rows], self._fills(x, m, settings, in_rows, seed)))
        if out_rows:
            parts.append(composite(x[out_rows], 1 - m[out_rows], self._fills(x, 1 - m, settings, out_rows, seed + 1)))
        with self.autocast():
            logits = self.classifier(torch.cat(parts)).float()
        li, lo = logits[:len(in_rows)], logits[len(in_rows):]
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
        if self.cfg.target_area_high > 0 and self.dist.is_main and loader is not None:
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
