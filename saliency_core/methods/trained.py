"""Trained maskers as methods: one forward of the classifier, then the small masker head."""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from saliency_core.classifiers.base import Classifier, ClassifierOutput
from saliency_core.errors import OptionError
from saliency_core.maskers.area_prior import prior_for
from saliency_core.maskers.catalog import default_checkpoint
from saliency_core.maskers.checkpoint import CheckpointError, MaskerCheckpoint, load_masker
from saliency_core.maskers.conditional import (
    CONDITION_INFILLERS,
    CONDITION_OBJECTIVES,
    DEFAULT_AREA_RANGE,
    DEFAULT_TV_RANGE,
    UPSAMPLE_FACTORS,
    ConditionalMaskerConfig,
    Setting,
)
from saliency_core.maskers.toggles import TOGGLE
from saliency_core.maskers.toggles import option_space as _toggle_space
from saliency_core.methods.base import MethodResult, ProgressFn, register_method
from saliency_core.methods.optimize.config import OptimizeConfig
from saliency_core.options import Option, check_options, declared_options, option


@dataclass(frozen=True)
class MaskerOptions:
    checkpoint: str | None = option(None, kind="checkpoint", main=True,
                                    help=("The trained masker network that predicts the mask from the classifier's own "
                                          "activations (FIX) or from a co-trained classifier (CA). A checkpoint is tied"
                                          " to the classifier it was trained for, and one for another classifier is "
                                          "refused. (Phang, Park & Geras)"))

    def __post_init__(self) -> None:
        check_options(self, "method 'masker'")


@dataclass(frozen=True)
class LabelMaskerOptions:
    checkpoint: str | None = option(None, kind="checkpoint", main=True, checkpoint_kinds=("label",),
                                    help=("The trained masker network that predicts the mask from the classifier's own "
                                          "activations (FIX) or from a co-trained classifier (CA). A checkpoint is tied"
                                          " to the classifier it was trained for, and one for another classifier is "
                                          "refused. (Phang, Park & Geras)"))

    def __post_init__(self) -> None:
        check_options(self, "method 'label-masker'")


def _per_image(name: str) -> Option:
    """A per-image optimisation option's declaration (help, label, kind), so both show the same widget and help."""
    return next(o for o in declared_options(OptimizeConfig) if o.name == name)


_OBJECTIVE, _TV, _UPSAMPLE = _per_image("objective"), _per_image("tv_weight"), _per_image("upsample")
_INFILLER, _L1 = _per_image("infiller"), _per_image("l1_weight")


@dataclass(frozen=True)
class ConditionalMaskerOptions:
    checkpoint: str | None = option(None, kind="checkpoint", main=True, checkpoint_kinds=("conditional",),
                                    help=("A masker trained once over a space of objectives, infillers, TV weights "
                                          "and upsampling factors: it returns at once the mask a masker trained with "
                                          "the chosen setting would return. (Dosovitskiy & Djolonga; Phang, Park & "
                                          "Geras)"))
    # the toggles: defaults, choices and ranges from the one declaration (saliency_core/maskers/toggles.py); a
    # loaded checkpoint narrows them to what it was trained over (option_space)
    objective: str = option(TOGGLE["objective"].default, choices=CONDITION_OBJECTIVES, main=True,
                            label=_OBJECTIVE.label, help=_OBJECTIVE.help)
    infiller: str = option(TOGGLE["infiller"].default, choices=CONDITION_INFILLERS, main=True,
                           label="infiller (the masker was trained with)", help=_INFILLER.help)
    tv_weight: float = option(TOGGLE["tv_weight"].default, low=0.0, high=DEFAULT_TV_RANGE[1], log=True, main=True,
                              label=_TV.label, aliases=_TV.aliases,
                              help=_TV.help + " Here in the masker's training units (0.001: fix_lite0's).")
    upsample: int = option(TOGGLE["upsample"].default, choices=UPSAMPLE_FACTORS, main=True, label=_UPSAMPLE.label,
                           aliases=_UPSAMPLE.aliases,
                           help=_UPSAMPLE.help + " Here s = 1 is the masker's own grid (input / 4, or input / 8 for "
                                                 "an area-conditioned checkpoint).")
    area_weight: float = option(TOGGLE["area_weight"].default, low=DEFAULT_AREA_RANGE[0], high=DEFAULT_AREA_RANGE[1],
                                log=True, main=True, label="area weight",
                                help=_L1.help + " Here a factor on the area penalties the masker was trained with "
                                                "(1: fix_lite0's); a masker trained without it takes only 1.")
    area: float | None = option(TOGGLE["area"].default, low=TOGGLE["area"].low, high=TOGGLE["area"].high,
                                low_open=True, main=True, label="area",
                                help="The region's fraction of the image: the mask is a region of exactly this area "
                                     "where the objective puts it (Fong, Patrick & Vedaldi's extremal "
                                     "perturbations, amortised). Only for a checkpoint trained over areas; default: "
                                     "its own.")
    areas: tuple[float, ...] = option(help="extra areas whose masks come in the same batched masker pass "
                                           "(MethodResult.areas / area_masks), e.g. 0.05,0.1,0.2.",
                                      default_factory=tuple)

    def __post_init__(self) -> None:
        check_options(self, "method 'conditional-masker'")
        object.__setattr__(self, "areas", parse_areas(self.areas))

    @property
    def setting(self) -> Setting:
        return Setting(self.objective, self.infiller, self.tv_weight, self.upsample, self.area_weight, self.area)


