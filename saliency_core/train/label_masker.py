"""Training the label-conditioned masker from the Gupta et al. objective, FIX or CA, on the one training loop.

:class:`LabelTrainer` is a :class:`saliency_core.train.loop.BaseTrainer`: the run folder (``config.yaml``,
``steps.csv``, ``epochs.csv``, ``tb/``, ``state.pt``, ``masker.safetensors``), resuming after a kill, torchrun,
validation on the held-out classes after each epoch (:func:`saliency_core.train.validation.validate_label`) and
the CA pool are the loop's; this module adds the masker, the label draws and the step.

FIX: the classifier is frozen. CA (classifier-agnostic, Zolna et al.): the classifier keeps training
(SGD) on clean images and on images with the top label's most salient pixels deleted, and the masker's
composites are judged by the latest classifier or by a snapshot from a pool of its past selves (CASM's
thinning strategies). Its BatchNorm statistics stay frozen (eval mode): batches of a few images would
make them noise. The checkpoint then carries the co-trained classifier, whose activations the masker reads.

For each image, labels are drawn from the classifier's own distribution: the top-1 label, one
label sampled from p(.|x) among the rest of the top-k, and one low-probability label drawn
uniformly. Composites keep the masked pixels and take the rest from another image of the batch
(random-image infill); their label log-probability enters either the plain Gupta objective
(maximise it) or the calibrated one (track the classifier's own f(x,a); see
:func:`saliency_core.objectives.calibrated_label_loss`), plus L1 area and TV. The insertion objective (the
default) estimates the label's insertion AUC from soft "keep the top t" composites on gray.

Several processes: the masker is not wrapped in DDP (the insertion step calls its parts, not its forward); its
gradients, like a CA classifier's, are averaged with one all-reduce per step.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from saliency_core.infill.composite import composite
from saliency_core.maskers.label import LabelMasker, LabelMaskerConfig, output_layer_weights
from saliency_core.objectives import (
    calibrated_label_loss,
    completeness_soundness_loss,
    gupta_label_loss,
    soft_insertion_keep,
    total_variation,
)
from saliency_core.train.distributed import all_reduce_mean_, cleanup
from saliency_core.train.label_config import LabelMaskerTrainConfig
from saliency_core.train.loop import BaseTrainer, ProgressFn
from saliency_core.train.validation import validate_label

__all__ = ["LabelMaskerTrainConfig", "LabelTrainer", "train_label_masker", "draw_labels", "insertion_step",
           "scale_term", "delete_top", "LABEL_STEP_FIELDS"]

#: Columns of a label masker run's steps.csv.
LABEL_STEP_FIELDS = ["step", "epoch", "lr", "loss", "fit", "area", "tv", "gap_top1", "mask_mean", "judge", "cls_loss",
                     "step_s"]


def draw_labels(probs: torch.Tensor, top_k: int, low: int, generator: torch.Generator, rest: int = 1,
                uniform: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image: the top-1 label, ``rest`` distinct labels of ranks 2..top_k (sampled by probability,
    or uniformly: the weak labels of the top-k are the hard ones for completeness), and ``low`` uniform
    labels from outside the top-k. Returns (labels, image_index), both flat."""
    b, n = probs.shape
    top = probs.topk(top_k, dim=1)
    labels, index = [], []
    for i in range(b):
        rest_p = torch.ones(top_k - 1) if uniform else top.values[i, 1:].float()
        picks = torch.multinomial(rest_p / rest_p.sum(), rest, replacement=False, generator=generator)
        chosen = [int(top.indices[i, 0])] + [int(top.indices[i, 1 + int(p)]) for p in picks]
        excluded = set(top.indices[i].tolist())
        while len(chosen) < 1 + rest + low:
            c = int(torch.randint(0, n, (1,), generator=generator))
            if c not in excluded and c not in chosen:
                chosen.append(c)
        labels += chosen
        index += [i] * len(chosen)
    return torch.tensor(labels), torch.tensor(index)


