"""Training configs (CLI flags, a YAML file or the dashboard): :class:`RunConfig`, the fields of every run (data,
outputs, classifier, CA pool, optimisation, runtime), and :class:`TrainConfig`, a Phang et al. masker's run. The
label masker's (:mod:`saliency_core.train.label_config`) and the conditional masker's configs extend ``RunConfig``.

Defaults are the papers' (Phang et al. 2020; Zolna et al., CASM): masker Adam lr 1e-3, weight decay
1e-4, gradient clip 10; classifier (CA) SGD lr 1e-3, momentum 0.9, weight decay 1e-4; stages 4-5;
lambda_M,in = 1, lambda_TV = 1e-3 and lambda_M,out = 10 (FIX) or 15 (CA); CA pool of 30 snapshots
with strategy L100 (p_latest 0.5, a snapshot every 100 classifier updates).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from saliency_core.options import OptionError, check_options, option
from saliency_core.vocabulary import GUMBEL_MODES, THINNING_STRATEGY_NAMES, UPSAMPLE_MODES

if TYPE_CHECKING:  # declaring the flags needs no torch: the vocabularies come from saliency_core.vocabulary
    from saliency_core.classifiers.pool import ThinningStrategy
    from saliency_core.objectives import MaskerObjective

MODES = ("fix", "ca")
AMP_MODES = ("auto", "off", "bf16", "fp16")
LR_SCHEDULES = ("step", "cosine", "linear")
CLASSIFIER_LOSSES = ("clean+out", "clean+in+out", "clean")
#: Paper names of the objective terms -> this project's names.
OBJECTIVE_ALIASES = {"maxclass": "in", "minclass": "out-class", "maxent": "out-entropy",
                     "in": "in", "out-class": "out-class", "out-entropy": "out-entropy"}
#: lambda_M,out of the best FIX and CA models of Phang et al.
DEFAULT_LAMBDA_AREA_OUT = {"fix": 10.0, "ca": 15.0}


class ConfigError(ValueError):
    """A training config that cannot run (the message names the field)."""


def normalize_objective(name: str) -> str:
    """``"MaxClass+MaxEnt"`` / ``"in+out-entropy"`` -> the canonical objective name."""
    from saliency_core.objectives import OBJECTIVES, PER_IMAGE_TO_TRAINING

    name = PER_IMAGE_TO_TRAINING.get(str(name).strip().lower(), name)  # FIDO's ssr / sdr / both
    parts = [p.strip().lower() for p in str(name).split("+") if p.strip()]
    try:
        terms = {OBJECTIVE_ALIASES[p] for p in parts}
    except KeyError:
        raise ConfigError(f"unknown objective '{name}' (use terms MaxClass, MinClass, MaxEnt "
                          f"or {', '.join(OBJECTIVES)})") from None
    canonical = "+".join(t for t in ("in", "out-class", "out-entropy") if t in terms)
    if canonical not in OBJECTIVES:
        raise ConfigError(f"objective '{name}' is not supported (choose from {', '.join(OBJECTIVES)})")
    return canonical


@dataclass(frozen=True)
class RunConfig:
    """What every training run has, whatever it trains (data, outputs, classifier, CA co-training, optimisation,
    runtime): the fields the one training loop (:mod:`saliency_core.train.loop`) reads. ``None`` means 'the default
    for this mode / not used'. Each kind of masker adds its own fields in a subclass.

    Each field is an :func:`~saliency_core.options.option` (default, help, range or choices): ``saliency train``'s
    flags are generated from them (:mod:`saliency_core.cli.flags`), and one coercer checks a value whether it comes
    from a flag, a YAML file or Python. Frozen: a changed run is ``dataclasses.replace(cfg, epochs=12)``."""

    # --- data ---
    data: str = option("../shared/data/imagenet-samples/labels.csv",
                       help="training images: a CSV (file,label) or an ImageFolder tree")
    val_data: str | None = option(None, help="separate validation images (default: a class-disjoint split of --data)")
    val_fraction: float = option(0.125, low=0.0, high=1.0, high_open=True,
                                 help="fraction of classes held out for validation")
    split_seed: int = option(0, low=0, help="seed of the class-disjoint split")
    few_shot_classes: int | None = option(None, low=1, help="few-shot: number of classes kept")
    few_shot_per_class: int | None = option(None, low=1, help="few-shot: images kept per class")
    few_shot_seed: int = option(0, low=0, help="seed of the few-shot subsampling")
    skip_bad_images: bool = option(False, help="leave out (and count) images that cannot be read, instead of "
                                               "refusing to start")
    only_correct: bool = option(False, help="train only on images the (initial) classifier classifies correctly")
    image_size: int = option(224, low=32, help="training crop size in pixels")
    augment: bool = option(True, help="random resized crop + horizontal flip")
    epoch_fraction: float = option(1.0, low=0.0, low_open=True, high=1.0,
                                   help="fraction of the batches seen per epoch (the papers use 0.2 on ImageNet)")
    val_every: int = option(1, low=1, help="validate on the held-out classes every N epochs (and after the last)")
    # --- output ---
    out: str = option("runs/masker", help="run folder (config, logs, state, masker)")
    tensorboard: bool = option(True, help="also log to TensorBoard (<out>/tb)")
    checkpoint_every: int = option(0, low=0, help="also save the resumable state every N steps (0: at the end of "
                                                  "each epoch only)")
    resume: bool = option(True, help="resume from <out>/state.pt when it exists")
    # --- classifier ---
    classifier: str = option("efficientnet_lite0", help="efficientnet_lite0, resnet50, timm:<arch> or "
                                                        "torchvision:<arch>")
    classifier_weights: str | None = option(None, help="local weights file")
    classifier_random_init: bool = option(False, help="random classifier (tests)")
    num_classes: int = option(1000, low=1, help="number of classes of the classifier")
    # --- what trains ---
    mode: str = option("fix", choices=MODES, help="fix (frozen classifier) or ca (classifier-agnostic)")
    pool_strategy: str = option("L100", choices=THINNING_STRATEGY_NAMES, help="CA thinning strategy (any case)")
    pool_size: int = option(30, low=1, help="CA pool size (snapshots kept on the CPU)")
    pool_save_every: int | None = option(None, low=1, help="override the strategy's snapshot period (classifier "
                                                           "updates)")
    pool_p_latest: float | None = option(None, low=0.0, high=1.0, help="override the probability that the latest "
                                                                       "classifier judges")
    classifier_lr: float = option(1e-3, low=0.0, help="CA classifier SGD learning rate")
    classifier_momentum: float = option(0.9, low=0.0, help="CA classifier SGD momentum")
    classifier_weight_decay: float = option(1e-4, low=0.0, help="CA classifier weight decay")
    # --- masker ---
    stages: tuple[int, ...] = option((4, 5), kind="list", low=1, help="classifier stages read (1 = shallowest), "
                                                                      "distinct")
    # --- optimisation ---
    epochs: int = option(8, low=1, help="number of epochs")
    batch_size: int = option(32, low=1, help="images per step and process")
    lr: float = option(1e-3, low=0.0, help="masker Adam learning rate")
    weight_decay: float = option(1e-4, low=0.0, help="masker Adam weight decay")
    grad_clip: float = option(10.0, low=0.0, help="masker gradient-norm clip (0: none)")
    lr_step_epochs: int = option(0, low=0, help="multiply both learning rates by lr_gamma every N epochs (0: never; "
                                                "papers: 20 of 60)")
    lr_gamma: float = option(0.1, low=0.0, low_open=True, high=1.0, help="learning-rate decay factor")
    lr_schedule: str = option("step", choices=LR_SCHEDULES, help=(
        "step (lr_step_epochs, lr_gamma), cosine (both rates fall from lr to near 0 over the epochs, one cosine step "
        "per epoch) or linear (the masker's rate falls linearly to 5 % over the run's steps, stepped every step)"))
    max_steps: int | None = option(None, low=1, help="stop after this many steps")
    # --- runtime ---
    seed: int = option(0, low=0, help="seed of everything random in the run")
    device: str = option("auto", help="cpu, cuda, cuda:N or auto")
    num_workers: int = option(0, low=0, help="data-loader worker processes")
    amp: str = option("auto", choices=AMP_MODES, help="mixed precision: auto (bf16 on CUDA), off, bf16, fp16")
    channels_last: bool | None = option(None, help="channels-last memory (default: on CUDA)")
    val_batch_size: int = option(64, low=1, help="validation batch size")
    threads: int | None = option(None, low=1, help="torch CPU threads (default: torch's choice)")

    def __post_init__(self) -> None:
        """Normalise, check every declared option (one coercer: :func:`~saliency_core.options.check_options`),
        fill the defaults that depend on other fields, then check what spans fields (:meth:`validate`)."""
        self._normalise()
        try:
            check_options(self, "training config")
        except OptionError as exc:
            raise ConfigError(str(exc)) from None
        self._derive()
        self.validate()

    def _set(self, name: str, value: Any) -> None:
        """Set a field while the frozen config is being built (``__post_init__`` only)."""
        object.__setattr__(self, name, value)

    def _normalise(self) -> None:
        """Spellings accepted before the options are checked (``l100`` -> ``L100``)."""
        self._set("pool_strategy", str(self.pool_strategy).upper())

    def _derive(self) -> None:
        """Defaults that depend on other fields (a subclass's)."""

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first bad field (the checks that span fields: each field's own
        range and choices are its option's)."""
        if len(set(self.stages)) != len(self.stages):
            raise ConfigError(f"stages must be distinct numbers >= 1, got {self.stages}")
        for name in batch_filled_infillers(self)[:1]:
            if self.batch_size < 2:
                raise ConfigError(f"infiller '{name}' fills each image from another image of its batch, so every "
                                  f"batch needs at least 2 images, but batch_size is {self.batch_size}")

    def infillers_in_use(self) -> list[tuple[str, dict[str, Any]]]:
        """(name, options) of each infiller a training step may fill with."""
        return []

    # --- derived settings ---
    def strategy(self) -> ThinningStrategy:
        from saliency_core.classifiers.pool import thinning_strategy

        return thinning_strategy(self.pool_strategy, self.pool_save_every, self.pool_p_latest)

    @property
    def trains_classifier(self) -> bool:
        return self.mode == "ca" and self.strategy().train_classifier

    # --- (de)serialisation ---
    def to_dict(self) -> dict[str, Any]:
        """Plain data (tuples as lists), as config.yaml and a checkpoint record it."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunConfig":
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ConfigError(f"unknown config keys: {', '.join(sorted(unknown))}")
        try:
            return cls(**d)
        except TypeError as exc:
            raise ConfigError(f"bad config: {exc}") from None

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_yaml(cls, text_or_path: str | Path) -> "RunConfig":
        """From YAML text or a ``.yaml``/``.yml`` file, or a ``.json`` one (YAML reads JSON; the label masker's runs
        wrote config.json before they wrote config.yaml). Unknown keys are refused."""
        import yaml

        text = str(text_or_path)
        p = Path(text)
        if "\n" not in text and p.suffix in (".yaml", ".yml", ".json"):
            if not p.exists():
                raise ConfigError(f"config file '{p}' does not exist")
            text = p.read_text()
        try:
            d = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"config is not valid YAML: {str(exc).splitlines()[0]}") from None
        if not isinstance(d, dict):
            raise ConfigError("config YAML must be a mapping of field: value")
        return cls.from_dict(d)


@dataclass(frozen=True)
class TrainConfig(RunConfig):
    """A Phang et al. masker's run (FIX or CA): the run's fields plus the masker's and its objective's."""

    classifier_loss: str = option("clean+out", choices=CLASSIFIER_LOSSES, help=(
        "CA classifier loss: clean+out (CASM eq. 8), clean+in+out (Phang's code) or clean"))
    # --- masker ---
    gumbel: str = option("off", choices=GUMBEL_MODES, help="Gumbel-Softmax mask: off, soft or hard")
    gumbel_temperature: float = option(0.1, low=0.0, low_open=True, help="Gumbel-Softmax temperature")
    final_upsample: str = option("nearest", choices=UPSAMPLE_MODES, help="mask upsampling: nearest or bilinear")
    # --- objective ---
    objective: str = option("in+out-entropy", help="in / out-class / out-entropy or pairs joined by + (aliases "
                                                   "MaxClass, MinClass, MaxEnt)")
    lambda_in: float = option(1.0, low=0.0, help="weight of the masked-in term")
    lambda_out: float = option(1.0, low=0.0, help="weight of the masked-out term(s)")
    lambda_area_in: float = option(1.0, low=0.0, help="lambda_M,in (conditional area, masked-in)")
    lambda_area_out: float | None = option(None, low=0.0, help="lambda_M,out (conditional area, masked-out); default "
                                                               "10 (fix) or 15 (ca)")
    lambda_tv: float = option(1e-3, low=0.0, help="total-variation weight")
    tv_border: float = option(0.0, low=0.0, help="TV border weight (Phang's code: 0.3)")
    infiller: str = option("gray", kind="infiller", help="infiller of the removed pixels during training")
    infiller_options: dict[str, Any] = option(default_factory=dict, help="infiller options")

    def _normalise(self) -> None:
        super()._normalise()
        self._set("objective", normalize_objective(self.objective))
        self._set("infiller_options", dict(self.infiller_options or {}))

    def _derive(self) -> None:
        super()._derive()
        if self.lambda_area_out is None:
            self._set("lambda_area_out", DEFAULT_LAMBDA_AREA_OUT[self.mode])

    def infillers_in_use(self) -> list[tuple[str, dict[str, Any]]]:
        """(name, options) of each infiller a training step may fill with."""
        return [(self.infiller, self.infiller_options)]

    def objective_config(self) -> MaskerObjective:
        from saliency_core.objectives import MaskerObjective

        return MaskerObjective(self.objective, self.lambda_in, self.lambda_out, self.lambda_area_in,
                               float(self.lambda_area_out), self.lambda_tv, self.tv_border)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "infiller_options": dict(self.infiller_options)}


def batch_filled_infillers(cfg: RunConfig) -> list[str]:
    """The infillers of a run that fill an image from the other images of its batch (a reference-pool infiller,
    random-image, given no pool of its own): every training batch must then hold at least 2 images."""
    from saliency_core.infill.base import INFILLERS

    return [name for name, options in cfg.infillers_in_use()
            if name in INFILLERS and INFILLERS.get(name).traits.reference_pool and options.get("pool") is None]


#: Fields whose change does not make a saved run incompatible with a resume.
RESUMABLE_CHANGES = frozenset({"epochs", "max_steps", "device", "num_workers", "resume", "tensorboard",
                               "checkpoint_every", "val_batch_size", "out", "threads", "skip_bad_images"})


#: Fields added after runs were saved, with the value an older run behaved as (so it still resumes).
ADDED_FIELD_DEFAULTS: dict[str, Any] = {"lr_schedule": "step", "sdr_out_term": "out-entropy", "smooth_levels": 0,
                                        "area_low": 1.0, "area_high": 1.0, "area_one_prob": 0.5,
                                        "default_area_weight": 1.0, "area_loss_balance": True,
                                        "ssr_area_scale": 1.0, "ssr_area_balance": False,
                                        "objective_branches": "shared", "out_term": "out-entropy",
                                        "teacher": None, "teacher_weight": 1.0, "teacher_share": 0.5,
                                        "teacher_temperature": 0.25}


def config_differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Names of fields that differ between two config dicts, ignoring :data:`RESUMABLE_CHANGES`."""
    keys = (set(a) | set(b)) - RESUMABLE_CHANGES
    a, b = {**ADDED_FIELD_DEFAULTS, **a}, {**ADDED_FIELD_DEFAULTS, **b}
    return sorted(k for k in keys if a.get(k) != b.get(k))