def parse_areas(value: Any) -> tuple[float, ...]:
    """``areas`` from numbers or a comma-separated text (``-o areas=0.1,0.2``); OptionError in one line otherwise."""
    items = [v for v in value.replace(" ", "").split(",") if v] if isinstance(value, str) else value
    try:
        out = tuple(float(v) for v in items)
    except (TypeError, ValueError):
        out = ()
        items = None
    if items is None or not all(0 < a < 1 for a in out):
        raise OptionError(f"method 'conditional-masker': option 'areas' must be fractions in (0, 1) separated by "
                          f"commas, got {value!r}")
    return out


@register_method("masker", summary="trained masker network (Phang et al.; FIX or CA checkpoint)",
                 config=MaskerOptions, group="Trained masker", per_label=False, on_request=False,
                 in_comparison=True,
                 paper="Phang, Park & Geras (2020), Investigating and Simplifying Masking-based Saliency Methods for "
                       "Model Interpretability; Zolna, Geras & Cho (2020), Classifier-agnostic saliency map extraction",
                 cost=lambda cfg, k: 1.1)
class MaskerMethod:
    """Explains with a trained masker checkpoint; label-agnostic (one mask whatever the label).

    For a FIX checkpoint the masker reads the explained classifier's own activations (no extra
    forward). A CA checkpoint's masker reads its co-trained classifier, run once more. A per-label
    checkpoint gives one mask per label.
    """

    name = "masker"
    #: checkpoint kinds this method accepts (None: any)
    checkpoint_kinds: tuple[str, ...] | None = None
    default_kind = "phang"

    def __init__(self, options: MaskerOptions | LabelMaskerOptions | None = None) -> None:
        checkpoint = options.checkpoint if options is not None else None
        self.checkpoint = Path(checkpoint) if checkpoint else default_checkpoint(self.default_kind)
        self._loaded: dict[str, MaskerCheckpoint] = {}

    def load(self, classifier: Classifier) -> MaskerCheckpoint:
        key = classifier.identity
        if key not in self._loaded:
            ckpt = load_masker(self.checkpoint, classifier=classifier, device=classifier.device)
            if self.checkpoint_kinds is not None and ckpt.kind not in self.checkpoint_kinds:
                raise CheckpointError(f"{self.checkpoint.name} is a '{ckpt.kind}' masker checkpoint; the "
                                      f"{self.name} method needs one of kind {', '.join(self.checkpoint_kinds)} "
                                      "(use the 'masker' method for it)")
            self._loaded[key] = ckpt
        return self._loaded[key]

    @torch.no_grad()
    def __call__(self, classifier: Classifier, x: torch.Tensor, labels: list[int], clean: ClassifierOutput,
                 progress: ProgressFn | None = None) -> MethodResult:
        ckpt = self.load(classifier)
        stages, head = clean.stages, clean.head
        if ckpt.classifier is not classifier:
            own = ckpt.classifier.forward_features(x)
            stages, head = own.stages, own.head
        info = {"checkpoint": str(self.checkpoint), "masker_kind": ckpt.kind}
        setting = self.setting(ckpt)
        if setting is not None:
            info["setting"] = setting.describe()
        masks, per_label = ckpt.explain(stages, head, tuple(x.shape[-2:]), labels, setting=setting)
        return MethodResult(masks=masks, per_label=per_label, info=info)

    def setting(self, ckpt: MaskerCheckpoint) -> Setting | None:
        """The toggle setting to explain with (None: the checkpoint's default)."""
        return None


@register_method("label-masker", summary="label-conditioned masker: a sound mask per label in one pass",
                 config=LabelMaskerOptions, group="Trained masker", per_label=True, on_request=False,
                 in_comparison=True, available=lambda: default_checkpoint("label").exists(),
                 paper='Gupta, Saunshi, Yu, Lyu & Arora (2022), New Definitions and Evaluations for Saliency Methods',
                 cost=lambda cfg, k: 1.4)
class LabelMaskerMethod(MaskerMethod):
    """The per-label masker (checkpoint kind "label"); default: the shipped one."""

    name = "label-masker"
    checkpoint_kinds = ("label",)
    default_kind = "label"