def insertion_step(clf, masker: LabelMasker, x: torch.Tensor, stages: list[torch.Tensor], codes: torch.Tensor,
                   labels: torch.Tensor, idx: torch.Tensor, f: torch.Tensor, cfg: "LabelMaskerTrainConfig",
                   generator: torch.Generator, head: torch.Tensor | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The insertion objective for one batch: (loss per label, soft insertion AUC g, masks).

    Each label's mask ranks the pixels; ``cfg.fractions`` stratified random shares t are kept (soft
    top-t maps from the low-resolution logits, upsampled bilinearly by 4 as Gupta et al.), the rest
    is gray (0), exactly as the evaluation's insertion curve; g = mean of the label's probability over
    those composites estimates its insertion AUC, and the loss is (1 - completeness) + w (1 - soundness).
    """
    size = tuple(x.shape[-2:])
    logits = masker.mask_logits(masker.features(stages, size), codes, idx, head)         # K x 1 x h x w
    k, t = logits.shape[0], cfg.fractions
    u = torch.rand(k, t, generator=generator).to(x.device)
    fractions = (torch.arange(t, device=x.device) + u) / t                           # stratified in (0, 1)
    keep = soft_insertion_keep(logits, fractions, cfg.keep_temperature)              # K x T x h x w
    keep = F.interpolate(keep, size=size, mode="bilinear", align_corners=False)
    comp = (x[idx][:, None] * keep[:, :, None]).flatten(0, 1)                        # K*T x 3 x H x W
    probs = F.softmax(clf(comp).float(), dim=-1).view(k, t, -1)
    p = probs.gather(2, labels.view(k, 1, 1).expand(k, t, 1))[..., 0]
    g = p.mean(1)
    loss = completeness_soundness_loss(g, f, cfg.eps1, cfg.eps2, cfg.soundness_weight)
    masks = torch.sigmoid(F.interpolate(logits, size=size, mode="bilinear", align_corners=False))
    return loss, g, masks


def scale_term(clf, x: torch.Tensor, masks: torch.Tensor, labels: torch.Tensor, idx: torch.Tensor,
               log_f: torch.Tensor, cfg: "LabelMaskerTrainConfig") -> torch.Tensor:
    """Calibrated loss of the masks themselves on random-image composites (another image of the batch fills
    the unkept pixels): with the L1 term it makes a mask keep just enough for f(x,a), so mask values mean
    something. The target is max(f, eps2), as in the soundness metric: no composite can go below chance."""
    background = x.roll(1, dims=0)[idx]
    comp = composite(x[idx], masks, background)
    logp = F.log_softmax(clf(comp).float(), dim=-1).gather(1, labels[:, None])[:, 0]
    target = log_f.detach().clamp_min(float(np.log(cfg.eps2)))
    return calibrated_label_loss(logp, target, cfg.overshoot_weight)


def delete_top(x: torch.Tensor, masks: torch.Tensor, fraction: torch.Tensor) -> torch.Tensor:
    """Images with their top ``fraction`` of pixels (ranked by ``masks``, one per image) set to gray (0): the
    masked-out images a CA classifier learns from, so the masker must find *all* the label's evidence."""
    flat = masks.detach().flatten(1)
    k = (fraction.to(flat.device) * flat.shape[1]).long().clamp(1, flat.shape[1])
    thresholds = flat.sort(dim=1, descending=True).values.gather(1, (k - 1)[:, None])
    keep = (flat < thresholds).float().view_as(masks)
    return x * keep


