"""The conditional masker's toggle space, declared once.

Each toggle (objective, infiller, TV weight, upsampling, area weight, target area) is one :class:`Toggle` in
:data:`TOGGLES`: its vocabulary or widest range, the range a masker is trained over by default, its default value
and its help. Everything else derives from it: :class:`Setting` (one point of the space, its fields in this order),
the trained-space fields and defaults of ``ConditionalMaskerConfig`` (what a checkpoint records) and of
``ConditionalTrainConfig`` (what a run draws from), the ``conditional-masker`` method's options, and
:func:`option_space`, the ranges and choices of one *loaded* checkpoint that a user interface draws its widgets
from. A discrete toggle's vocabulary fixes the order of its one-hot code: never reorder, only append.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from saliency_core.options import Option


@dataclass(frozen=True)
class Toggle:
    """One input of the conditional masker: a choice among ``choices`` or a number in ``low`` .. ``high``."""

    name: str
    default: Any
    help: str
    type: Any
    choices: tuple[Any, ...] = ()
    low: float | None = None      # the widest range a masker may be trained over (and its code spans)
    high: float | None = None
    trained: tuple[float, float] | None = None  # the range trained over by default (and a slider's span)
    log: bool = False
    zero: bool = False            # 0 is a value of its own, outside the log range (the TV weight)
    optional: bool = False        # None: the checkpoint's own default (the target area)


TOGGLES: tuple[Toggle, ...] = (
    Toggle("objective", "both", "what the mask does: ssr keeps the class with the region alone, sdr removes it with "
                                "the region, both does both (FIDO's names)", str, choices=("ssr", "sdr", "both")),
    Toggle("infiller", "gray", "what fills the removed pixels of the masked images the training loss judged", str,
           choices=("gray", "blur", "noise", "random-image")),
    Toggle("tv_weight", 1e-3, "the total-variation weight of the mask in training (sum of squared neighbour "
                              "differences at 224 px)", float, low=0.0, high=1.0, trained=(1e-4, 0.1), log=True,
           zero=True),
    Toggle("upsample", 1, "the mask is made at 1/s of the masker's grid and upsampled", int, choices=(1, 2, 4, 8)),
    Toggle("area_weight", 1.0, "a factor on the area penalties the masker was trained with (1: fix_lite0's)", float,
           low=1 / 16, high=16.0, trained=(0.25, 4.0), log=True),
    Toggle("area", None, "the region's fraction of the image: the mask is a region of exactly this area", float,
           low=0.0, high=1.0, trained=(0.05, 0.6), optional=True),
)
TOGGLE: dict[str, Toggle] = {t.name: t for t in TOGGLES}


def _describe(self: Any) -> str:
    """The setting in words (area weight and area only when they are inputs)."""
    parts = [f"objective={self.objective}", f"infiller={self.infiller}", f"tv_weight={self.tv_weight:g}",
             f"upsample={self.upsample}"]
    if self.area_weight != 1:
        parts.append(f"area_weight={self.area_weight:g}")
    if self.area is not None:
        parts.append(f"area={self.area:g}")
    return ", ".join(parts)


#: One point of the toggle space (frozen; fields in the order of :data:`TOGGLES`): what a dedicated masker would
#: have been trained with. ``area`` None: the checkpoint's default area (or none, for a masker without the input).
Setting = dataclasses.make_dataclass(
    "Setting", [(t.name, t.type if not t.optional else (t.type | None), dataclasses.field(default=t.default))
                for t in TOGGLES],
    frozen=True, namespace={"describe": _describe, "__module__": __name__,
                            "__doc__": "One point of the conditional masker's toggle space (see TOGGLES)."})


def option_space(config: Any, declared: dict[str, "Option"]) -> dict[str, "Option"]:
    """Each toggle's option as the checkpoint with ``config`` (a ``ConditionalMaskerConfig``; not imported here:
    conditional.py imports this module) takes it: choices, range and default from what it was
    trained over (help and label from ``declared``, the method's own declarations). A toggle the checkpoint was
    trained at one value only is marked ``shown=False`` (no other value would be accepted)."""
    replace = dataclasses.replace
    cfg = config
    out: dict[str, Option] = {}
    for name, values, default in (("objective", cfg.objectives, cfg.default_objective),
                                  ("infiller", cfg.infillers, cfg.default_infiller),
                                  ("upsample", cfg.upsample_factors, cfg.default_upsample)):
        out[name] = replace(declared[name], choices=tuple(values), default=default, shown=len(values) > 1)
    tv_fixed = cfg.tv_low == cfg.tv_high and not cfg.tv_zero
    out["tv_weight"] = replace(declared["tv_weight"], low=0.0 if cfg.tv_zero else cfg.tv_low, high=cfg.tv_high,
                               default=cfg.default_tv_weight, shown=not tv_fixed)
    out["area_weight"] = replace(declared["area_weight"], low=cfg.area_low, high=cfg.area_high,
                                 default=cfg.default_area_weight, shown=cfg.area_conditioned)
    if cfg.target_conditioned:
        out["area"] = replace(declared["area"], low=cfg.target_area_low, high=cfg.target_area_high, low_open=False,
                              default=cfg.default_area, optional=False, shown=True)
    else:
        out["area"] = replace(declared["area"], default=None, shown=False)
    return out


def log_position(value: float, span: tuple[float, float], log=math.log10) -> float:
    """log(value) mapped from ``span`` to -1 .. 1 (clamped): how a continuous toggle enters the code."""
    lo, hi = (log(v) for v in span)
    return 2 * (min(max(log(value), lo), hi) - lo) / (hi - lo) - 1
