"""Masker training: FIX (frozen classifier) and classifier-agnostic (CA) training of Phang et al.

``train(TrainConfig(...))`` runs one training and returns the saved masker's path. :class:`Trainer` is the Phang
et al. job on the one training loop (:class:`saliency_core.train.loop.BaseTrainer`: devices, data, state, logs,
validation, checkpoint); this module adds the masker and the step. A run folder holds ``config.yaml`` (the
resolved config), ``steps.csv`` (per-step losses), ``epochs.csv`` (per-epoch validation on the held-out,
class-disjoint images), ``tb/`` (TensorBoard), ``state.pt`` (+ ``pool-*.safetensors``: the resumable state) and
``masker.safetensors`` (+ ``.json``).

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

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from saliency_core.infill.composite import composite
from saliency_core.maskers.phang import MaskerConfig, PhangMasker
from saliency_core.objectives import masker_loss
from saliency_core.train.config import ConfigError, TrainConfig
from saliency_core.train.distributed import all_reduce_mean_, broadcast_module_, cleanup
from saliency_core.train.loop import BaseTrainer, ProgressFn, cosine_factor, linear_factor
from saliency_core.train.precision import peak_memory_mb
from saliency_core.train.rng import seeded_infiller
from saliency_core.train.runlog import RUN_OUTPUTS, STEP_FIELDS, set_aside_outputs
from saliency_core.train.runlog import write_csv as _write_csv
from saliency_core.train.state import StateError
from saliency_core.train.validation import validate

__all__ = ["TrainConfig", "ConfigError", "StateError", "train", "Trainer", "validate", "ProgressFn", "cosine_factor",
           "linear_factor", "peak_memory_mb", "STEP_FIELDS", "RUN_OUTPUTS", "set_aside_outputs", "_write_csv"]


class Trainer(BaseTrainer):
    """A Phang et al. masker's run, FIX or CA (see the module docstring); ``run()`` returns the masker's path."""

    masker_kind = "phang"
    cfg: TrainConfig

    def __init__(self, cfg: TrainConfig, progress: ProgressFn | None = None, show_bars: bool = True) -> None:
        super().__init__(cfg, progress=progress, show_bars=show_bars)
        self.objective = cfg.objective_config()

    def build_masker(self) -> torch.nn.Module:
        """The (untrained) masker this run trains."""
        cfg = self.cfg
        return PhangMasker(MaskerConfig(stages=cfg.stages, final_upsample=cfg.final_upsample, gumbel=cfg.gumbel,
                                        gumbel_temperature=cfg.gumbel_temperature,
                                        stage_channels=self.classifier.stage_channels))

    def validation_figures(self) -> dict[str, float]:
        return validate(self.classifier, self.masker, self.val_loader, self.reference, self.autocast,
                        self.channels_last)

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
        infiller = seeded_infiller(cfg.infiller, cfg.infiller_options, self.step_seed("infill"))
        fill_in = infiller(x, m) if need_in else None
        fill_out = infiller(x, 1 - m) if need_out else None
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



def train(cfg: TrainConfig, progress: ProgressFn | None = None, show_bars: bool = True) -> Path:
    """Run (or resume) a training and return the path of the saved masker checkpoint."""
    try:
        return Trainer(cfg, progress=progress, show_bars=show_bars).run()
    finally:
        cleanup()
