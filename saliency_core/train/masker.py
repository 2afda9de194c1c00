"""Masker training: FIX (frozen classifier) and classifier-agnostic (CA) training of Phang et al.

``train(TrainConfig(...))`` runs one training and returns the saved masker's path. A run folder
holds ``config.yaml`` (the resolved config), ``steps.csv`` (per-step losses), ``epochs.csv``
(per-epoch validation on the held-out, class-disjoint images), ``tb/`` (TensorBoard),
``state.pt`` (+ ``pool-*.safetensors``: the resumable state) and ``masker.safetensors`` (+ ``.json``).

One step (both modes):
1. the classifier's forward pass on the clean batch gives logits and stage activations (CA: in
   train mode, with gradients for the classifier);
2. the masker maps the (detached) activations to a mask m;
3. a judge classifies the masked-in x*m and masked-out x*(1-m) images: the classifier itself (FIX,
   and CA with probability p_latest) or a snapshot drawn uniformly from the CA pool;
4. the masker's objective (MaxClass / MinClass / MaxEnt, conditional areas, TV) and, in CA, the
   classifier's loss (CASM eq. 8: cross-entropy on the clean and on the masked-out images) are
   formed; each one's gradients are computed for its own parameters only (``backward(inputs=...)``),
   so the masker's loss never reaches the classifier;
5. only then do both optimisers step (the original code stepped the classifier in between, which
   fails on PyTorch >= 1.5), and a CA run snapshots its classifier into the pool when due.
"""
from __future__ import annotations

import contextlib
import copy
import csv
import json
import math
import os
import random
import resource
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from saliency_core.classifiers import Classifier, load_classifier
from saliency_core.classifiers.pool import ClassifierPool
from saliency_core.datasets import (
    ImageDataset,
    Sample,
    class_disjoint_split,
    correctly_classified,
    data_root,
    eval_transform,
    few_shot,
    find_bad_images,
    read_samples,
    report_bad_images,
    train_transform,
)
from saliency_core.device import resolve_device
from saliency_core.infill.base import create_infiller
from saliency_core.infill.composite import composite
from saliency_core.maskers.checkpoint import save_masker
from saliency_core.maskers.phang import MaskerConfig, PhangMasker
from saliency_core.objectives import entropy, masker_loss
from saliency_core.train.config import ConfigError, TrainConfig, batch_filled_infillers, config_differences
from saliency_core.train.data import SeededAugmentation, epoch_batches
from saliency_core.train.distributed import (
    all_gather_object,
    all_reduce_mean_,
    barrier,
    broadcast_module_,
    cleanup,
    init_distributed,
    module_digest,
)
from saliency_core.train.state import StateError, load_state, restore_pool, rng_state, save_state, set_rng_state

__all__ = ["TrainConfig", "ConfigError", "StateError", "train", "Trainer", "validate", "seed_everything"]

ProgressFn = Callable[[float, str], None]

#: Columns of steps.csv (a term that a run does not use stays empty).
STEP_FIELDS = ["step", "epoch", "lr", "total", "in_ce", "area_in", "out_negentropy", "out_negce", "area_out", "tv",
               "mask_mean", "clean_acc", "judge", "cls_loss", "cls_clean_ce", "cls_out_ce", "cls_in_ce", "step_s"]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def cosine_factor(epoch: int, epochs: int) -> float:
    """Learning-rate factor of epoch ``epoch`` (0-based) of ``epochs`` under a cosine decay: 1 in the first
    epoch, falling to (1 + cos(pi (epochs-1)/epochs)) / 2 in the last (never 0, so every epoch trains)."""
    return 0.5 * (1.0 + math.cos(math.pi * min(epoch, epochs) / max(epochs, 1)))