@register_method("conditional-masker",
                 summary="one masker trained over objectives, infillers, TV and upsampling: toggle them live",
                 config=ConditionalMaskerOptions, group="Trained masker", per_label=False, on_request=False,
                 in_comparison=True, available=lambda: default_checkpoint("conditional").exists(),
                 takes_area=True, option_space=lambda options: conditional_option_space(options),
                 paper="Dosovitskiy & Djolonga (2020), You Only Train Once: Loss-Conditional Training of Deep "
                       "Networks; Phang, Park & Geras (2020); Gupta, Saunshi, Yu, Lyu & Arora (2022)",
                 cost=lambda cfg, k: 1.1)
class ConditionalMaskerMethod(MaskerMethod):
    """The conditional masker (checkpoint kind "conditional"): the setting is chosen at use, no retraining."""

    name = "conditional-masker"
    checkpoint_kinds = ("conditional",)
    default_kind = "conditional"

    def __init__(self, options: ConditionalMaskerOptions | None = None) -> None:
        super().__init__(options)
        self.options = options or ConditionalMaskerOptions()

    def setting(self, ckpt: MaskerCheckpoint) -> Setting | None:
        """The chosen setting; for a checkpoint without the area input, ``area`` is left out: its one map serves
        every area, a region at area a being its top a pixels (as for any method that takes no area)."""
        setting = self.options.setting
        if setting.area is not None and not ckpt.masker.config.target_conditioned:
            return replace(setting, area=None)
        return setting

    @torch.no_grad()
    def __call__(self, classifier: Classifier, x: torch.Tensor, labels: list[int], clean: ClassifierOutput,
                 progress: ProgressFn | None = None) -> MethodResult:
        if not self.options.areas:
            return super().__call__(classifier, x, labels, clean, progress)
        # the main mask and one per extra area in ONE batched masker pass
        ckpt = self.load(classifier)
        config = ckpt.masker.config
        if not config.target_conditioned:  # no area input: its one map serves every area (scorers take its top a)
            result = super().__call__(classifier, x, labels, clean, progress)
            result.info["area"] = "not an input of this checkpoint: its map's top a pixels are the region at a"
            result.areas = self.options.areas
            result.area_masks = result.masks[None].expand(len(self.options.areas), *result.masks.shape).clone()
            return result
        main = config.check_setting(self.options.setting)
        settings = [main] + [config.check_setting(replace(main, area=a)) for a in self.options.areas]
        own = clean if ckpt.classifier is classifier else ckpt.classifier.forward_features(x)
        stages = [s.expand(len(settings), *s.shape[1:]) for s in own.stages]
        prior = prior_for(ckpt.masker, ckpt.classifier, own.head, labels, len(settings))  # score_prior cam
        masks = ckpt.masker(stages, tuple(x.shape[-2:]), settings, prior=prior)[:, 0]
        info = {"checkpoint": str(self.checkpoint), "masker_kind": ckpt.kind, "setting": main.describe()}
        return MethodResult(masks=masks[:1], per_label=False, info=info, areas=self.options.areas,
                            area_masks=masks[1:, None])


def conditional_option_space(options: dict) -> dict[str, Option]:
    """The ``option_space`` trait of ``conditional-masker``: each toggle's choices, range and default as the chosen
    checkpoint (``options["checkpoint"]``, default the shipped one) was trained over; {} when it cannot be read (the
    method says why when it runs)."""
    from saliency_core.maskers.checkpoint import read_metadata

    path = (options or {}).get("checkpoint") or default_checkpoint("conditional")
    try:
        meta = read_metadata(path)
        if meta.get("kind") != "conditional":
            return {}
        config = ConditionalMaskerConfig.from_dict(meta["masker_config"])
    except (CheckpointError, OptionError, ValueError, TypeError, KeyError):
        return {}
    declared = {o.name: o for o in declared_options(ConditionalMaskerOptions)}
    return _toggle_space(config, declared)


def method_for_checkpoint(path: str | Path, method: str = "masker") -> str:
    """The trained-masker method that reads this checkpoint's kind (``method`` when it reads any kind it fits):
    ``saliency explain --checkpoint conditional.safetensors`` needs no ``--method``."""
    from saliency_core.maskers.checkpoint import read_metadata
    from saliency_core.methods.base import method_entries

    try:
        kind = read_metadata(path).get("kind", "phang")
    except CheckpointError:  # the method that loads it says what is wrong with the file, as for any checkpoint
        return method
    for name, entry in method_entries().items():
        spec = next((o for o in entry.options() if o.kind == "checkpoint"), None)
        if spec is not None and spec.checkpoint_kinds and kind in spec.checkpoint_kinds:
            return name
    return method
