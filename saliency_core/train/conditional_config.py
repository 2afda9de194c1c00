"""``ConditionalTrainConfig``: a run of the conditional masker (``saliency train conditional``), without torch.

The toggle space a run draws from per image (objectives, infillers, TV weights, upsampling factors, area weights,
target areas) and the masker's default setting, each field declared with :func:`~saliency_core.options.option`; the
vocabularies and ranges are the one declaration's (:data:`saliency_core.maskers.toggles.TOGGLE`). Declared apart
from the trainer (:mod:`saliency_core.train.conditional`) so that ``saliency train conditional --help`` imports no
torch.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from saliency_core.maskers.toggles import TOGGLE
from saliency_core.options import option
from saliency_core.train.config import LR_SCHEDULES, ConfigError, TrainConfig
from saliency_core.vocabulary import OBJECTIVE_BRANCHES, SCORE_PRIORS

if TYPE_CHECKING:
    from saliency_core.maskers.conditional import ConditionalMaskerConfig

#: The vocabularies and ranges of the condition, from the one declaration (as saliency_core/maskers/conditional.py).
CONDITION_OBJECTIVES = TOGGLE["objective"].choices
CONDITION_INFILLERS = TOGGLE["infiller"].choices
UPSAMPLE_FACTORS = TOGGLE["upsample"].choices
TV_MAX = TOGGLE["tv_weight"].high
DEFAULT_TV_RANGE = TOGGLE["tv_weight"].trained
AREA_ENCODING_SPAN = (TOGGLE["area_weight"].low, TOGGLE["area_weight"].high)
#: TrainConfig's fields a conditional run draws per image (or does not support), and what to set instead.
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
    area_context: int = option(0, low=0, high=4, help=(
        "residual dilated 3x3 layers after the area decoder's hidden layer (dilation 2, 4, ..; 0: none)"))
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
    prior_features: int = option(0, low=0, high=1024, help=(
        "area masks with score_prior cam: channels the decoder reads from the CAM's terms w_t,c * head_c (0: the "
        "stages alone)"))
    teacher: tuple[str, ...] | None = option(None, kind="list", help=(
        "area masks: teacher files (python -m saliency_core.train.teacher) of per-image extremal regions of the "
        "training photos; their ssr / sdr rows also learn the teacher's region (none: the reward alone)"))
    reward_weight: float = option(1.0, low=0.0, high=1e3, help=(
        "area masks: weight of the probability reward; 0 (with a teacher): distil only, no classifier pass over the "
        "masked images (a step costs the masker alone), every ssr / sdr row taught, objectives drawn among those"))
    teacher_weight: float = option(1.0, low=0.0, high=1e3, help=(
        "area masks: weight of the teacher term (binary cross-entropy of the region, per image)"))
    teacher_share: float = option(0.5, low=0.0, high=1.0, help=(
        "area masks: share of the ssr / sdr rows drawn at a teacher area with gray fill (the teacher's setting)"))
    teacher_temperature: float = option(0.25, low=0.0, low_open=True, high=10.0, help=(
        "area masks: the teacher term's temperature on the standardised scores (a dense gradient over the image)"))

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
        if self.teacher and (not self.target_area_high > 0 or self.augment):
            raise ConfigError("teacher is for area-conditioned maskers trained without augmentation (its regions are "
                              "keyed by each training photo's pixels)")
        if self.reward_weight == 0 and not self.teacher:
            raise ConfigError("reward_weight 0 trains on the teacher alone: give --teacher files")
        if self.score_prior != "none" and not self.target_area_high > 0:
            raise ConfigError("score_prior is for area-conditioned maskers (set target_area_low/high)")
        try:
            self.masker_config([1] * max(self.stages), 1)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    def infillers_in_use(self) -> list[tuple[str, dict[str, Any]]]:
        """Each infiller of the drawn space, with its default options (a step fills with any of them)."""
        return [(name, {}) for name in self.infillers]

    def masker_config(self, stage_channels: list[int], head_channels: int = 0) -> ConditionalMaskerConfig:
        """The masker's architecture and trained space (what its checkpoint records)."""
        from saliency_core.maskers.conditional import ConditionalMaskerConfig

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
                    area_context=self.area_context,
                    score_prior=self.score_prior, prior_features=self.prior_features,
                    head_channels=head_channels if self.prior_features else 0)
               if self.target_area_high > 0 else {}))

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        for k in ("objectives", "infillers", "upsample_factors", "teacher"):
            d[k] = list(d[k]) if d[k] is not None else None
        return d
