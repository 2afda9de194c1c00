"""Training the label-conditioned masker from the Gupta et al. objective, FIX or CA.

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
:func:`saliency_core.objectives.calibrated_label_loss`), plus L1 area and TV.
"""
from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from saliency_core.classifiers import load_classifier
from saliency_core.classifiers.pool import ClassifierPool, thinning_strategy
from saliency_core.datasets import (
    ImageDataset,
    check_images,
    class_disjoint_split,
    data_root,
    read_samples,
    train_transform,
)
from saliency_core.device import resolve_device
from saliency_core.infill.composite import composite
from saliency_core.maskers.checkpoint import save_masker
from saliency_core.maskers.label import LabelMasker, LabelMaskerConfig, output_layer_weights
from saliency_core.objectives import (
    LABEL_OBJECTIVES,
    calibrated_label_loss,
    completeness_soundness_loss,
    gupta_label_loss,
    soft_insertion_keep,
    total_variation,
)


@dataclass
class LabelMaskerTrainConfig:
    """One training run of the label-conditioned masker."""

    data: str = "../shared/data/imagenet-samples/labels.csv"
    out: str = "runs/label"
    classifier: str = "efficientnet_lite0"
    classifier_weights: str | None = None
    stages: tuple[int, ...] = (4, 5)
    mode: str = "fix"               # fix: frozen classifier; ca: it keeps training and a pool of its snapshots judges
    pool_strategy: str = "L100"     # CA thinning strategy: F, L, FL, L100, L1000
    pool_size: int = 30
    classifier_lr: float = 1e-4     # CA: SGD on the classifier (at 1e-3 it collapsed within 10 steps)
    classifier_grad_clip: float = 1.0  # CA: the frozen-BN EfficientNet's gradients spike without it
    classifier_momentum: float = 0.9
    classifier_weight_decay: float = 1e-4
    deleted_fraction: tuple[float, float] = (0.2, 0.5)  # CA: share of the top label's pixels deleted (uniform)
    film_at: str = "hidden"         # the decoder's FiLM: "hidden" (after the shared 3x3 conv; cheap) or "input"
    label_map: bool = False         # also read the label's class activation map (film_at "hidden" only)
    objective: str = "insertion"
    overshoot_weight: float = 1.0   # calibrated: weight of the overshoot term
    soundness_weight: float = 1.0   # insertion: weight of (1 - soundness) against (1 - completeness)
    fractions: int = 4              # insertion: soft insertion steps per label (stratified fractions)
    keep_temperature: float = 0.5   # insertion: softness (in logit units) of the "top t of the pixels" maps
    # insertion: weight of a calibrated random-image composite term on the mask itself (plus L1 and TV), which
    # gives the mask a readable scale (the insertion loss alone sees only the ranking, so its masks are flat)
    scale_weight: float = 0.0
    eps1: float = 0.01
    eps2: float = 0.001
    # on the mean mask (= Gupta's 2e-5 x sum over 224^2, about 1.0) and on the squared-difference sum of
    # the mask (Gupta et al.: 0.01); None: those values for gupta/calibrated, 0 for insertion (its loss
    # depends on the mask's ranking only, so an area or smoothness term has nothing to trade against)
    l1_weight: float | None = None
    tv_weight: float | None = None
    top_k: int = 5
    low_probability_labels: int = 1
    rest_labels: int = 1            # labels drawn from ranks 2..top_k (uniformly for insertion)
    epochs: int = 4
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 1e-4
    grad_clip: float = 10.0
    image_size: int = 224
    val_fraction: float = 0.125
    split_seed: int = 0
    seed: int = 0
    device: str = "auto"
    max_steps: int | None = None
    threads: int | None = None

    def __post_init__(self) -> None:
        self.stages = tuple(int(s) for s in self.stages)
        if self.film_at not in ("input", "hidden"):  # checked here too, before any data or model is loaded
            raise ValueError(f"film_at must be 'input' or 'hidden', got '{self.film_at}'")
        if self.label_map and self.film_at != "hidden":
            raise ValueError("label_map needs film_at='hidden'")
        if self.mode not in ("fix", "ca"):
            raise ValueError(f"mode must be 'fix' or 'ca', got '{self.mode}'")
        thinning_strategy(self.pool_strategy)  # PoolError (a ValueError) names the valid ones
        raw = self.deleted_fraction
        try:
            self.deleted_fraction = tuple(float(v) for v in (raw.split(",") if isinstance(raw, str) else raw))
        except ValueError:
            raise ValueError(f"deleted_fraction must look like 0.2,0.5, got '{raw}'") from None
        if len(self.deleted_fraction) != 2:
            raise ValueError(f"deleted_fraction must be two numbers (low,high), got '{raw}'")
        lo, hi = self.deleted_fraction
        if not 0 < lo <= hi < 1:
            raise ValueError(f"deleted_fraction must be 0 < low <= high < 1, got {self.deleted_fraction}")
        if self.pool_size < 1 or self.classifier_lr <= 0 or self.classifier_grad_clip < 0:
            raise ValueError("pool_size must be >= 1, classifier_lr > 0 and classifier_grad_clip >= 0")
        if self.objective not in LABEL_OBJECTIVES:
            raise ValueError(f"objective must be one of {LABEL_OBJECTIVES}, got '{self.objective}'")
        if self.scale_weight < 0:
            raise ValueError("scale_weight must be >= 0")
        if self.scale_weight > 0 and self.objective != "insertion":
            raise ValueError("scale_weight applies to the insertion objective only")
        ranking_only = self.objective == "insertion"
        if self.l1_weight is None:
            self.l1_weight = self.scale_weight * 1.0 if ranking_only else 1.0
        if self.tv_weight is None:
            self.tv_weight = self.scale_weight * 0.01 if ranking_only else 0.01
        for name in ("overshoot_weight", "soundness_weight", "l1_weight", "tv_weight", "lr", "eps1", "eps2"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.top_k < 2:
            raise ValueError("top_k must be >= 2")
        if self.fractions < 1 or self.rest_labels < 1 or not self.keep_temperature > 0:
            raise ValueError("fractions and rest_labels must be >= 1 and keep_temperature > 0")
        if self.rest_labels > self.top_k - 1:
            raise ValueError(f"rest_labels must be <= top_k - 1 = {self.top_k - 1}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["stages"] = list(self.stages)
        d["deleted_fraction"] = list(self.deleted_fraction)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "LabelMaskerTrainConfig":
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown config keys: {', '.join(sorted(unknown))}")
        return cls(**d)


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


class CoTraining:
    """The CA side of label-masker training: the training classifier, its optimiser and the judge pool."""

    def __init__(self, clf, cfg: "LabelMaskerTrainConfig", generator: torch.Generator) -> None:
        import copy

        self.clf, self.cfg, self.gen = clf, cfg, generator
        strategy = thinning_strategy(cfg.pool_strategy)
        self.trains = strategy.train_classifier
        clf.requires_grad_(self.trains)
        self.params = [p for p in clf.parameters() if p.requires_grad]
        self.opt = (torch.optim.SGD(self.params, lr=cfg.classifier_lr, momentum=cfg.classifier_momentum,
                                    weight_decay=cfg.classifier_weight_decay) if self.trains else None)
        self.pool = ClassifierPool.from_strategy(strategy, cfg.pool_size, seed=cfg.seed) if strategy.uses_pool else None
        self.judge_copy = copy.deepcopy(clf).eval().requires_grad_(False) if self.pool is not None else None
        self.updates = 0
        if self.pool is not None:
            self.pool.observe(clf.model, 0)

    def judge(self):
        """The classifier that scores this step's composites: the latest, or a pool snapshot."""
        index = self.pool.draw() if self.pool is not None else None
        return self.clf if index is None else self.pool.load_into(self.judge_copy.model, index)

    def step(self, clean_logits: torch.Tensor, x: torch.Tensor, y: torch.Tensor, top_masks: torch.Tensor) -> float:
        """One SGD step of the classifier on clean + top-label-deleted images (CASM's mixed loss)."""
        if not self.trains:
            return 0.0
        lo, hi = self.cfg.deleted_fraction
        fraction = lo + (hi - lo) * torch.rand(x.shape[0], generator=self.gen)
        loss = F.cross_entropy(clean_logits.float(), y) + F.cross_entropy(self.clf(delete_top(x, top_masks, fraction))
                                                                          .float(), y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward(inputs=self.params)
        if self.cfg.classifier_grad_clip:
            torch.nn.utils.clip_grad_norm_(self.params, self.cfg.classifier_grad_clip)
        self.opt.step()
        self.updates += 1
        if self.pool is not None:
            self.pool.observe(self.clf.model, self.updates)
        return float(loss.detach())


def train_label_masker(cfg: LabelMaskerTrainConfig) -> Path:
    """Train and save ``<out>/masker.safetensors`` (kind "label"); logs to ``steps.csv``."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    device = resolve_device(cfg.device)
    # every image decoded before anything is written in the run folder
    samples = check_images(read_samples(cfg.data), root=data_root(cfg.data), show_bar=True)
    train_s, val_s = class_disjoint_split(samples, cfg.val_fraction, cfg.split_seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
    clf = load_classifier(cfg.classifier, cfg.classifier_weights, device=device)
    codes_all = output_layer_weights(clf).to(device)  # a view of the live weights: CA updates show up in it
    ds = ImageDataset(train_s, train_transform(cfg.image_size))
    gen = torch.Generator().manual_seed(cfg.seed)
    loader = DataLoader(ds, batch_size=cfg.batch_size, shuffle=True, drop_last=True, generator=gen)
    masker = LabelMasker(LabelMaskerConfig(stages=cfg.stages, stage_channels=clf.stage_channels,
                                           label_dim=codes_all.shape[1], film_at=cfg.film_at,
                                           label_map=cfg.label_map)).to(device).train()
    opt = torch.optim.Adam(masker.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    total_steps = cfg.epochs * len(loader) if not cfg.max_steps else min(cfg.max_steps, cfg.epochs * len(loader))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.05, 1 - s / max(total_steps, 1)))
    co = CoTraining(clf, cfg, gen) if cfg.mode == "ca" else None
    per_image = 1 + cfg.rest_labels + cfg.low_probability_labels
    step, t0, rows = 0, time.perf_counter(), []
    bar = tqdm(total=total_steps, desc=f"label masker ({cfg.mode})", unit="step")
    for epoch in range(cfg.epochs):
        for x01, y in loader:
            x, y = clf.preprocessing.normalize(x01.to(device)), y.to(device)
            with torch.set_grad_enabled(co is not None and co.trains):  # CA: the clean pass trains the classifier
                clean = clf.forward_features(x)
            judge = co.judge() if co is not None else clf
            with torch.no_grad():  # f(x,a) of the classifier that judges this step
                logp_clean = F.log_softmax((clean.logits if judge is clf else judge(x)).detach().float(), dim=-1)
            labels, idx = draw_labels(logp_clean.exp().cpu(), cfg.top_k, cfg.low_probability_labels, gen,
                                      rest=cfg.rest_labels, uniform=cfg.objective == "insertion")
            labels, idx = labels.to(device), idx.to(device)
            log_f = logp_clean[idx, labels]
            if cfg.objective == "insertion":
                per_label, g, m = insertion_step(judge, masker, x, clean.stages, codes_all[labels], labels, idx,
                                                 log_f.exp(), cfg, gen, head=clean.head)
                fit = per_label.mean()
                logp = g.clamp_min(1e-12).log()
                if cfg.scale_weight > 0:
                    fit = fit + cfg.scale_weight * scale_term(judge, x, m, labels, idx, log_f, cfg)
            else:
                m = masker(clean.stages, tuple(x.shape[-2:]), codes_all[labels], idx, head=clean.head)
                background = x.roll(1, dims=0)[idx]  # another image of the batch
                comp = composite(x[idx], m, background)
                logp = F.log_softmax(judge(comp), dim=-1).gather(1, labels[:, None])[:, 0]
                fit = (calibrated_label_loss(logp, log_f, cfg.overshoot_weight) if cfg.objective == "calibrated"
                       else gupta_label_loss(logp))
            area = m.mean()
            tv = total_variation(m)
            loss = fit + cfg.l1_weight * area + cfg.tv_weight * tv
            opt.zero_grad(set_to_none=True)
            loss.backward(inputs=list(masker.parameters()))  # never into a CA classifier's weights
            torch.nn.utils.clip_grad_norm_(masker.parameters(), cfg.grad_clip)
            opt.step()
            sched.step()
            cls_loss = co.step(clean.logits, x, y, m[::per_image]) if co is not None else 0.0
            step += 1
            rows.append({"step": step, "epoch": epoch + 1, "loss": float(loss.detach()), "fit": float(fit.detach()),
                         "area": float(area.detach()), "tv": float(tv.detach()),
                         "gap_top1": float((logp - log_f).detach()[::per_image].mean()),
                         "cls_loss": cls_loss, "judge": "fixed" if co is None else
                         ("latest" if judge is clf else "pool")})
            bar.update(1)
            bar.set_postfix(loss=f"{rows[-1]['loss']:.3f}", area=f"{rows[-1]['area']:.2f}")
            if step >= total_steps:
                break
        if step >= total_steps:
            break
    bar.close()
    import pandas as pd

    pd.DataFrame(rows).to_csv(out / "steps.csv", index=False)
    elapsed = time.perf_counter() - t0
    figures = {"train_images": len(ds), "val_images": len(val_s), "steps": step, "wall_time_s": round(elapsed, 1),
               "images_per_s": round(step * cfg.batch_size / elapsed, 2), "device": str(device),
               "final_area": rows[-1]["area"] if rows else None}
    if co is not None:
        clf.eval().requires_grad_(False)
        figures["classifier_updates"] = co.updates
    return save_masker(out / "masker.safetensors", masker.eval(), clf, cfg.to_dict(), figures, kind="label",
                       include_classifier=co is not None and co.trains)
