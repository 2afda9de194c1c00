"""The one training loop of every masker kind: :class:`BaseTrainer`.

It owns what every run shares: the devices (torchrun / DDP), precision, the classifier and (CA) its optimiser,
pool of snapshots and judge copy, the data (:mod:`saliency_core.train.rundata`), the masker's optimiser and
learning-rate schedule, the epoch loop, the resumable state (``state.pt``, written atomically; a kill -9 at any
point resumes to the result of an uninterrupted run), the logs (:mod:`saliency_core.train.runlog`), validation
after each epoch and the checkpoint. A masker kind subclasses it and supplies ``build_masker``,
``training_step`` and ``validation_figures`` (Phang / CA: :mod:`saliency_core.train.masker`; conditional:
:mod:`saliency_core.train.conditional`; per-label: :mod:`saliency_core.train.label_masker`).

Randomness (:mod:`saliency_core.train.rng`): the weights of the networks built here come from the run's seed, and
each step runs with torch's global generator forked and seeded from (seed, rank, step); the step's own draws use
generators passed down. Nothing depends on, or changes, the caller's global random state.
"""
from __future__ import annotations

import copy
import json
import math
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from saliency_core.classifiers import Classifier, load_classifier
from saliency_core.classifiers.pool import ClassifierPool
from saliency_core.device import resolve_device
from saliency_core.files import atomic_write_text
from saliency_core.maskers.checkpoint import save_masker
from saliency_core.train.config import RunConfig, config_differences
from saliency_core.train.data import epoch_batches
from saliency_core.train.distributed import (
    all_gather_object,
    barrier,
    broadcast_module_,
    init_distributed,
    module_digest,
)
from saliency_core.train.precision import Precision, device_name, peak_memory_mb
from saliency_core.train.rng import isolated_rng, step_seed
from saliency_core.train.rundata import prepare_data, smallest_trained_stage
from saliency_core.train.runlog import STEP_FIELDS, RunLog, set_aside_outputs
from saliency_core.train.state import StateError, load_state, restore_pool, save_state

ProgressFn = Callable[[float, str], None]


def cosine_factor(epoch: int, epochs: int) -> float:
    """Learning-rate factor of epoch ``epoch`` (0-based) of ``epochs`` under a cosine decay: 1 in the first
    epoch, falling to (1 + cos(pi (epochs-1)/epochs)) / 2 in the last (never 0, so every epoch trains)."""
    return 0.5 * (1.0 + math.cos(math.pi * min(epoch, epochs) / max(epochs, 1)))


def linear_factor(step: int, total: int) -> float:
    """Learning-rate factor of step ``step`` (0-based) of ``total`` under the linear decay: 1 falling to 5 %."""
    return max(0.05, 1.0 - step / max(total, 1))


