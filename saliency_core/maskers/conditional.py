"""A loss-conditional masker: one network that takes the objective, infiller, TV weight, upsampling (and the area
weight) as inputs.

Dosovitskiy & Djolonga ("You Only Train Once", ICLR 2020): instead of one masker per setting, train one
masker f(x, setting) on settings drawn per sample, the setting entering as an input. Here the setting is
encoded as a 13-vector (one-hot objective, one-hot infiller, a "TV is 0" flag and the log TV weight,
one-hot upsampling factor; a 14th entry, the log area weight, when the masker was trained over area weights)
that an MLP turns into FiLM scales and shifts (Perez et al. 2018) of the decoder's features, and a linear map
turns into the weights of a smoothing stage:

    each stage -> 1x1 conv (c) -> BN -> ReLU -> bilinear to input/4 -> concat -> FiLM -> 3x3 conv -> logits
    -> [smoothing: sum_k w_k(setting) * logits averaged over 2^k cells, k = 0..smooth_levels]
    -> average-pool the logits by s -> sigmoid -> nearest upsampling to the input

which is Phang et al.'s masker with its features modulated by the setting: at one fixed setting the FiLM is a
constant and, without the smoothing stage (``smooth_levels`` 0, the older checkpoints), the network is exactly the
Phang masker. FiLM alone did not learn the TV weight (masks 3-5 % smoother from TV 0 to 0.1, where a dedicated
masker is 9x smoother): per-channel gains cannot smooth a mask spatially; the smoothing stage can.
Deeper decoders (a FiLM'd 1x1 or 3x3 layer of 64 channels before the head) trained worse at this budget, at
every setting and as dedicated maskers alike, and the 3x3 ones cost 1.7x a forward.

``objective_branches`` gives each objective its own head ("head") or its own reducers and head ("decoder"), the
objective still a FiLM input: the objectives want masks of very different sizes, and in one shared decoder what
pulls one objective's masks pulls the others' (docs/conditional-masker.md). Upsampling s makes the mask at 1/s of
the masker's resolution (Gupta et al.'s coarse masks: blocks of 4s pixels). The checkpoint records the settings
it was trained over; a setting outside them is refused with one line naming the range
(:meth:`ConditionalMaskerConfig.check_setting`).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from saliency_core.errors import OptionError
from saliency_core.maskers.area import AreaDecoder, encode_target_area, threshold_at_area, upsample_scores
from saliency_core.maskers.area_prior import add_prior, attach_prior, prior_for
from saliency_core.maskers.base import check_stages, mapping, register_masker_kind
from saliency_core.maskers.toggles import TOGGLE, Setting
from saliency_core.maskers.toggles import log_position as _log_span
from saliency_core.objectives import PER_IMAGE_OBJECTIVES
from saliency_core.options import check_options, option
from saliency_core.vocabulary import OBJECTIVE_BRANCHES, SCORE_PRIORS

#: The vocabularies of the condition, from the one declaration (saliency_core/maskers/toggles.py).
CONDITION_OBJECTIVES = TOGGLE["objective"].choices  # ssr, sdr, both
assert CONDITION_OBJECTIVES == PER_IMAGE_OBJECTIVES
CONDITION_INFILLERS = TOGGLE["infiller"].choices
UPSAMPLE_FACTORS = TOGGLE["upsample"].choices
#: TV weights are encoded as log10 over this span (mapped to -1 .. 1); 0 has its own flag.
TV_ENCODING_SPAN = (1e-5, 1.0)
#: The largest TV weight a conditional masker can be trained over (masks are flat well before it).
TV_MAX = TOGGLE["tv_weight"].high
#: The TV range the shipped conditional masker is trained over (and the dashboard's slider spans).
DEFAULT_TV_RANGE = TOGGLE["tv_weight"].trained
#: Area weights (multipliers of the masker's area penalties) are encoded as log2 over this span (mapped to -1 .. 1).
AREA_ENCODING_SPAN = (TOGGLE["area_weight"].low, TOGGLE["area_weight"].high)
#: The area-weight range that was measured (docs/conditional-masker.md) and that the dashboard's slider spans.
DEFAULT_AREA_RANGE = TOGGLE["area_weight"].trained
#: Scale of the smoothing stage's mixing logits (see :class:`ConditionalMasker`).
SMOOTH_GAIN = 8.0
CONDITION_SIZE = len(CONDITION_OBJECTIVES) + len(CONDITION_INFILLERS) + 2 + len(UPSAMPLE_FACTORS)


def _subset(values, allowed: tuple, name: str) -> tuple:
    if not isinstance(values, (list, tuple)) or not values:
        raise OptionError(f"conditional masker config: option '{name}' must be a non-empty list, got {values!r}")
    bad = [v for v in values if v not in allowed]
    if bad or len(set(values)) != len(values):
        raise OptionError(f"conditional masker config: option '{name}' must be distinct values from "
                          f"{', '.join(map(str, allowed))}, got {list(values)}")
    return tuple(values)


@dataclass
class ConditionalMaskerConfig:
    """Architecture of a conditional masker and the toggle space it was trained over (stored in checkpoints)."""

    stages: tuple[int, ...] = option((4, 5), help="the classifier stages it reads (1 = shallow .. n = deep)")
    hidden_channels: int = option(64, help="channels of the decoder", low=1, high=1024)
    resolution_divisor: int = option(4, help="the mask is made at input/d (before upsampling s)", choices=(1, 2, 4, 8))
    stage_channels: list[int] = option(help="channels of each classifier stage (filled from the classifier)",
                                       default_factory=list)
    film_hidden: int = option(64, help="width of the MLP that maps the setting to FiLM scales and shifts",
                              low=1, high=1024)
    smooth_levels: int = option(0, help="a last decoder stage: the logits mixed with copies averaged over 2, 4, .. "
                                        "2^n cells, the mixing weights read from the setting (0: none)",
                                low=0, high=4)
    objective_branches: str = option("shared", help="what each objective has of its own: shared (one decoder, the "
                                                    "objective a FiLM input like the others), head (its own last 3x3 "
                                                    "conv) or decoder (its own reducers and head)",
                                     choices=OBJECTIVE_BRANCHES)
    objectives: tuple[str, ...] = field(default=CONDITION_OBJECTIVES)
    infillers: tuple[str, ...] = field(default=CONDITION_INFILLERS)
    upsample_factors: tuple[int, ...] = field(default=UPSAMPLE_FACTORS)
    tv_low: float = option(DEFAULT_TV_RANGE[0], help="smallest non-zero TV weight trained over", low=0.0,
                           low_open=True, high=TV_MAX)
    tv_high: float = option(DEFAULT_TV_RANGE[1], help="largest TV weight trained over", low=0.0, low_open=True,
                            high=TV_MAX)
    tv_zero: bool = option(True, help="whether a TV weight of 0 was trained over")
    area_low: float = option(1.0, help="smallest area weight trained over (area_low = area_high: not an input; the "
                                       "older checkpoints)", low=AREA_ENCODING_SPAN[0], high=AREA_ENCODING_SPAN[1])
    area_high: float = option(1.0, help="largest area weight trained over", low=AREA_ENCODING_SPAN[0],
                              high=AREA_ENCODING_SPAN[1])
    default_objective: str = option(TOGGLE["objective"].default, help="the setting used when none is given",
                                    choices=CONDITION_OBJECTIVES)
    default_infiller: str = option(TOGGLE["infiller"].default, help="the setting used when none is given",
                                   choices=CONDITION_INFILLERS)
    default_tv_weight: float = option(TOGGLE["tv_weight"].default, help="the setting used when none is given",
                                      low=0.0, high=TV_MAX)
    default_upsample: int = option(TOGGLE["upsample"].default, help="the setting used when none is given",
                                   choices=UPSAMPLE_FACTORS)
    default_area_weight: float = option(TOGGLE["area_weight"].default, help="the setting used when none is given",
                                        low=AREA_ENCODING_SPAN[0], high=AREA_ENCODING_SPAN[1])
    target_area_low: float = option(0.0, help="smallest target area (fraction of the image) trained over; 0 (the "
                                              "older checkpoints): the area is not an input", low=0.0, high=1.0)
    target_area_high: float = option(0.0, help="largest target area trained over", low=0.0, high=1.0)
    default_area: float = option(0.0, help="the setting used when none is given: target area", low=0.0, high=1.0)
    temperature: float = option(0.05, help="an area-conditioned mask is sigmoid((z - q_a) / T) of the standardised "
                                           "scores z: T", low=0.0, low_open=True, high=1.0)
    area_hidden: int = option(64, help="channels of the area decoder's hidden 3x3 layer", low=1, high=1024)
    area_context: int = option(0, help="residual dilated 3x3 layers after the area decoder's hidden layer (dilation 2, "
                                       "4, ..): a wider view of the grid (0: none, the older checkpoints)",
                               low=0, high=4)
    score_prior: str = option("none", help="area masks: the scores start from the explained class's activation map "
                                           "(cam; saliency_core/maskers/area_prior.py) or from nothing (none)",
                              choices=SCORE_PRIORS)
    prior_features: int = option(0, help="area masks with the cam prior: channels the decoder reads from the CAM's "
                                         "terms w_t,c * head_c (where the class evidence is, and of what kind; 0: "
                                         "it reads the stages alone, the older checkpoints)", low=0, high=1024)
    head_channels: int = option(0, help="channels of the classifier's pooled map (set from the classifier when "
                                        "prior_features is on)", low=0, high=1 << 16)

    def __post_init__(self) -> None:
        check_options(self, "conditional masker config")
        self.stages = check_stages(self.stages, self.stage_channels, "conditional masker config")
        self.objectives = _subset(self.objectives, CONDITION_OBJECTIVES, "objectives")
        self.infillers = _subset(self.infillers, CONDITION_INFILLERS, "infillers")
        self.upsample_factors = _subset(self.upsample_factors, UPSAMPLE_FACTORS, "upsample_factors")
        if self.tv_low > self.tv_high:
            raise OptionError(f"conditional masker config: tv_low {self.tv_low:g} is above tv_high {self.tv_high:g}")
        if self.area_low > self.area_high:
            raise OptionError(f"conditional masker config: area_low {self.area_low:g} is above area_high "
                              f"{self.area_high:g}")
        if self.prior_features and (self.score_prior != "cam" or not self.head_channels):
            raise OptionError("conditional masker config: prior_features needs score_prior 'cam' and head_channels "
                              "(the classifier's pooled map)")
        if self.score_prior != "none" and not self.target_conditioned:
            raise OptionError("conditional masker config: score_prior 'cam' is for area-conditioned maskers only")
        if self.target_conditioned and not 0 < self.target_area_low <= self.target_area_high < 1:
            raise OptionError(f"conditional masker config: need 0 < target_area_low <= target_area_high < 1, got "
                              f"{self.target_area_low:g} .. {self.target_area_high:g}")
        try:
            self.check_setting(self.default_setting)
        except OptionError as exc:
            raise OptionError(f"conditional masker config: the default setting is outside its trained space: {exc}") \
                from None

    # ------------------------------------------------------------------ the trained space
    @property
    def default_setting(self) -> Setting:
        return Setting(self.default_objective, self.default_infiller, self.default_tv_weight, self.default_upsample,
                       self.default_area_weight, self.default_area if self.target_conditioned else None)

    @property
    def target_conditioned(self) -> bool:
        """Whether the target area is an input (and the mask a region of exactly that area)."""
        return self.target_area_high > 0

    @property
    def area_conditioned(self) -> bool:
        """Whether the area weight is an input (a range was trained over), adding one entry to the code."""
        return self.area_low < self.area_high

    @property
    def branches(self) -> int:
        """Decoder branches: one per trained objective unless the decoder is shared."""
        return 1 if self.objective_branches == "shared" else len(self.objectives)

    @property
    def condition_size(self) -> int:
        return CONDITION_SIZE + int(self.area_conditioned) + 2 * int(self.target_conditioned)

    def target_area_text(self) -> str:
        return f"{self.target_area_low:g} .. {self.target_area_high:g}"

    def area_range_text(self) -> str:
        return f"{self.area_low:g}" if not self.area_conditioned else f"{self.area_low:g} .. {self.area_high:g}"

    def tv_range_text(self) -> str:
        span = f"{self.tv_low:g}" if self.tv_low == self.tv_high else f"{self.tv_low:g} .. {self.tv_high:g}"
        return f"0 or {span}" if self.tv_zero else span

    def check_setting(self, setting: Setting) -> Setting:
        """The setting, or one :class:`OptionError` line naming what this masker was trained over."""
        if setting.objective not in self.objectives:
            raise OptionError(f"objective '{setting.objective}' is outside what this masker was trained over "
                              f"({', '.join(self.objectives)})")
        if setting.infiller not in self.infillers:
            raise OptionError(f"infiller '{setting.infiller}' is outside what this masker was trained over "
                              f"({', '.join(self.infillers)})")
        if setting.upsample not in self.upsample_factors:
            raise OptionError(f"upsample {setting.upsample} is outside what this masker was trained over "
                              f"({', '.join(map(str, self.upsample_factors))})")
        tv = setting.tv_weight
        inside = (tv == 0 and self.tv_zero) or (
            math.isfinite(tv) and self.tv_low * (1 - 1e-9) <= tv <= self.tv_high * (1 + 1e-9))
        if not inside:
            raise OptionError(f"tv_weight {tv:g} is outside the range this masker was trained over "
                              f"({self.tv_range_text()})")
        a = setting.area_weight
        if not (math.isfinite(a) and self.area_low * (1 - 1e-9) <= a <= self.area_high * (1 + 1e-9)):
            raise OptionError(f"area_weight {a:g} is outside the range this masker was trained over "
                              f"({self.area_range_text()})")
        if setting.area is not None:
            t = setting.area
            if not self.target_conditioned:
                raise OptionError(f"area {t:g}: this masker was not trained over areas (its masks have no set area)")
            if not (math.isfinite(t) and self.target_area_low * (1 - 1e-9) <= t <= self.target_area_high * (1 + 1e-9)):
                raise OptionError(f"area {t:g} is outside the range this masker was trained over "
                                  f"({self.target_area_text()})")
        return setting

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in ("stages", "objectives", "infillers", "upsample_factors"):
            d[k] = list(d[k])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ConditionalMaskerConfig":
        return cls(**{k: v for k, v in mapping(d, "conditional masker config").items()
                      if k in cls.__dataclass_fields__})


def encode_settings(settings: list[Setting], device: torch.device | None = None, area: bool = False,
                    target_area: bool = False) -> torch.Tensor:
    """B x 13 condition codes: one-hot objective, one-hot infiller, [tv == 0, log TV in -1..1], one-hot upsample;
    with ``area``, then the log2 area weight in -1..1; with ``target_area``, then the target area's two entries
    (:func:`saliency_core.maskers.area.encode_target_area`)."""
    rows = []
    for s in settings:
        tv = float(s.tv_weight)
        log_tv = 0.0 if tv <= 0 else _log_span(tv, TV_ENCODING_SPAN)
        rows.append([float(s.objective == o) for o in CONDITION_OBJECTIVES]
                    + [float(s.infiller == i) for i in CONDITION_INFILLERS]
                    + [float(tv <= 0), log_tv]
                    + [float(s.upsample == u) for u in UPSAMPLE_FACTORS]
                    + ([_log_span(float(s.area_weight), AREA_ENCODING_SPAN, math.log2)] if area else [])
                    + (encode_target_area(s.area if s.area is not None else 0.0) if target_area else []))
    return torch.tensor(rows, dtype=torch.float32, device=device)


class FiLM(nn.Module):
    """Per-channel scale and shift from a code: h * (1 + gamma(c)) + beta(c); starts as the identity."""

    def forward(self, h: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        return h * (1 + gamma[:, :, None, None]) + beta[:, :, None, None]


class ConditionalMasker(nn.Module):
    """``masker(stages, input_size, settings=None) -> B x 1 x H x W`` masks in [0, 1] (None: the default setting)."""

    def __init__(self, config: ConditionalMaskerConfig) -> None:
        super().__init__()
        if not config.stage_channels:
            raise ValueError("ConditionalMaskerConfig.stage_channels must be set from the classifier")
        self.config = config
        c = config.hidden_channels

        def reducers() -> nn.ModuleList:
            return nn.ModuleList(
                nn.Sequential(nn.Conv2d(config.stage_channels[s - 1], c, kernel_size=1, bias=False),
                              nn.BatchNorm2d(c), nn.ReLU(inplace=True))
                for s in config.stages)

        n = c * len(config.stages)
        #: training only (not stored): gradients of an area mask as if at this temperature (straight-through)
        self.grad_temperature = 0.0
        if config.target_conditioned:  # the area decoder (saliency_core.maskers.area): reducers + AreaDecoder
            self.reducers = reducers()
            if config.prior_features:  # the CAM's terms, reduced as a stage is
                self.prior_reducer = nn.Sequential(
                    nn.Conv2d(config.head_channels, config.prior_features, kernel_size=1, bias=False),
                    nn.BatchNorm2d(config.prior_features), nn.ReLU(inplace=True))
                nn.init.normal_(self.prior_reducer[0].weight, 0.0, math.sqrt(2.0 / config.prior_features))
            self.area_decoder = AreaDecoder(n + config.prior_features, config.area_hidden, config.branches,
                                            config.condition_size, config.film_hidden, config.area_context)
            if config.score_prior == "cam":
                attach_prior(self, self.area_decoder.heads, config.branches)
            for m in self.reducers.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / m.out_channels))
            return
        # branch 0 (the only one when shared) keeps the names of the older checkpoints; the other objectives'
        # branches (config.objectives[1:]) have their own head, and with "decoder" their own reducers
        self.reducers = reducers()
        self.out = nn.Conv2d(n, 1, kernel_size=3, padding=1)
        extra = config.branches - 1
        self.branch_reducers = nn.ModuleList(reducers() for _ in range(extra if config.objective_branches == "decoder"
                                                                       else 0))
        self.branch_out = nn.ModuleList(nn.Conv2d(n, 1, kernel_size=3, padding=1) for _ in range(extra))
        self.film = FiLM()
        self.condition = nn.Sequential(nn.Linear(config.condition_size, config.film_hidden), nn.ReLU(inplace=True),
                                       nn.Linear(config.film_hidden, 2 * n))
        # the smoothing stage's mixing logits: a linear map of the code, read from a parameter scaled by
        # SMOOTH_GAIN so that Adam at the masker's rate can move the mixture across the softmax in a short run
        self.smooth = nn.Linear(config.condition_size, config.smooth_levels + 1) if config.smooth_levels else None
        for m in self.modules():  # as the Phang masker ...
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / (m.kernel_size[0] * m.kernel_size[1] * m.out_channels)))
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        # ... but for a head 10x smaller: a first mask of saturated speckles met TV weights up to 0.1 with a gradient
        # that drove every logit far below 0, where the sigmoid has none left (a masker died so at mask 0.00)
        for head in (self.out, *self.branch_out):
            head.weight.data.mul_(0.1)
        nn.init.zeros_(self.condition[-1].weight)  # FiLM starts as the identity: training shapes it
        nn.init.zeros_(self.condition[-1].bias)
        if self.smooth is not None:  # starts at the unsmoothed logits (weight ~0.9), for every setting alike
            nn.init.zeros_(self.smooth.weight)
            nn.init.zeros_(self.smooth.bias)
            self.smooth.bias.data[0] = math.log(9 * config.smooth_levels) / SMOOTH_GAIN

    def mask_logits(self, stages: list[torch.Tensor], input_size: tuple[int, int], code: torch.Tensor,
                    prior: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (area-conditioned: scores) at input/d (B x 1 x h x w) under the condition codes
        (B x ``config.condition_size``); ``prior`` the CAM's terms when ``prior_features`` is on."""
        h, w = input_size
        d = self.config.resolution_divisor
        size = (max(1, h // d), max(1, w // d))
        if self.config.target_conditioned:
            inputs = [r(stages[s - 1].detach()) for r, s in zip(self.reducers, self.config.stages)]
            if self.config.prior_features:
                if prior is None or prior.dim() != 4 or prior.shape[1] != self.config.head_channels:
                    raise OptionError("this masker reads the class activation map's terms: pass prior= from "
                                      "saliency_core.maskers.area_prior.prior_for")
                inputs.append(self.prior_reducer(prior.detach().to(inputs[0].dtype)))
            feats = torch.cat([F.interpolate(f, size=size, mode="bilinear", align_corners=False) for f in inputs],
                              dim=1)
            return self.area_decoder(feats, code, self.branch_of(code))
        gamma, beta = self.condition(code).chunk(2, dim=1)

        def features(reducers: nn.ModuleList, rows: torch.Tensor | None) -> torch.Tensor:
            # the reducers see the whole batch (their batch norm's statistics are those of every branch), the
            # costlier upsampling only the branch's rows
            reduced = [r(stages[s - 1].detach()) for r, s in zip(reducers, self.config.stages)]
            return torch.cat([F.interpolate(f if rows is None else f.index_select(0, rows), size=size,
                                            mode="bilinear", align_corners=False) for f in reduced], dim=1)

        if self.config.branches == 1:
            logits = self.out(self.film(features(self.reducers, None), gamma, beta))
        else:  # each image through its objective's branch (only the branches the batch needs are run)
            branch = self.branch_of(code)
            shared = features(self.reducers, None) if self.config.objective_branches == "head" else None
            logits = code.new_zeros(code.shape[0], 1, *size)
            for b in branch.unique().tolist():
                rows = (branch == b).nonzero()[:, 0]
                feats = (shared.index_select(0, rows) if shared is not None
                         else features(self.reducers if b == 0 else self.branch_reducers[b - 1], rows))
                head = self.out if b == 0 else self.branch_out[b - 1]
                logits = logits.index_copy(0, rows, head(self.film(feats, gamma.index_select(0, rows),
                                                                   beta.index_select(0, rows))))
        if self.smooth is None:
            return logits
        return mix_smoothed(logits, torch.softmax(SMOOTH_GAIN * self.smooth(code), dim=1))

    def branch_of(self, code: torch.Tensor) -> torch.Tensor:
        """Each code row's branch: the index of its objective among the trained ones (0 when shared)."""
        if self.config.branches == 1:
            return code.new_zeros(code.shape[0], dtype=torch.long)
        columns = [CONDITION_OBJECTIVES.index(o) for o in self.config.objectives]
        return code[:, columns].argmax(dim=1)

    def forward(self, stages: list[torch.Tensor], input_size: tuple[int, int],
                settings: list[Setting] | Setting | None = None, prior: torch.Tensor | None = None,
                with_scores: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Masks B x 1 x H x W of each row's setting. An area-conditioned masker with ``with_scores`` returns
        (masks, the scores before the threshold at the area): training puts a teacher term on the scores."""
        batch = stages[0].shape[0]
        if settings is None:
            settings = self.config.default_setting
        if isinstance(settings, Setting):
            settings = [settings] * batch
        if len(settings) != batch:
            raise ValueError(f"{len(settings)} settings for a batch of {batch}")
        cfg = self.config
        if cfg.target_conditioned:
            settings = [s if s.area is not None else Setting(s.objective, s.infiller, s.tv_weight, s.upsample,
                                                             s.area_weight, cfg.default_area) for s in settings]
        code = encode_settings(settings, stages[0].device, area=cfg.area_conditioned,
                               target_area=cfg.target_conditioned)
        logits = self.mask_logits(stages, input_size, code, prior)
        if not cfg.target_conditioned:
            return upsample_masks(logits, [s.upsample for s in settings], input_size)
        scores = upsample_scores(logits, [s.upsample for s in settings], input_size)
        if cfg.score_prior == "cam":  # prior: B x 1 x h x w class activation maps (area_prior.prior_for)
            scores = add_prior(scores, prior, self.prior_log_scale[self.branch_of(code)])
        areas = torch.tensor([float(s.area) for s in settings], device=scores.device)
        masks = threshold_at_area(scores, areas, cfg.temperature, self.grad_temperature)
        return (masks, scores) if with_scores else masks


def mix_smoothed(logits: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """sum_k weights[:, k] * (the logits averaged over 2^k x 2^k cells, bilinearly back to their size).

    ``logits`` B x 1 x h x w, ``weights`` B x (n+1) rows summing to 1: a per-image choice of how smooth the mask
    is, which a TV penalty asks for and FiLM's per-channel gains cannot give by themselves."""
    out = weights[:, :1, None, None] * logits
    for k in range(1, weights.shape[1]):
        coarse = F.avg_pool2d(logits, kernel_size=2 ** k, ceil_mode=True)
        out = out + weights[:, k:k + 1, None, None] * F.interpolate(coarse, size=logits.shape[-2:], mode="bilinear",
                                                                   align_corners=False)
    return out


def upsample_masks(logits: torch.Tensor, factors: list[int], input_size: tuple[int, int]) -> torch.Tensor:
    """sigmoid of the logits average-pooled by each row's factor s, nearest-upsampled to ``input_size``."""
    out = logits.new_empty(logits.shape[0], 1, *input_size)
    for s in sorted(set(factors)):
        rows = [i for i, f in enumerate(factors) if f == s]
        index = torch.tensor(rows, device=logits.device)
        z = logits.index_select(0, index)
        if s > 1:
            z = F.avg_pool2d(z, kernel_size=s, ceil_mode=True)
        out[index] = F.interpolate(torch.sigmoid(z), size=input_size, mode="nearest")
    return out


def _explain(masker: ConditionalMasker, classifier: nn.Module, stages: list[torch.Tensor], head: torch.Tensor | None,
             size: tuple[int, int], labels: list[int], setting: Setting | None = None) -> tuple[torch.Tensor, bool]:
    setting = masker.config.check_setting(setting or masker.config.default_setting)
    prior = prior_for(masker, classifier, head, labels, stages[0].shape[0])
    return masker(stages, size, setting, prior=prior)[:, 0], False


def fixed_options(config: dict) -> dict[str, object]:
    """The toggles a checkpoint was trained at one value only, with that value (e.g. ``area_weight`` 1 for a masker
    not trained over area weights): a user interface need not offer them. Empty for an invalid config."""
    try:
        cfg = ConditionalMaskerConfig.from_dict(config)
    except (OptionError, ValueError, TypeError):
        return {}
    fixed: dict[str, object] = {}
    for name, values in (("objective", cfg.objectives), ("infiller", cfg.infillers),
                         ("upsample", cfg.upsample_factors)):
        if len(values) == 1:
            fixed[name] = values[0]
    if cfg.tv_low == cfg.tv_high and not cfg.tv_zero:
        fixed["tv_weight"] = cfg.tv_low
    if not cfg.area_conditioned:
        fixed["area_weight"] = cfg.area_low
    if not cfg.target_conditioned:
        fixed["area"] = None  # no area input: the masks have no set area
    return fixed


register_masker_kind("conditional", summary="a masker conditioned on the objective, infiller, TV weight and upsampling",
                     config=ConditionalMaskerConfig, explain=_explain, takes_setting=True,
                     fixed_options=fixed_options)(
    lambda cfg: ConditionalMasker(ConditionalMaskerConfig.from_dict(cfg)))
