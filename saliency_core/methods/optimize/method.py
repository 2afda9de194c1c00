"""Per-image optimisation as registered methods: one per paper preset, plus ``optimize`` with every option."""
from __future__ import annotations

from typing import Callable

import torch

from saliency_core.classifiers.base import Classifier, ClassifierOutput
from saliency_core.methods.base import MethodResult, ProgressFn, register_method
from saliency_core.methods.optimize.config import PRESETS, OptimizeConfig
from saliency_core.methods.optimize.engine import optimize_masks


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

    Options are the fields of :class:`OptimizeConfig`, so ``-o steps=100`` works on the command line;
    each paper's preset is a method of its own (its defaults). ``should_stop`` (a callable attribute)
    lets a UI cancel a run; ``show_progress`` draws a tqdm bar when no progress callback is given.
    """

    name = "optimize"

    def __init__(self, config: OptimizeConfig | None = None, preset: str | None = None) -> None:
        self.config = config or OptimizeConfig()
        self.preset = preset
        self.should_stop: Callable[[], bool] | None = None  # set by a UI to cancel a run
        self.show_progress = True  # a tqdm bar when no progress callback is given

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


PAPER_FIDO = 'Chang, Creager, Goldenberg & Duvenaud (2019), Explaining Image Classifiers by Counterfactual Generation'
PAPER_MP = 'Fong & Vedaldi (2017), Interpretable Explanations of Black Boxes by Meaningful Perturbation'
PAPER_GUPTA = 'Gupta, Saunshi, Yu, Lyu & Arora (2022), New Definitions and Evaluations for Saliency Methods'


def optimisation_cost(cfg: OptimizeConfig, labels: int) -> float:
    """Image passes of a run at most (early stopping may end it sooner): forward + backward of every sample of
    every step, for each objective and label."""
    objectives = 2 if cfg.objective == "both" else 1
    return 3.0 * cfg.steps * cfg.effective_samples * objectives * labels


def _register(name: str, summary: str, preset: str | None, paper: str) -> None:
    register_method(name, summary=summary, paper=paper, config=OptimizeConfig, defaults=PRESETS.get(preset or "", {}),
                    group="Per-image optimisation", per_label=True, on_request=True, cost=optimisation_cost,
                    in_comparison=False)(lambda config, _preset=preset: OptimizeMethod(config, _preset))


_register("fido", "FIDO (Chang et al.): Concrete dropout mask, SSR, log-odds; fast CPU defaults", "fido",
          PAPER_FIDO)
_register("fido-paper", "FIDO with the paper's settings (300 steps, 8 samples, local-mean infill)", "fido-paper",
          PAPER_FIDO)
_register("meaningful-perturbation", "Fong & Vedaldi: continuous mask, blur deletion (SDR), fast defaults",
          "meaningful-perturbation",
          PAPER_MP)
_register("meaningful-perturbation-paper", "Fong & Vedaldi with the paper's settings (500 steps)",
          "meaningful-perturbation-paper",
          PAPER_MP)
_register("gupta", "Gupta et al.: per-label masks, random-image infill; fast CPU defaults", "gupta",
          PAPER_GUPTA)
_register("gupta-paper", "Gupta et al. with the paper's settings (2000 steps, 10 references a step)", "gupta-paper",
          PAPER_GUPTA)
_register("optimize", "per-image mask optimisation with every option (defaults: the fido preset)", None,
          PAPER_FIDO)