def peak_memory_mb(device: torch.device) -> float:
    """Peak GPU memory allocated (CUDA) or peak resident memory of this process (CPU), in MiB."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss_kb / 1024 if sys.platform != "darwin" else rss_kb / 2**20


@torch.no_grad()
def validate(classifier: Classifier, masker: torch.nn.Module, loader: DataLoader,
             reference: Classifier | None = None, autocast: Callable[[], Any] = contextlib.nullcontext,
             channels_last: bool = False) -> dict[str, float]:
    """Validation figures of a masker on held-out images (gray fill, as the masks are used).

    ``clean_acc``, ``in_acc`` / ``out_acc`` (masked-in / masked-out top-1 accuracy), ``in_prob`` /
    ``out_prob`` (mean softmax probability of the true class), ``out_entropy`` (masked-out) and
    ``mask_mean``, all judged by ``classifier`` (whose activations the masker reads), and ``sm``, the
    saliency metric of Dabkowski & Gal computed on the masked-in image instead of a box crop,
    mean of log(max(area, 0.05)) - log p(y | x*m) (lower is better: small masks that keep the class). With a
    ``reference`` classifier (CA: the original, frozen one) the same figures judged by it are added
    with the prefix ``ref_``.
    """
    modes = (classifier.training, masker.training)
    classifier.eval()
    masker.eval()
    judges = {"": classifier, **({"ref_": reference} if reference is not None else {})}
    keys = ("clean_acc", "in_acc", "out_acc", "in_prob", "out_prob", "out_entropy", "sm")
    tot = {f"{p}{k}": 0.0 for p in judges for k in keys}
    tot["mask_mean"] = 0.0
    device = next(classifier.parameters()).device
    n = 0
    for x01, y in loader:
        x = classifier.preprocessing.normalize(x01.to(device))
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = y.to(device)
        with autocast():
            clean = classifier.forward_features(x)
            m = masker([s.float() for s in clean.stages], tuple(x.shape[-2:])).float()
        batch = torch.cat([x, composite(x, m), composite(x, 1 - m)])
        for prefix, judge in judges.items():
            with autocast():
                logits = judge(batch).float()
            lc, li, lo = logits.chunk(3)
            tot[f"{prefix}clean_acc"] += (lc.argmax(-1) == y).sum().item()
            tot[f"{prefix}in_acc"] += (li.argmax(-1) == y).sum().item()
            tot[f"{prefix}out_acc"] += (lo.argmax(-1) == y).sum().item()
            tot[f"{prefix}in_prob"] += li.softmax(-1).gather(1, y[:, None]).sum().item()
            tot[f"{prefix}out_prob"] += lo.softmax(-1).gather(1, y[:, None]).sum().item()
            tot[f"{prefix}out_entropy"] += entropy(lo).sum().item()
            area = m.flatten(1).mean(1).clamp(0.05, 1.0)
            tot[f"{prefix}sm"] += (area.log() - li.log_softmax(-1).gather(1, y[:, None])[:, 0]).sum().item()
        tot["mask_mean"] += m.flatten(1).mean(1).sum().item()
        n += x.shape[0]
    classifier.train(modes[0])
    masker.train(modes[1])
    return {k: v / max(n, 1) for k, v in tot.items()}


class Trainer:
    """One training run (see the module docstring); ``run()`` returns the masker's path."""

    def __init__(self, cfg: TrainConfig, progress: ProgressFn | None = None, show_bars: bool = True) -> None:
        self.cfg = cfg
        self.progress = progress
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        seed_everything(cfg.seed)
        self.dist, self.device = init_distributed(resolve_device(cfg.device))
        self.out = Path(cfg.out)
        self.show_bars = show_bars and self.dist.is_main
        self.train_classifier = cfg.trains_classifier
        self._setup_precision()

        self.classifier = load_classifier(cfg.classifier, cfg.classifier_weights, device=self.device,
                                          random_init=cfg.classifier_random_init, num_classes=cfg.num_classes,
                                          channels_last=self.channels_last)
        self.reference: Classifier | None = None
        self.judge: Classifier | None = None
        self.pool: ClassifierPool | None = None
        if self.train_classifier:
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
        if self.dist.enabled:
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
            self.sched_c = self._scheduler(self.opt_c)
        self.objective = cfg.objective_config()
        self.infiller = create_infiller(cfg.infiller, **cfg.infiller_options)

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

    # ------------------------------------------------------------------ setup
    #: the masker kind its checkpoint records
    masker_kind = "phang"

    def masker_skips_parameters(self) -> bool:
        """Whether a step may leave some of the masker's parameters out of the graph (DDP must then look for them)."""
        return False

    def build_masker(self) -> torch.nn.Module:
        """The (untrained) masker this run trains."""
        cfg = self.cfg
        return PhangMasker(MaskerConfig(stages=cfg.stages, final_upsample=cfg.final_upsample, gumbel=cfg.gumbel,
                                        gumbel_temperature=cfg.gumbel_temperature,
                                        stage_channels=self.classifier.stage_channels))

    def _setup_precision(self) -> None:
        cfg, dev = self.cfg, self.device
        amp = cfg.amp
        if amp == "auto":
            amp = "bf16" if dev.type == "cuda" else "off"
        if amp == "fp16" and dev.type != "cuda":
            raise ConfigError("amp fp16 needs a CUDA device (use bf16 or off on the CPU)")
        self.amp = amp
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
        self.scaler = torch.amp.GradScaler("cuda") if amp == "fp16" else None
        self.channels_last = dev.type == "cuda" if cfg.channels_last is None else bool(cfg.channels_last)
        if dev.type == "cuda":
            torch.backends.cudnn.benchmark = True

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _setup_data(self) -> None:
        cfg = self.cfg
        samples = self._checked_samples(cfg.data)  # every file decoded, before step 1
        if cfg.val_data:
            train_s, val_s = samples, self._checked_samples(cfg.val_data)
        else:
            train_s, val_s = class_disjoint_split(samples, cfg.val_fraction, cfg.split_seed)
        if cfg.few_shot_classes or cfg.few_shot_per_class:
            train_s = few_shot(train_s, cfg.few_shot_classes, cfg.few_shot_per_class, cfg.few_shot_seed)
        bad = [s for s in train_s + val_s if not 0 <= s.label < self.classifier.num_classes]
        if bad:
            raise ConfigError(f"label {bad[0].label} of '{bad[0].path}' is outside the classifier's "
                              f"{self.classifier.num_classes} classes")
        if cfg.only_correct:
            before = len(train_s)
            train_s = correctly_classified(train_s, self.classifier, cfg.image_size, cfg.val_batch_size,
                                           progress=self._progress_at(0.0))
            if not train_s:
                raise ConfigError("the classifier gets none of the training images right (only_correct)")
            self.log(f"only_correct: training on {len(train_s)} of {before} images")
        self._check_batches(len(train_s))
        self.train_samples: list[Sample] = train_s
        self.val_samples: list[Sample] = val_s
        self.train_ds = SeededAugmentation(ImageDataset(train_s, train_transform(cfg.image_size, cfg.augment)),
                                           cfg.seed)
        self.val_loader = None
        if val_s and self.dist.is_main:
            self.val_loader = DataLoader(ImageDataset(val_s, eval_transform(cfg.image_size)),
                                         batch_size=cfg.val_batch_size, num_workers=cfg.num_workers,
                                         pin_memory=self.device.type == "cuda", generator=torch.Generator())

    def _checked_samples(self, source: str) -> list[Sample]:
        """The samples of ``source``, every image decoded in full once before step 1 (each process decodes its
        share); bad ones refused in one error, or left out and listed with ``skip_bad_images``."""
        cfg, d = self.cfg, self.dist
        samples = read_samples(source)
        mine = samples[d.rank::d.world_size]
        found = find_bad_images(mine, workers=max(1, cfg.num_workers), show_bar=self.show_bars,
                                progress=self._progress_at(0.0))
        index = {id(s): d.rank + k * d.world_size for k, s in enumerate(mine)}
        bad = sorted(pair for share in all_gather_object([(index[id(s)], why) for s, why in found], d)
                     for pair in share)
        report_bad_images(len(samples), [(samples[i], why) for i, why in bad], cfg.skip_bad_images, self.log,
                          root=data_root(source))
        left_out = {i for i, _ in bad}
        return [s for i, s in enumerate(samples) if i not in left_out]

    def _check_batches(self, n_train: int) -> None:
        """Refuse, before anything is written, a run whose batches cannot make a step: an infiller that fills from
        the batch (random-image) needs 2+ images in every batch, and the masker's batch norm (and a CA
        classifier's) needs 2+ values per channel over the smallest stage it trains on."""
        cfg, world = self.cfg, self.dist.world_size
        if n_train == 0:
            return  # the dataset says 'no images to load'
        images = f"{n_train} training image{'s' if n_train != 1 else ''}"
        if n_train < world:
            raise ConfigError(f"{images} cannot be shared by {world} processes")
        smallest = min(cfg.batch_size, n_train // world)  # epoch_batches drops a short last batch
        because = (f"{images}{f' shared by {world} processes' if world > 1 else ''} "
                   f"give{'s' if n_train == 1 else ''} batches of {smallest} (use more images")
        for name in batch_filled_infillers(cfg)[:1]:
            if smallest < 2:
                raise ConfigError(f"infiller '{name}' fills each image from another image of its batch, so every "
                                  f"batch needs at least 2 images; {because}, or another infiller)")
        cells, stage = self._smallest_trained_stage()
        if smallest * cells < 2:
            reason = because + ")" if smallest < cfg.batch_size else (
                f"batch_size is {cfg.batch_size} (use a batch of 2 or more, or a larger image_size)")
            raise ConfigError(f"at image_size {cfg.image_size} stage {stage} is {cells} cell, so batch norm in "
                              f"training needs at least 2 images per batch; {reason}")

    @torch.no_grad()
    def _smallest_trained_stage(self) -> tuple[int, int]:
        """(cells, stage): the fewest h x w cells among the stages whose batch norm trains (the masker's reducers;
        in CA every stage of the classifier), at the training image size."""
        clf = self.classifier
        was_training = clf.training
        clf.eval()
        size = self.cfg.image_size
        stages = clf.forward_features(torch.zeros(1, 3, size, size, device=self.device)).stages
        clf.train(was_training)
        read = range(1, len(stages) + 1) if self.train_classifier else self.cfg.stages
        cells = [(stages[s - 1].shape[-2] * stages[s - 1].shape[-1], s) for s in read if 1 <= s <= len(stages)]
        return min(cells, default=(size * size, 0))  # a stage the classifier lacks: the masker's config says so

    def _progress_at(self, fraction: float) -> ProgressFn | None:
        """A progress callback for preparation work, reported at a fixed overall fraction."""
        if self.progress is None or not self.dist.is_main:
            return None
        return lambda _f, msg: self.progress(fraction, msg)

    def log(self, message: str) -> None:
        if self.dist.is_main:
            tqdm.write(message)

    # ------------------------------------------------------------------ one step
    def training_step(self, x01: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
        """One optimisation step on a batch of [0, 1] images; returns the logged figures."""
        cfg, obj, dev = self.cfg, self.objective, self.device
        x = self.classifier.preprocessing.normalize(x01.to(dev, non_blocking=True))
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = y.to(dev, non_blocking=True)
        size = tuple(x.shape[-2:])
        train_clf = self.train_classifier

        # 1. clean pass (CA: train mode, graph kept for the classifier's own loss)
        self.classifier.train(train_clf)
        with self.autocast(), torch.set_grad_enabled(train_clf):
            clean = self.classifier.forward_features(x)
        # 2. mask from the detached activations
        m = self.masker_train([s.detach().float() for s in clean.stages], size).float()
        # 3. the judge of the masked images
        index = self.pool.draw() if self.pool is not None else None
        judge = self.classifier
        if index is not None:
            self.pool.load_into(self.judge.model, index)
            judge = self.judge
        need_out = obj.uses_out or (train_clf and "out" in cfg.classifier_loss)
        need_in = obj.uses_in or (train_clf and "+in+" in cfg.classifier_loss)
        fill_in = self.infiller(x, m) if need_in else None
        fill_out = self.infiller(x, 1 - m) if need_out else None
        x_in = composite(x, m, fill_in) if obj.uses_in else None
        x_out = composite(x, 1 - m, fill_out) if obj.uses_out else None
        with self.autocast():
            if judge.training:  # the classifier itself, in train mode: separate batches (own BN statistics)
                li = judge(x_in) if x_in is not None else None
                lo = judge(x_out) if x_out is not None else None
            else:
                batch = [t for t in (x_in, x_out) if t is not None]
                logits = judge(torch.cat(batch)) if batch else None
                li, lo = (logits.chunk(2) if len(batch) == 2 else
                          (logits, None) if x_in is not None else (None, logits))
        li = li.float() if li is not None else None
        lo = lo.float() if lo is not None else None
        terms = masker_loss(obj, m, y, clean.logits.detach().float(), li, lo)

        # 4. the classifier's own loss (CA): clean + masked-out images (CASM eq. 8)
        cls_terms: dict[str, torch.Tensor] = {}
        if train_clf:
            cls_terms["cls_clean_ce"] = F.cross_entropy(clean.logits.float(), y)
            md = m.detach()
            if "out" in cfg.classifier_loss:
                lo_c = lo if (index is None and lo is not None) else None
                if lo_c is None:
                    with self.autocast():
                        lo_c = self.classifier(composite(x, 1 - md, fill_out)).float()
                cls_terms["cls_out_ce"] = F.cross_entropy(lo_c, y)
            if "+in+" in cfg.classifier_loss:
                li_c = li if (index is None and li is not None) else None
                if li_c is None:
                    with self.autocast():
                        li_c = self.classifier(composite(x, md, fill_in)).float()
                cls_terms["cls_in_ce"] = F.cross_entropy(li_c, y)
            cls_terms["cls_loss"] = sum(cls_terms.values())

        # 5. both gradients, each for its own parameters, before either optimiser steps
        self.opt_m.zero_grad(set_to_none=True)
        if train_clf:
            self.opt_c.zero_grad(set_to_none=True)
            self._scale(cls_terms["cls_loss"]).backward(inputs=self.clf_params, retain_graph=True)
        self._scale(terms["total"]).backward(inputs=self.masker_params)
        if train_clf:
            all_reduce_mean_([p.grad for p in self.clf_params], self.dist)
        if self.scaler is not None:
            self.scaler.unscale_(self.opt_m)
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.masker_params, cfg.grad_clip)
        self._opt_step(self.opt_m)
        if train_clf:
            self._opt_step(self.opt_c)
            self.cls_updates += 1
            broadcast_module_(self.classifier, self.dist, buffers_only=True)
            if self.pool is not None:
                self.pool.observe(self.classifier.model, self.cls_updates)
        if self.scaler is not None:
            self.scaler.update()

        row: dict[str, Any] = {k: float(v.detach()) for k, v in {**terms, **cls_terms}.items()}
        row["mask_mean"] = float(m.detach().mean())
        row["clean_acc"] = float((clean.logits.detach().argmax(-1) == y).float().mean())
        if self.dist.enabled:  # log the mean over processes
            keys = sorted(row)
            vals = torch.tensor([row[k] for k in keys], dtype=torch.float64)
            all_reduce_mean_([vals], self.dist)
            row = dict(zip(keys, vals.tolist()))
        row["judge"] = "latest" if index is None else f"pool:{index}"
        return row

    def _scale(self, loss: torch.Tensor) -> torch.Tensor:
        return self.scaler.scale(loss) if self.scaler is not None else loss

    def _opt_step(self, opt: torch.optim.Optimizer) -> None:
        if self.scaler is not None:
            self.scaler.step(opt)
        else:
            opt.step()

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
            "rng": rng_state(),
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
            self._sync_steps_log()  # the log on disk reaches the saved step first: a kill never loses rows
            save_state(self.out, self.state_dict(), self.pool)
        barrier(self.dist)

    def _sync_steps_log(self) -> None:
        f = getattr(self, "steps_file", None)
        if f is not None and not f.closed:
            f.flush()
            os.fsync(f.fileno())

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
        set_rng_state(s["rng"])
        self.resumed_from = self.step

    # ------------------------------------------------------------------ logs
    def _open_logs(self) -> None:
        self.steps_path = self.out / "steps.csv"
        self.tb = None
        if not self.dist.is_main:
            return
        rows: list[dict[str, str]] = []
        if self.resumed_from is not None and self.steps_path.exists():
            with self.steps_path.open(newline="") as f:  # drop steps done after the saved state
                rows = [r for r in csv.DictReader(f) if r.get("step") and int(r["step"]) <= self.step]
        _write_csv(self.steps_path, rows, STEP_FIELDS)  # atomically: a kill here keeps the old log
        self.steps_file = self.steps_path.open("a", newline="")
        self.steps_writer = csv.DictWriter(self.steps_file, fieldnames=STEP_FIELDS, restval="", extrasaction="ignore")
        if self.cfg.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(self.out / "tb"),
                                    purge_step=self.step + 1 if self.resumed_from is not None else None)

    def _close_logs(self) -> None:
        if self.dist.is_main:
            self.steps_file.close()
            if self.tb is not None:
                self.tb.close()

    def _log_step(self, row: dict[str, Any]) -> None:
        for k, v in row.items():
            if isinstance(v, float) and k not in ("lr", "step_s"):
                self.epoch_sums[k] = self.epoch_sums.get(k, 0.0) + v
        self.epoch_count += 1
        if not self.dist.is_main:
            return
        self.steps_writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
        if self.step % 10 == 0:
            self.steps_file.flush()
        if self.tb is not None:
            for k, v in row.items():
                if isinstance(v, float):
                    self.tb.add_scalar(f"train/{k}", v, self.step)

    def _scheduler(self, opt: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
        """The per-epoch learning-rate schedule of ``cfg.lr_schedule`` (stepped at the end of each epoch)."""
        cfg = self.cfg
        if cfg.lr_schedule == "cosine":
            # read cfg.epochs when called, so a resume with more epochs stretches the remaining decay
            return torch.optim.lr_scheduler.LambdaLR(opt, lambda e: cosine_factor(e, self.cfg.epochs))
        return torch.optim.lr_scheduler.StepLR(opt, cfg.lr_step_epochs or 10**9, cfg.lr_gamma)

    def _end_epoch(self, n_batches: int) -> None:
        self.sched_m.step()
        if self.sched_c is not None:
            self.sched_c.step()
        if self.dist.enabled:
            broadcast_module_(self.masker, self.dist, buffers_only=True)
        metrics: dict[str, float] = {}
        if self.dist.is_main and self.val_loader is not None:
            metrics = validate(self.classifier, self.masker, self.val_loader, self.reference, self.autocast,
                               self.channels_last)
        row: dict[str, Any] = {"epoch": self.epoch + 1, "steps": self.step,
                               "elapsed_s": round(self.elapsed_before + time.perf_counter() - self._t0, 1),
                               "images_per_s": round(self.images / max(self.train_time, 1e-9), 2)}
        row.update({f"train_{k}": round(v / max(self.epoch_count, 1), 5) for k, v in self.epoch_sums.items()})
        row.update({f"val_{k}": round(v, 5) for k, v in metrics.items()})
        self.epoch_rows.append(row)
        if self.dist.is_main:
            _write_csv(self.out / "epochs.csv", self.epoch_rows)
            if self.tb is not None:
                for k, v in row.items():
                    if k.startswith(("val_", "train_")):
                        self.tb.add_scalar(k.replace("_", "/", 1), v, self.epoch + 1)
                self.tb.flush()
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
            (self.out / "config.yaml").write_text(cfg.to_yaml())
        if self.pool is not None and not len(self.pool):
            self.pool.observe(self.classifier.model, self.cls_updates)  # the first (untrained) classifier
        self._open_logs()
        stopped = False
        try:
            total_epochs = cfg.epochs
            while self.epoch < total_epochs and not stopped:
                batches = epoch_batches(len(self.train_ds), cfg.batch_size, cfg.seed, self.epoch, self.dist.rank,
                                        self.dist.world_size, cfg.epoch_fraction)
                self.train_ds.set_epoch(self.epoch)
                todo = batches[self.batch_in_epoch:]
                loader = DataLoader(self.train_ds, batch_sampler=todo, num_workers=cfg.num_workers,
                                    pin_memory=self.device.type == "cuda", generator=torch.Generator())
                bar = tqdm(total=len(batches), initial=self.batch_in_epoch, disable=not self.show_bars,
                           desc=f"epoch {self.epoch + 1}/{total_epochs}", leave=False, dynamic_ncols=True)
                for x01, y in loader:
                    t = time.perf_counter()
                    row = self.training_step(x01, y)
                    dt = time.perf_counter() - t
                    self.train_time += dt
                    self.images += x01.shape[0] * self.dist.world_size
                    self.step += 1
                    self.batch_in_epoch += 1
                    row = {"step": self.step, "epoch": self.epoch + 1, "lr": self.opt_m.param_groups[0]["lr"],
                           **row, "step_s": round(dt, 4)}
                    self._log_step(row)
                    bar.update(1)
                    bar.set_postfix(loss=f"{row['total']:.3f}", mask=f"{row['mask_mean']:.2f}")
                    if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                        self.save_state()
                    if cfg.max_steps and self.step >= cfg.max_steps:
                        stopped = True
                        break
                    if self.progress is not None and self.dist.is_main:
                        done = self.epoch + self.batch_in_epoch / max(len(batches), 1)
                        self.progress(min(done / total_epochs, 1.0),
                                      f"epoch {self.epoch + 1}/{total_epochs}, step {self.step}, "
                                      f"loss {row['total']:.3f}, mask {row['mask_mean']:.2f}")
                bar.close()
                if self.batch_in_epoch >= len(batches):
                    self._end_epoch(len(batches))
                self.save_state()
        finally:
            self._close_logs()
        return self._finish(complete=self.epoch >= cfg.epochs)

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
            "peak_memory_mb": round(peak_memory_mb(self.device), 1),
            "device": str(self.device) if self.device.type != "cuda" else torch.cuda.get_device_name(self.device),
            "world_size": self.dist.world_size, "amp": self.amp, "channels_last": self.channels_last,
            "torch": torch.__version__, "threads": torch.get_num_threads(),
            "replicas_identical": len(set(digests)) == 1, "replica_digests": digests,
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


def train(cfg: TrainConfig, progress: ProgressFn | None = None, show_bars: bool = True) -> Path:
    """Run (or resume) a training and return the path of the saved masker checkpoint."""
    try:
        return Trainer(cfg, progress=progress, show_bars=show_bars).run()
    finally:
        cleanup()


#: What a run writes into its folder (an earlier run's are moved aside when a new one starts there).
RUN_OUTPUTS = ("state.pt", "pool-*.safetensors", "steps.csv", "epochs.csv", "config.yaml", "masker.safetensors",
               "masker.json", "tb")


def set_aside_outputs(out: Path) -> Path | None:
    """Move an earlier run's files into ``<out>/previous-<n>/`` (nothing is deleted); None when there were none."""
    found = [p for pattern in RUN_OUTPUTS for p in sorted(out.glob(pattern))]
    if not found:
        return None
    n = 1
    while (out / f"previous-{n}").exists():
        n += 1
    target = out / f"previous-{n}"
    target.mkdir()
    for p in found:
        os.replace(p, target / p.name)
    return target


def _write_csv(path: Path, rows: list[dict[str, Any]], fieldnames: list[str] | None = None) -> None:
    """Write a CSV through a temporary file and a rename (``fieldnames``: the columns; default those of the rows)."""
    keys = fieldnames or list(dict.fromkeys(k for r in rows for k in r))
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys, restval="", extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