class LabelTrainer(BaseTrainer):
    """A label masker's run (see the module docstring); ``run()`` returns the checkpoint's path."""

    masker_kind = "label"
    step_fields = LABEL_STEP_FIELDS
    loss_key = "loss"
    wraps_masker_in_ddp = False
    freezes_classifier_batch_norm = True
    keeps_reference = False  # its validation judges by the classifier its masker reads only
    cfg: LabelMaskerTrainConfig

    def build_masker(self) -> torch.nn.Module:
        cfg, clf = self.cfg, self.classifier
        # the output layer's rows, a view of the live weights: a CA classifier's updates (and a resumed state) show
        self.codes_all = output_layer_weights(clf)
        return LabelMasker(LabelMaskerConfig(stages=cfg.stages, stage_channels=clf.stage_channels,
                                             label_dim=self.codes_all.shape[1], film_at=cfg.film_at,
                                             label_map=cfg.label_map))

    def validation_figures(self) -> dict[str, float]:
        cfg = self.cfg
        return validate_label(self.classifier, self.masker, self.val_loader, cfg.top_k, cfg.eps1, cfg.eps2,
                              self.autocast, self.channels_last)

    def extra_figures(self) -> dict[str, Any]:
        return {"labels_per_image": self.cfg.labels_per_image, "final_area": getattr(self, "_last_area", None)}

    def training_step(self, x01: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
        cfg, dev, clf = self.cfg, self.device, self.classifier
        x = clf.preprocessing.normalize(x01.to(dev, non_blocking=True))
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = y.to(dev, non_blocking=True)
        gen = torch.Generator().manual_seed(self.step_seed("labels"))
        clf.eval()  # frozen batch norm, in CA too
        with self.autocast(), torch.set_grad_enabled(self.train_classifier):  # CA: the clean pass trains it
            clean = clf.forward_features(x)
        index = self.pool.draw() if self.pool is not None else None
        judge = clf
        if index is not None:
            self.pool.load_into(self.judge.model, index)
            judge = self.judge
        with torch.no_grad(), self.autocast():  # f(x,a) of the classifier that judges this step
            logp_clean = F.log_softmax((clean.logits if judge is clf else judge(x)).detach().float(), dim=-1)
        labels, idx = draw_labels(logp_clean.exp().cpu(), cfg.top_k, cfg.low_probability_labels, gen,
                                  rest=cfg.rest_labels, uniform=cfg.objective == "insertion")
        labels, idx = labels.to(dev), idx.to(dev)
        log_f = logp_clean[idx, labels]
        stages = [s.float() for s in clean.stages]
        head = clean.head.float() if clean.head is not None else None
        with self.autocast():
            if cfg.objective == "insertion":
                per_label, g, m = insertion_step(judge, self.masker, x, stages, self.codes_all[labels], labels, idx,
                                                 log_f.exp(), cfg, gen, head=head)
                fit = per_label.mean()
                logp = g.clamp_min(1e-12).log()
                if cfg.scale_weight > 0:
                    fit = fit + cfg.scale_weight * scale_term(judge, x, m, labels, idx, log_f, cfg)
            else:
                m = self.masker(stages, tuple(x.shape[-2:]), self.codes_all[labels], idx, head=head)
                background = x.roll(1, dims=0)[idx]  # another image of the batch
                logp = F.log_softmax(judge(composite(x[idx], m, background)).float(), dim=-1) \
                    .gather(1, labels[:, None])[:, 0]
                fit = (calibrated_label_loss(logp, log_f, cfg.overshoot_weight) if cfg.objective == "calibrated"
                       else gupta_label_loss(logp))
        m = m.float()
        area = m.mean()
        tv = total_variation(m)
        loss = fit.float() + cfg.l1_weight * area + cfg.tv_weight * tv
        self.opt_m.zero_grad(set_to_none=True)
        self._scale(loss).backward(inputs=self.masker_params)  # never into a CA classifier's weights
        all_reduce_mean_([p.grad for p in self.masker_params], self.dist)
        if self.scaler is not None:
            self.scaler.unscale_(self.opt_m)
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.masker_params, cfg.grad_clip)
        self._opt_step(self.opt_m)
        cls_loss = self._classifier_step(clean.logits, x, y, m[::cfg.labels_per_image], gen) \
            if self.train_classifier else 0.0
        if self.scaler is not None:
            self.scaler.update()
        row: dict[str, Any] = {"loss": float(loss.detach()), "fit": float(fit.detach()), "area": float(area.detach()),
                               "tv": float(tv.detach()),
                               "gap_top1": float((logp - log_f).detach()[::cfg.labels_per_image].mean()),
                               "mask_mean": float(area.detach()), "cls_loss": cls_loss}
        if self.dist.enabled:  # log the mean over processes
            keys = sorted(row)
            vals = torch.tensor([row[k] for k in keys], dtype=torch.float64)
            all_reduce_mean_([vals], self.dist)
            row = dict(zip(keys, vals.tolist()))
        self._last_area = row["area"]
        row["judge"] = "fixed" if not self.train_classifier else "latest" if index is None else f"pool:{index}"
        return row

    def _classifier_step(self, clean_logits: torch.Tensor, x: torch.Tensor, y: torch.Tensor, top_masks: torch.Tensor,
                         gen: torch.Generator) -> float:
        """One SGD step of the CA classifier on clean + top-label-deleted images (CASM's mixed loss)."""
        cfg = self.cfg
        lo, hi = cfg.deleted_fraction
        fraction = lo + (hi - lo) * torch.rand(x.shape[0], generator=gen)
        with self.autocast():
            deleted = self.classifier(delete_top(x, top_masks, fraction))
        loss = F.cross_entropy(clean_logits.float(), y) + F.cross_entropy(deleted.float(), y)
        self.opt_c.zero_grad(set_to_none=True)
        self._scale(loss).backward(inputs=self.clf_params)
        all_reduce_mean_([p.grad for p in self.clf_params], self.dist)
        if self.scaler is not None:
            self.scaler.unscale_(self.opt_c)
        if cfg.classifier_grad_clip:
            torch.nn.utils.clip_grad_norm_(self.clf_params, cfg.classifier_grad_clip)
        self._opt_step(self.opt_c)
        self.cls_updates += 1
        if self.pool is not None:
            self.pool.observe(self.classifier.model, self.cls_updates)
        return float(loss.detach())


def train_label_masker(cfg: LabelMaskerTrainConfig, progress: ProgressFn | None = None,
                       show_bars: bool = True) -> Path:
    """Run (or resume) a label masker's training; returns ``<out>/masker.safetensors`` (kind "label")."""
    try:
        return LabelTrainer(cfg, progress=progress, show_bars=show_bars).run()
    finally:
        cleanup()
