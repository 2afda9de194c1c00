"""The options of per-image mask optimisation, declared once (help, choices, ranges), and the papers' presets."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from saliency_core.infill.base import infiller_entry
from saliency_core.methods.base import MethodError
from saliency_core.objectives import PER_IMAGE_OBJECTIVES as OBJECTIVES
from saliency_core.options import check_options, config_to_dict, option, seed_option

SCORES = ("log-odds", "log-prob", "prob")
PARAMETRIZATIONS = ("continuous", "concrete")
AVERAGES = ("score", "probability")
UPSAMPLE_FACTORS = (1, 2, 4, 8)
#: The papers' regularisers are sums over a 224 x 224 mask.
REFERENCE_SIDE = 224
MIN_CONCRETE_SAMPLES = 4


class OptimizeError(MethodError):
    """A bad optimisation option (the message names the option and what is allowed)."""


@dataclass
class OptimizeConfig:
    """Every option of the mask optimisation engine (shared by the CLI, the dashboard and presets).

    Defaults are the fast FIDO preset (``fido``); see :data:`PRESETS` for the others.
    """

    objective: str = option("ssr", choices=OBJECTIVES, main=True,
                            help=("ssr keeps the smallest sufficient region: the label must survive on the kept part "
                                  "alone (masked-in). sdr removes the smallest destroying region: the label must "
                                  "disappear when it is removed (masked-out); both asks for both, as Phang et al. do. "
                                  "(Chang, Creager, Goldenberg & Duvenaud)"))
    score: str = option("log-odds", choices=SCORES,
                        help=("What the optimisation pushes up or down: the label's log-odds (FIDO), its log "
                              "probability (Gupta et al.) or its probability (Fong & Vedaldi). Log-odds keep a gradient"
                              " even when the classifier is already sure. (Chang, Creager, Goldenberg & Duvenaud)"))
    average: str = option("score", choices=AVERAGES,
                          help=("How the random samples of one step are combined: the mean of their scores (FIDO) or "
                                "the score of their mean probability (Gupta et al., who average the softmax over random"
                                " reference images). The second treats the fill as a distribution to integrate out. "
                                "(Gupta, Saunshi, Yu, Lyu & Arora)"))
    parametrization: str = option("concrete", choices=PARAMETRIZATIONS, aliases=("parameterization",),
                                  help=("Continuous: the mask is a sigmoid of a learned map (Fong & Vedaldi, Gupta et "
                                        "al.); concrete: each pixel is dropped by a relaxed Bernoulli draw (FIDO). "
                                        "Concrete masks come out nearly binary. "
                                        "(Chang, Creager, Goldenberg & Duvenaud)"))
    temperature: float = option(0.1, low=0.0, low_open=True, high=10.0,
                                help=("Temperature of the binary Concrete relaxation used to sample near-binary masks. "
                                      "Lower values give harder masks and noisier gradients. (Chang, Creager, "
                                      "Goldenberg & Duvenaud)"))
    samples: int = option(4, low=1, high=256,
                          help=("How many sampled masks or infills are averaged at each step. More samples give "
                                "smoother gradients at a proportional cost. (Chang, Creager, Goldenberg & Duvenaud)"))
    infiller: str = option("blur", kind="infiller", main=True, label="infiller (while optimising)",
                           help=("What replaces the removed pixels while this mask is optimised: gray, a blur, noise, "
                                 "the local mean, other photos or inpainting. The mask found depends on this choice, "
                                 "which is why FIDO compares several. (Chang, Creager, Goldenberg & Duvenaud)"))
    infiller_options: dict[str, Any] = option(help="options of that infiller, e.g. {\"sigma\": 10} for blur.",
                                              default_factory=dict, shown=False)
    reference_dir: str | None = option(None, shown=False,
                                       help="random-image: folder of reference photos (default: scikit-image's)")
    l1_weight: float = option(1e-3, low=0.0, high=1.0, log=True, main=True, label="L1 weight", aliases=("l1",),
                              help=("Weight of the penalty on the mask's area, which keeps the explanation small. "
                                    "Raising it asks for the smallest region that still explains the label. (Fong & "
                                    "Vedaldi)"))
    tv_weight: float = option(0.01, low=0.0, high=100.0, log=True, main=True, label="TV weight", aliases=("tv",),
                              help=("Weight of the total-variation penalty, which makes the mask smooth and blob-like. "
                                    "Too little gives speckled adversarial masks; too much blurs the object's outline. "
                                    "(Fong & Vedaldi)"))
    tv_power: float = option(2.0, low=1.0, high=4.0,
                             help=("The exponent of the total-variation penalty |grad m|^p. Fong & Vedaldi use 3, FIDO "
                                   "and Gupta et al. use 2. (Fong & Vedaldi)"))
    upsample: int = option(4, choices=UPSAMPLE_FACTORS, main=True, label="upsampling factor s", aliases=("s",),
                           help=("The mask is optimised at a coarse resolution and upsampled by this factor. Coarser "
                                 "masks resist adversarial pixel patterns; finer ones follow the outline. (Fong & "
                                 "Vedaldi)"))
    resolution: int | None = option(None, low=16, high=4096,
                                    help=("Short side of the copy of the image the classifier sees while the mask is "
                                          "optimised (the -paper presets use the full input). A smaller copy is much "
                                          "faster on a CPU at a small cost in detail. (Chang, Creager, Goldenberg & "
                                          "Duvenaud)"))
    steps: int = option(36, low=1, high=5000, main=True,
                        help=("How many optimisation steps (or integration steps, for Integrated Gradients) are run. "
                              "More steps give a more settled result at a proportional cost in time. (Chang, Creager, "
                              "Goldenberg & Duvenaud)"))
    lr: float = option(0.2, low=0.0, low_open=True, high=10.0, label="learning rate",
                       help=("Step size of the Adam optimiser that fits the mask. FIDO and Gupta et al. use 0.05. "
                             "(Chang, Creager, Goldenberg & Duvenaud)"))
    lr_decay: bool = option(True,
                            help=("Decay the learning rate linearly to zero over the steps, as FIDO does. It lets the "
                                  "mask settle at the end. (Chang, Creager, Goldenberg & Duvenaud)"))
    warmup: float = option(0.1, low=0.0, high=1.0,
                           help=("Fraction of the steps over which the area and TV weights ramp up from zero. It lets "
                                 "the class term find the object before the mask is asked to shrink. (Chang, Creager, "
                                 "Goldenberg & Duvenaud)"))
    init: float = option(0.5, low=0.0, low_open=True, high=0.999,
                         help=("The mask value every pixel starts from (0.5 in Gupta et al.'s code). Starting high "
                               "favours keeping evidence, starting low favours small masks. (Gupta, Saunshi, Yu, Lyu & "
                               "Arora)"))
    seed: int = seed_option("the Concrete draws and the reference photos")
    early_stop_tol: float = option(0.01, low=0.0, high=1.0,
                                   help=("A label stops when its smoothed loss improves by less than this fraction; 0 "
                                         "turns early stopping off. It saves time on easy labels without changing the "
                                         "method. (Chang, Creager, Goldenberg & Duvenaud)"))
    early_stop_patience: int = option(10, low=1, high=1000,
                                      help=("How many steps in a row without improvement stop a label. Larger values "
                                            "stop later and more safely. (Chang, Creager, Goldenberg & Duvenaud)"))
    max_batch: int = option(64, low=1, high=4096, shown=False,
                            help="images per classifier call; more labels are split into chunks.")
    preview_every: int = option(5, low=0, high=1000, shown=False,
                                help="send the current masks to the progress callback every N steps.")

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`OptimizeError` naming the first bad option."""
        try:
            check_options(self, "optimisation")
            infiller_entry(self.infiller)
        except ValueError as exc:
            raise OptimizeError(str(exc)) from None
        if not isinstance(self.infiller_options, dict):
            raise OptimizeError(f"infiller_options must be a dict, got {self.infiller_options!r}")
        if self.parametrization == "concrete" and self.samples < MIN_CONCRETE_SAMPLES:
            raise OptimizeError(f"the concrete parametrisation needs samples >= {MIN_CONCRETE_SAMPLES} per step, "
                                f"got {self.samples}")
        if self.reference_dir is not None and not isinstance(self.reference_dir, str):
            raise OptimizeError(f"reference_dir must be a folder path, got {self.reference_dir!r}")

    @property
    def effective_samples(self) -> int:
        """Samples actually drawn per step: 1 when nothing is random (continuous mask, deterministic fill)."""
        if self.parametrization == "continuous" and infiller_entry(self.infiller).traits.deterministic:
            return 1
        return int(self.samples)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (a tensor option, such as a reference pool, is described by its shape)."""
        d = config_to_dict(self)
        d["infiller_options"] = {k: f"<tensor {tuple(v.shape)}>" if torch.is_tensor(v) else v
                                 for k, v in self.infiller_options.items()}
        return d


#: Presets named after the papers. The fast ones fit the CPU budget (see the README); the ``-paper``
#: ones are the papers' full settings (meant for a GPU).
PRESETS: dict[str, dict[str, Any]] = {
    "fido": dict(parametrization="concrete", samples=4, temperature=0.1, objective="ssr", score="log-odds",
                 average="score", infiller="blur", l1_weight=1e-3, tv_weight=0.01, upsample=4, steps=36,
                 lr=0.2, lr_decay=True, warmup=0.1, resolution=None),
    "fido-paper": dict(parametrization="concrete", samples=8, temperature=0.1, objective="ssr", score="log-odds",
                       average="score", infiller="local-mean", l1_weight=1e-3, tv_weight=0.01, upsample=4,
                       steps=300, lr=0.05, lr_decay=True, warmup=0.1, resolution=None, early_stop_tol=0.0),
    "meaningful-perturbation": dict(parametrization="continuous", samples=1, objective="sdr", score="prob",
                                    average="score", infiller="blur", infiller_options={"sigma": 10.0},
                                    l1_weight=1e-4, tv_weight=0.01, tv_power=3.0, upsample=8, steps=100, lr=0.1,
                                    lr_decay=True, warmup=0.0, resolution=None),
    "meaningful-perturbation-paper": dict(parametrization="continuous", samples=1, objective="sdr", score="prob",
                                          average="score", infiller="blur", infiller_options={"sigma": 10.0},
                                          l1_weight=1e-4, tv_weight=0.01, tv_power=3.0, upsample=8, steps=500,
                                          lr=0.1, lr_decay=False, warmup=0.0, resolution=None, early_stop_tol=0.0),
    "gupta": dict(parametrization="continuous", samples=4, objective="ssr", score="log-prob", average="probability",
                  infiller="random-image", l1_weight=5e-4, tv_weight=0.01, upsample=4, steps=36, lr=0.2,
                  lr_decay=True, warmup=0.0, resolution=None),
    "gupta-paper": dict(parametrization="continuous", samples=10, objective="ssr", score="log-prob",
                        average="probability", infiller="random-image", l1_weight=2e-5, tv_weight=0.01, upsample=4,
                        steps=2000, lr=0.05, lr_decay=False, warmup=0.0, resolution=None, early_stop_tol=0.0),
}


def make_config(preset: str | None = None, **options: Any) -> OptimizeConfig:
    """A config from a preset name (or the defaults) with ``options`` overriding it; errors are clear."""
    from saliency_core.options import build_config, with_defaults

    if preset is not None and preset not in PRESETS:
        raise OptimizeError(f"unknown preset '{preset}' (choose from {', '.join(PRESETS)})")
    try:
        return build_config(OptimizeConfig, with_defaults(PRESETS[preset] if preset else {}, options),
                            what="optimisation")
    except OptimizeError:
        raise
    except ValueError as exc:
        raise OptimizeError(str(exc)) from None