class BaseTrainer:
    """One training run (see the module docstring); ``run()`` returns the masker checkpoint's path."""

    #: the masker kind its checkpoint records
    masker_kind = "phang"
    #: the columns of steps.csv, and the one a step's loss is in (shown in the progress bar)
    step_fields: list[str] = STEP_FIELDS
    loss_key = "total"
    #: wrap the masker in DistributedDataParallel (a kind whose step calls more than the masker's forward averages
    #: its gradients itself)
    wraps_masker_in_ddp = True
    #: a CA classifier trains with frozen batch-norm statistics (eval mode)
    freezes_classifier_batch_norm = False
    #: CA: keep a frozen copy of the original classifier (``reference``: validation judges the masks by it too)
    keeps_reference = True

    def __init__(self, cfg: RunConfig, progress: ProgressFn | None = None, show_bars: bool = True) -> None:
        self.cfg = cfg
        self.progress = progress
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.dist, self.device = init_distributed(resolve_device(cfg.device))
        self.out = Path(cfg.out)
        self.show_bars = show_bars and self.dist.is_main
        self.train_classifier = cfg.trains_classifier
        self.precision = Precision.resolve(cfg.amp, cfg.channels_last, self.device)
        self.amp, self.amp_dtype = self.precision.amp, self.precision.amp_dtype
        self.scaler, self.channels_last = self.precision.scaler, self.precision.channels_last

        with isolated_rng(cfg.seed, self.device):  # the initial weights (a random classifier's too) from the seed
            self.classifier = load_classifier(cfg.classifier, cfg.classifier_weights, device=self.device,
                                              random_init=cfg.classifier_random_init, num_classes=cfg.num_classes,
                                              channels_last=self.channels_last)
            self.reference: Classifier | None = None
            self.judge: Classifier | None = None
            self.pool: ClassifierPool | None = None
            if self.train_classifier:
                if self.keeps_reference:
                    self.reference = copy.deepcopy(self.classifier)  # the original classifier, to judge CA masks too
                self.classifier.requires_grad_(True)
                strategy = cfg.strategy()
                if strategy.uses_pool:
                    self.pool = ClassifierPool.from_strategy(strategy, cfg.pool_size, seed=cfg.seed)
                    self.judge = copy.deepcopy(self.classifier).eval().requires_grad_(False)
            self._setup_data()
            self.masker = self.build_masker().to(self.device)
        self.masker.train()
        broadcast_module_(self.masker, self.dist)
        broadcast_module_(self.classifier, self.dist)
        self.masker_train: torch.nn.Module = self.masker
        if self.dist.enabled and self.wraps_masker_in_ddp:
            from torch.nn.parallel import DistributedDataParallel as DDP

            self.masker_train = DDP(self.masker, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                                    broadcast_buffers=True, find_unused_parameters=self.masker_skips_parameters())
        self.masker_params = list(self.masker.parameters())
        self.opt_m = torch.optim.Adam(self.masker_params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.sched_m = self._scheduler(self.opt_m)
        self.clf_params = [p for p in self.classifier.parameters() if p.requires_grad]
        self.opt_c = self.sched_c = None
        if self.train_classifier:
            self.opt_c = torch.optim.SGD(self.clf_params, lr=cfg.classifier_lr, momentum=cfg.classifier_momentum,
                                         weight_decay=cfg.classifier_weight_decay)
            self.sched_c = self._scheduler(self.opt_c, masker=False)

        # progress counters (all saved in the state)
        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self.cls_updates = 0
        self.images = 0
        self.train_time = 0.0
        self.elapsed_before = 0.0
        self.epoch_rows: list[dict[str, Any]] = []
        self.epoch_sums: dict[str, float] = {}
        self.epoch_count = 0
        self.resumed_from: int | None = None
        self.runlog: RunLog | None = None

    # ------------------------------------------------------------------ what a kind supplies
    def build_masker(self) -> torch.nn.Module:
        """The (untrained) masker this run trains."""
        raise NotImplementedError

    def masker_skips_parameters(self) -> bool:
        """Whether a step may leave some of the masker's parameters out of the graph (DDP must then look for them)."""
        return False

    def training_step(self, x01: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
        """One optimisation step on a batch of [0, 1] images; returns the logged figures (``total``, ``mask_mean``)."""
        raise NotImplementedError

    def validation_figures(self) -> dict[str, float]:
        """The figures of the masker on the validation images (main process, after each epoch)."""
        return {}

    def extra_figures(self) -> dict[str, Any]:
        """Figures of the kind added to the checkpoint's."""
        return {}

    # ------------------------------------------------------------------ setup helpers
    def autocast(self):
        return self.precision.autocast(self.device)

    def _setup_data(self) -> None:
        every_stage = self.train_classifier and not self.freezes_classifier_batch_norm
        data = prepare_data(self.cfg, self.classifier, self.dist, self.device, self.log, self.show_bars,
                            self._progress_at(0.0), lambda: smallest_trained_stage(
                                self.classifier, self.cfg.image_size, self.cfg.stages, every_stage, self.device))
        self.train_samples, self.val_samples = data.train_samples, data.val_samples
        self.train_ds, self.val_loader = data.train_ds, data.val_loader
        self.batches_per_epoch = len(self._epoch_batches(0))

    def _epoch_batches(self, epoch: int) -> list[list[int]]:
        cfg = self.cfg
        return epoch_batches(len(self.train_ds), cfg.batch_size, cfg.seed, epoch, self.dist.rank,
                             self.dist.world_size, cfg.epoch_fraction)

    def total_steps(self) -> int:
        """The steps of the whole run (read when called: a resume with more epochs stretches a decay)."""
        n = self.cfg.epochs * self.batches_per_epoch
        return min(n, self.cfg.max_steps) if self.cfg.max_steps else n

    def _scheduler(self, opt: torch.optim.Optimizer, masker: bool = True) -> torch.optim.lr_scheduler.LRScheduler:
        """The learning-rate schedule of ``cfg.lr_schedule``: per epoch (step, cosine; stepped at each epoch's end) or
        per step (linear: the masker's rate; a CA classifier's stays constant)."""
        cfg = self.cfg
        if cfg.lr_schedule == "cosine":
            # read cfg.epochs when called, so a resume with more epochs stretches the remaining decay
            return torch.optim.lr_scheduler.LambdaLR(opt, lambda e: cosine_factor(e, self.cfg.epochs))
        if cfg.lr_schedule == "linear":
            return torch.optim.lr_scheduler.LambdaLR(
                opt, (lambda s: linear_factor(s, self.total_steps())) if masker else (lambda s: 1.0))
        return torch.optim.lr_scheduler.StepLR(opt, cfg.lr_step_epochs or 10**9, cfg.lr_gamma)

    def _progress_at(self, fraction: float) -> ProgressFn | None:
        """A progress callback for preparation work, reported at a fixed overall fraction."""
        if self.progress is None or not self.dist.is_main:
            return None
        return lambda _f, msg: self.progress(fraction, msg)

    def log(self, message: str) -> None:
        if self.dist.is_main:
            tqdm.write(message)

    def _scale(self, loss: torch.Tensor) -> torch.Tensor:
        return self.scaler.scale(loss) if self.scaler is not None else loss

    def _opt_step(self, opt: torch.optim.Optimizer) -> None:
        if self.scaler is not None:
            self.scaler.step(opt)
        else:
            opt.step()

    def step_seed(self, stream: str) -> int:
        """The seed of this step's draws of one kind (``labels``, ``infill``, ...): a function of (seed, rank, step)."""
        return step_seed(self.cfg.seed, self.dist.rank, self.step, stream)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        s: dict[str, Any] = {
            "config": self.cfg.to_dict(),
            "step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
            "cls_updates": self.cls_updates, "images": self.images, "train_time": self.train_time,
            "elapsed": self.elapsed_before + (time.perf_counter() - self._t0),
            "epoch_rows": self.epoch_rows, "epoch_sums": self.epoch_sums, "epoch_count": self.epoch_count,
            "masker": self.masker.state_dict(), "opt_m": self.opt_m.state_dict(), "sched_m": self.sched_m.state_dict(),
            "classifier_identity": self.classifier.identity if not self.train_classifier else None,
        }
        if self.train_classifier:
            s.update(classifier=self.classifier.model.state_dict(), opt_c=self.opt_c.state_dict(),
                     sched_c=self.sched_c.state_dict())
        if self.scaler is not None:
            s["scaler"] = self.scaler.state_dict()
        return s

    def save_state(self) -> None:
        if self.dist.enabled:
            broadcast_module_(self.masker, self.dist, buffers_only=True)
        if self.dist.is_main:
            if self.runlog is not None:
                self.runlog.sync()  # the log on disk reaches the saved step first: a kill never loses rows
            save_state(self.out, self.state_dict(), self.pool)
        barrier(self.dist)

    def load_state(self, s: dict[str, Any]) -> None:
        diff = config_differences(s["config"], self.cfg.to_dict())
        if diff:
            raise StateError(f"'{self.out}' holds a run with a different config ({', '.join(diff)}); "
                             "use another --out, or --no-resume to start it over")
        self.masker.load_state_dict(s["masker"])
        self.opt_m.load_state_dict(s["opt_m"])
        self.sched_m.load_state_dict(s["sched_m"])
        if self.train_classifier:
            self.classifier.model.load_state_dict(s["classifier"])
            self.classifier.refresh_identity()
            self.opt_c.load_state_dict(s["opt_c"])
            self.sched_c.load_state_dict(s["sched_c"])
        elif s.get("classifier_identity") and s["classifier_identity"] != self.classifier.identity:
            raise StateError(f"'{self.out}' was trained with classifier {s['classifier_identity']}, "
                             f"not {self.classifier.identity}")
        if self.pool is not None:
            restore_pool(self.out, s, self.pool)
        if self.scaler is not None and "scaler" in s:
            self.scaler.load_state_dict(s["scaler"])
        for k in ("step", "epoch", "batch_in_epoch", "cls_updates", "images", "epoch_count"):
            setattr(self, k, int(s[k]))
        self.train_time = float(s["train_time"])
        self.elapsed_before = float(s["elapsed"])
        self.epoch_rows = list(s["epoch_rows"])
        self.epoch_sums = dict(s["epoch_sums"])
        self.resumed_from = self.step  # (a state saved before generators were passed down holds "rng": not needed)

    # ------------------------------------------------------------------ logs and epochs
    def _log_step(self, row: dict[str, Any]) -> None:
        for k, v in row.items():
            if isinstance(v, float) and k not in ("lr", "step_s"):
                self.epoch_sums[k] = self.epoch_sums.get(k, 0.0) + v
        self.epoch_count += 1
        if self.runlog is not None:
            self.runlog.step(row, self.step)

    def validates_this_epoch(self) -> bool:
        """Whether the epoch ending now is validated: every ``val_every``-th, and the last."""
        done = self.epoch + 1
        return done % self.cfg.val_every == 0 or done >= self.cfg.epochs

    def _end_epoch(self, n_batches: int) -> None:
        if self.cfg.lr_schedule != "linear":
            self.sched_m.step()
        if self.sched_c is not None:
            self.sched_c.step()
        if self.dist.enabled:
            broadcast_module_(self.masker, self.dist, buffers_only=True)
        metrics: dict[str, float] = {}
        if self.dist.is_main and self.val_loader is not None and self.validates_this_epoch():
            metrics = self.validation_figures()
        row: dict[str, Any] = {"epoch": self.epoch + 1, "steps": self.step,
                               "elapsed_s": round(self.elapsed_before + time.perf_counter() - self._t0, 1),
                               "images_per_s": round(self.images / max(self.train_time, 1e-9), 2)}
        row.update({f"train_{k}": round(v / max(self.epoch_count, 1), 5) for k, v in self.epoch_sums.items()})
        row.update({f"val_{k}": round(v, 5) for k, v in metrics.items()})
        self.epoch_rows.append(row)
        if self.dist.is_main and self.runlog is not None:
            self.runlog.epochs(self.epoch_rows)
            self.log(json.dumps(row))
        self.epoch += 1
        self.batch_in_epoch = 0
        self.epoch_sums, self.epoch_count = {}, 0

    # ------------------------------------------------------------------ the run
    def run(self) -> Path:
        cfg = self.cfg
        self._t0 = time.perf_counter()
        if self.dist.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
        barrier(self.dist)
        state = load_state(self.out) if cfg.resume else None
        if state is not None:
            self.load_state(state)
            done = self.out / "masker.safetensors"
            if self.epoch >= cfg.epochs and done.exists():
                self.log(f"{self.out} is already trained for {self.epoch} epochs: {done}")
                return done
            self.log(f"resuming {self.out} at step {self.step} (epoch {self.epoch + 1})")
        elif self.dist.is_main:
            moved = set_aside_outputs(self.out)
            if moved is not None:
                self.log(f"a new run in {self.out}: the earlier run's files were moved to {moved}")
        if self.dist.is_main:
            atomic_write_text(self.out / "config.yaml", cfg.to_yaml())
        if self.pool is not None and not len(self.pool):
            self.pool.observe(self.classifier.model, self.cls_updates)  # the first (untrained) classifier
        self.runlog = RunLog(self.out, self.step_fields, self.dist.is_main, cfg.tensorboard, self.resumed_from)
        try:
            self._epochs()
        finally:
            self.runlog.close()
        return self._finish(complete=self.epoch >= cfg.epochs)

    def _epochs(self) -> None:
        cfg, total_epochs, per_step = self.cfg, self.cfg.epochs, self.cfg.lr_schedule == "linear"
        while self.epoch < total_epochs:
            batches = self._epoch_batches(self.epoch)
            self.train_ds.set_epoch(self.epoch)
            loader = DataLoader(self.train_ds, batch_sampler=batches[self.batch_in_epoch:], num_workers=cfg.num_workers,
                                pin_memory=self.device.type == "cuda", generator=torch.Generator())
            bar = tqdm(total=len(batches), initial=self.batch_in_epoch, disable=not self.show_bars,
                       desc=f"epoch {self.epoch + 1}/{total_epochs}", leave=False, dynamic_ncols=True)
            stopped = False
            for x01, y in loader:
                t = time.perf_counter()
                with isolated_rng(self.step_seed("global"), self.device):  # dropout, Gumbel noise: from (seed, step)
                    row = self.training_step(x01, y)
                dt = time.perf_counter() - t
                self.train_time += dt
                self.images += x01.shape[0] * self.dist.world_size
                self.step += 1
                self.batch_in_epoch += 1
                row = {"step": self.step, "epoch": self.epoch + 1, "lr": self.opt_m.param_groups[0]["lr"],
                       **row, "step_s": round(dt, 4)}
                if per_step:
                    self.sched_m.step()
                self._log_step(row)
                bar.update(1)
                bar.set_postfix(loss=f"{row[self.loss_key]:.3f}", mask=f"{row['mask_mean']:.2f}")
                if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                    self.save_state()
                if cfg.max_steps and self.step >= cfg.max_steps:
                    stopped = True
                    break
                if self.progress is not None and self.dist.is_main:
                    done = self.epoch + self.batch_in_epoch / max(len(batches), 1)
                    self.progress(min(done / total_epochs, 1.0),
                                  f"epoch {self.epoch + 1}/{total_epochs}, step {self.step}, "
                                  f"loss {row[self.loss_key]:.3f}, mask {row['mask_mean']:.2f}")
            bar.close()
            if self.batch_in_epoch >= len(batches):
                self._end_epoch(len(batches))
            self.save_state()
            if stopped:
                return

    def _finish(self, complete: bool) -> Path:
        cfg = self.cfg
        if self.dist.enabled:
            broadcast_module_(self.masker, self.dist, buffers_only=True)
        digests = all_gather_object(module_digest(self.masker, self.classifier), self.dist)
        elapsed = self.elapsed_before + time.perf_counter() - self._t0
        figures: dict[str, Any] = {
            "mode": cfg.mode, "pool_strategy": cfg.pool_strategy if cfg.mode == "ca" else None,
            "complete": complete, "steps": self.step, "epochs_completed": self.epoch,
            "train_images": len(self.train_samples), "train_classes": len({s.label for s in self.train_samples}),
            "val_images": len(self.val_samples), "val_classes": len({s.label for s in self.val_samples}),
            "val_classes_disjoint": cfg.val_data is None,
            "wall_time_s": round(elapsed, 1), "train_time_s": round(self.train_time, 1),
            "images_per_s": round(self.images / max(self.train_time, 1e-9), 2),
            "peak_memory_mb": round(peak_memory_mb(self.device), 1), "device": device_name(self.device),
            "world_size": self.dist.world_size, "amp": self.amp, "channels_last": self.channels_last,
            "torch": torch.__version__, "threads": torch.get_num_threads(),
            "replicas_identical": len(set(digests)) == 1, "replica_digests": digests,
            "classifier_updates": self.cls_updates, **self.extra_figures(),
            "final": self.epoch_rows[-1] if self.epoch_rows else {},
            "history": self.epoch_rows,
            "command": shlex.join(sys.argv),
        }
        path = self.out / "masker.safetensors"
        if self.dist.is_main:
            self.masker.eval()
            path = save_masker(path, self.masker, self.classifier, cfg.to_dict(), figures,
                               include_classifier=self.train_classifier, kind=self.masker_kind)
            self.masker.train()
            self.log(f"saved {path} ({'complete' if complete else f'stopped at step {self.step}'}; "
                     f"{figures['images_per_s']} images/s, peak memory {figures['peak_memory_mb']} MiB)")
        barrier(self.dist)
        if not figures["replicas_identical"]:
            raise RuntimeError(f"distributed replicas diverged: {digests}")
        return path


__all__ = ["BaseTrainer", "ProgressFn", "cosine_factor", "linear_factor"]
