"""Training configs (CLI flags, a YAML file or the dashboard): :class:`RunConfig`, the fields of every run (data,
outputs, classifier, CA pool, optimisation, runtime), and :class:`TrainConfig`, a Phang et al. masker's run. The
label masker's (:mod:`saliency_core.train.label_config`) and the conditional masker's configs extend ``RunConfig``.

Defaults are the papers' (Phang et al. 2020; Zolna et al., CASM): masker Adam lr 1e-3, weight decay
1e-4, gradient clip 10; classifier (CA) SGD lr 1e-3, momentum 0.9, weight decay 1e-4; stages 4-5;
lambda_M,in = 1, lambda_TV = 1e-3 and lambda_M,out = 10 (FIX) or 15 (CA); CA pool of 30 snapshots
with strategy L100 (p_latest 0.5, a snapshot every 100 classifier updates).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the vocabularies are imported where they are checked: declaring flags needs no torch
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


@dataclass
class RunConfig:
    """What every training run has, whatever it trains (data, outputs, classifier, CA co-training, optimisation,
    runtime): the fields the one training loop (:mod:`saliency_core.train.loop`) reads. ``None`` means 'the default
    for this mode / not used'. Each kind of masker adds its own fields in a subclass."""

    # --- data ---
    data: str = field(default="../shared/data/imagenet-samples/labels.csv",
                      metadata={"help": "training images: a CSV (file,label) or an ImageFolder tree"})
    val_data: str | None = field(default=None, metadata={
        "help": "separate validation images (default: a class-disjoint split of --data)"})
    val_fraction: float = field(default=0.125, metadata={"help": "fraction of classes held out for validation"})
    split_seed: int = field(default=0, metadata={"help": "seed of the class-disjoint split"})
    few_shot_classes: int | None = field(default=None, metadata={"help": "few-shot: number of classes kept"})
    few_shot_per_class: int | None = field(default=None, metadata={"help": "few-shot: images kept per class"})
    few_shot_seed: int = field(default=0, metadata={"help": "seed of the few-shot subsampling"})
    skip_bad_images: bool = field(default=False, metadata={
        "help": "leave out (and count) images that cannot be read, instead of refusing to start"})
    only_correct: bool = field(default=False, metadata={
        "help": "train only on images the (initial) classifier classifies correctly"})
    image_size: int = field(default=224, metadata={"help": "training crop size in pixels"})
    augment: bool = field(default=True, metadata={"help": "random resized crop + horizontal flip"})
    epoch_fraction: float = field(default=1.0, metadata={
        "help": "fraction of the batches seen per epoch (the papers use 0.2 on ImageNet)"})
    # --- output ---
    out: str = field(default="runs/masker", metadata={"help": "run folder (config, logs, state, masker)"})
    tensorboard: bool = field(default=True, metadata={"help": "also log to TensorBoard (<out>/tb)"})
    checkpoint_every: int = field(default=0, metadata={
        "help": "also save the resumable state every N steps (0: at the end of each epoch only)"})
    resume: bool = field(default=True, metadata={"help": "resume from <out>/state.pt when it exists"})
    # --- classifier ---
    classifier: str = field(default="efficientnet_lite0", metadata={
        "help": "efficientnet_lite0, resnet50, timm:<arch> or torchvision:<arch>"})
    classifier_weights: str | None = field(default=None, metadata={"help": "local weights file"})
    classifier_random_init: bool = field(default=False, metadata={"help": "random classifier (tests)"})
    num_classes: int = field(default=1000, metadata={"help": "number of classes of the classifier"})
    # --- what trains ---
    mode: str = field(default="fix", metadata={"help": "fix (frozen classifier) or ca (classifier-agnostic)"})
    pool_strategy: str = field(default="L100", metadata={"help": "CA thinning strategy: F, L, FL, L100, L1000"})
    pool_size: int = field(default=30, metadata={"help": "CA pool size (snapshots kept on the CPU)"})
    pool_save_every: int | None = field(default=None, metadata={
        "help": "override the strategy's snapshot period (classifier updates)"})
    pool_p_latest: float | None = field(default=None, metadata={
        "help": "override the probability that the latest classifier judges"})
    classifier_lr: float = field(default=1e-3, metadata={"help": "CA classifier SGD learning rate"})
    classifier_momentum: float = field(default=0.9, metadata={"help": "CA classifier SGD momentum"})
    classifier_weight_decay: float = field(default=1e-4, metadata={"help": "CA classifier weight decay"})
    # --- masker ---
    stages: tuple[int, ...] = field(default=(4, 5), metadata={"help": "classifier stages read (1 = shallowest)"})
    # --- optimisation ---
    epochs: int = field(default=8, metadata={"help": "number of epochs"})
    batch_size: int = field(default=32, metadata={"help": "images per step and process"})
    lr: float = field(default=1e-3, metadata={"help": "masker Adam learning rate"})
    weight_decay: float = field(default=1e-4, metadata={"help": "masker Adam weight decay"})
    grad_clip: float = field(default=10.0, metadata={"help": "masker gradient-norm clip (0: none)"})
    lr_step_epochs: int = field(default=0, metadata={
        "help": "multiply both learning rates by lr_gamma every N epochs (0: never; papers: 20 of 60)"})
    lr_gamma: float = field(default=0.1, metadata={"help": "learning-rate decay factor"})
    lr_schedule: str = field(default="step", metadata={
        "help": "step (lr_step_epochs, lr_gamma), cosine (both rates fall from lr to near 0 over the epochs, "
                "one cosine step per epoch) or linear (the masker's rate falls linearly to 5 % over the run's steps, "
                "stepped every step)"})
    max_steps: int | None = field(default=None, metadata={"help": "stop after this many steps"})
    # --- runtime ---
    seed: int = field(default=0, metadata={"help": "seed of everything random in the run"})
    device: str = field(default="auto", metadata={"help": "cpu, cuda, cuda:N or auto"})
    num_workers: int = field(default=0, metadata={"help": "data-loader worker processes"})
    amp: str = field(default="auto", metadata={"help": "mixed precision: auto (bf16 on CUDA), off, bf16, fp16"})
    channels_last: bool | None = field(default=None, metadata={"help": "channels-last memory (default: on CUDA)"})
    val_batch_size: int = field(default=64, metadata={"help": "validation batch size"})
    threads: int | None = field(default=None, metadata={"help": "torch CPU threads (default: torch's choice)"})

    def __post_init__(self) -> None:
        self.stages = tuple(int(s) for s in (self.stages.split(",") if isinstance(self.stages, str)
                                                else self.stages))
        self.pool_strategy = str(self.pool_strategy).upper()
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first bad field."""
        from saliency_core.classifiers.pool import THINNING_STRATEGIES

        def bad(msg: str) -> None:
            raise ConfigError(msg)

        if self.mode not in MODES:
            bad(f"mode must be one of {MODES}, got '{self.mode}'")
        if self.pool_strategy not in THINNING_STRATEGIES:
            bad(f"pool_strategy must be one of {', '.join(THINNING_STRATEGIES)}, got '{self.pool_strategy}'")
        if self.amp not in AMP_MODES:
            bad(f"amp must be one of {AMP_MODES}, got '{self.amp}'")
        if not self.stages or len(set(self.stages)) != len(self.stages) or min(self.stages) < 1:
            bad(f"stages must be distinct numbers >= 1, got {self.stages}")
        for name in ("epochs", "batch_size", "image_size", "pool_size", "val_batch_size", "num_classes"):
            if getattr(self, name) < 1:
                bad(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.image_size < 32:
            bad(f"image_size must be >= 32, got {self.image_size}")
        for name in ("lr", "weight_decay", "grad_clip", "classifier_lr", "classifier_momentum",
                     "classifier_weight_decay", "checkpoint_every", "num_workers", "lr_step_epochs"):
            if getattr(self, name) < 0:
                bad(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 < self.epoch_fraction <= 1:
            bad(f"epoch_fraction must be in (0, 1], got {self.epoch_fraction}")
        if not 0 <= self.val_fraction < 1:
            bad(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if not 0 < self.lr_gamma <= 1:
            bad(f"lr_gamma must be in (0, 1], got {self.lr_gamma}")
        if self.lr_schedule not in LR_SCHEDULES:
            bad(f"lr_schedule must be one of {LR_SCHEDULES}, got '{self.lr_schedule}'")
        for name in ("few_shot_classes", "few_shot_per_class", "max_steps", "pool_save_every", "threads"):
            v = getattr(self, name)
            if v is not None and v < 1:
                bad(f"{name} must be >= 1 (or unset), got {v}")
        if self.pool_p_latest is not None and not 0 <= self.pool_p_latest <= 1:
            bad(f"pool_p_latest must be in [0, 1], got {self.pool_p_latest}")
        for name in batch_filled_infillers(self)[:1]:
            if self.batch_size < 2:
                bad(f"infiller '{name}' fills each image from another image of its batch, so every batch needs at "
                    f"least 2 images, but batch_size is {self.batch_size}")

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


@dataclass
class TrainConfig(RunConfig):
    """A Phang et al. masker's run (FIX or CA): the run's fields plus the masker's and its objective's."""

    classifier_loss: str = field(default="clean+out", metadata={
        "help": "CA classifier loss: clean+out (CASM eq. 8), clean+in+out (Phang's code) or clean"})
    # --- masker ---
    gumbel: str = field(default="off", metadata={"help": "Gumbel-Softmax mask: off, soft or hard"})
    gumbel_temperature: float = field(default=0.1, metadata={"help": "Gumbel-Softmax temperature"})
    final_upsample: str = field(default="nearest", metadata={"help": "mask upsampling: nearest or bilinear"})
    # --- objective ---
    objective: str = field(default="in+out-entropy", metadata={
        "help": "in / out-class / out-entropy or pairs joined by + (aliases MaxClass, MinClass, MaxEnt)"})
    lambda_in: float = field(default=1.0, metadata={"help": "weight of the masked-in term"})
    lambda_out: float = field(default=1.0, metadata={"help": "weight of the masked-out term(s)"})
    lambda_area_in: float = field(default=1.0, metadata={"help": "lambda_M,in (conditional area, masked-in)"})
    lambda_area_out: float | None = field(default=None, metadata={
        "help": "lambda_M,out (conditional area, masked-out); default 10 (fix) or 15 (ca)"})
    lambda_tv: float = field(default=1e-3, metadata={"help": "total-variation weight"})
    tv_border: float = field(default=0.0, metadata={"help": "TV border weight (Phang's code: 0.3)"})
    infiller: str = field(default="gray", metadata={"help": "infiller of the removed pixels during training"})
    infiller_options: dict[str, Any] = field(default_factory=dict, metadata={"help": "infiller options"})

    def __post_init__(self) -> None:
        self.objective = normalize_objective(self.objective)
        if self.lambda_area_out is None and self.mode in DEFAULT_LAMBDA_AREA_OUT:
            self.lambda_area_out = DEFAULT_LAMBDA_AREA_OUT[self.mode]
        self.infiller_options = dict(self.infiller_options or {})
        super().__post_init__()

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first bad field."""
        from saliency_core.maskers.phang import GUMBEL_MODES, UPSAMPLE_MODES

        super().validate()

        def bad(msg: str) -> None:
            raise ConfigError(msg)

        if self.classifier_loss not in CLASSIFIER_LOSSES:
            bad(f"classifier_loss must be one of {CLASSIFIER_LOSSES}, got '{self.classifier_loss}'")
        if self.gumbel not in GUMBEL_MODES:
            bad(f"gumbel must be one of {GUMBEL_MODES}, got '{self.gumbel}'")
        if self.final_upsample not in UPSAMPLE_MODES:
            bad(f"final_upsample must be one of {UPSAMPLE_MODES}, got '{self.final_upsample}'")
        for name in ("lambda_in", "lambda_out", "lambda_area_in", "lambda_area_out", "lambda_tv", "tv_border"):
            if getattr(self, name) < 0:
                bad(f"{name} must be >= 0, got {getattr(self, name)}")
        if not self.gumbel_temperature > 0:
            bad(f"gumbel_temperature must be > 0, got {self.gumbel_temperature}")

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
            if name in INFILLERS and INFILLERS.get(name).attrs.get("reference_pool") and options.get("pool") is None]


#: Fields whose change does not make a saved run incompatible with a resume.
RESUMABLE_CHANGES = frozenset({"epochs", "max_steps", "device", "num_workers", "resume", "tensorboard",
                               "checkpoint_every", "val_batch_size", "out", "threads", "skip_bad_images"})


#: Fields added after runs were saved, with the value an older run behaved as (so it still resumes).
ADDED_FIELD_DEFAULTS: dict[str, Any] = {"lr_schedule": "step", "sdr_out_term": "out-entropy", "smooth_levels": 0,
                                        "area_low": 1.0, "area_high": 1.0, "area_one_prob": 0.5,
                                        "default_area_weight": 1.0, "area_loss_balance": True,
                                        "ssr_area_scale": 1.0, "ssr_area_balance": False,
                                        "objective_branches": "shared", "out_term": "out-entropy"}


def config_differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Names of fields that differ between two config dicts, ignoring :data:`RESUMABLE_CHANGES`."""
    keys = (set(a) | set(b)) - RESUMABLE_CHANGES
    a, b = {**ADDED_FIELD_DEFAULTS, **a}, {**ADDED_FIELD_DEFAULTS, **b}
    return sorted(k for k in keys if a.get(k) != b.get(k))
