"""Masker training (FIX: the classifier is frozen and only the masker learns).

``TrainConfig`` is the one config of a training run (CLI flags or YAML); ``train(cfg)`` runs it and
writes ``<out>/config.yaml``, ``steps.csv``, ``epochs.csv`` and ``masker.safetensors`` (+ ``.json``).
"""
from __future__ import annotations

import csv
import json
import math
import random
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .checkpoint import save_masker
from .classifier import Classifier, load_classifier
from .data import ImageDataset, class_disjoint_split, eval_transform, few_shot, read_samples, train_transform
from .device import resolve_device
from .infill import make_infiller
from .masker import MaskerConfig, PhangMasker
from .masking import composite
from .objectives import MaskerObjective, entropy, masker_loss


@dataclass
class TrainConfig:
    """One masker-training run."""

    data: str = "../shared/data/imagenet-samples/labels.csv"
    out: str = "runs/fix"
    classifier: str = "efficientnet_lite0"
    classifier_weights: str | None = None
    mode: str = "fix"
    stages: tuple[int, ...] = (4, 5)
    gumbel: str = "off"
    gumbel_temperature: float = 0.1
    objective: str = "in+out-entropy"
    lambda_in: float = 1.0
    lambda_out: float = 1.0
    lambda_area_in: float = 1.0
    lambda_area_out: float = 10.0
    lambda_tv: float = 1e-3
    infiller: str = "gray"
    epochs: int = 8
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    grad_clip: float = 10.0
    lr_step_epochs: int = 0  # 0 = no step decay; the papers use 20 (of 60)
    lr_gamma: float = 0.1
    image_size: int = 224
    augment: bool = True
    val_fraction: float = 0.125
    split_seed: int = 0
    few_shot_classes: int | None = None
    few_shot_per_class: int | None = None
    seed: int = 0
    device: str = "auto"
    num_workers: int = 0
    max_steps: int | None = None

    def __post_init__(self) -> None:
        self.stages = tuple(int(s) for s in self.stages)
        if self.mode not in ("fix",):
            raise ValueError(f"unknown mode '{self.mode}'")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be >= 1")

    def objective_config(self) -> MaskerObjective:
        return MaskerObjective(self.objective, self.lambda_in, self.lambda_out, self.lambda_area_in,
                               self.lambda_area_out, self.lambda_tv)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["stages"] = list(self.stages)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown config keys: {', '.join(sorted(unknown))}")
        return cls(**d)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@torch.no_grad()
def validate(classifier: Classifier, masker: PhangMasker, loader: DataLoader, device: torch.device) -> dict[str, float]:
    """Masked-in / masked-out accuracy, masked-out entropy and mean mask (gray fill)."""
    masker.eval()
    tot = {"clean_acc": 0.0, "in_acc": 0.0, "out_acc": 0.0, "out_entropy": 0.0, "mask_mean": 0.0}
    n = 0
    for x01, y in loader:
        x = classifier.preprocessing.normalize(x01.to(device))
        y = y.to(device)
        clean = classifier.forward_features(x)
        m = masker(clean.stages, tuple(x.shape[-2:]))
        logits = classifier(torch.cat([composite(x, m), composite(x, 1 - m)]))
        li, lo = logits.chunk(2)
        b = x.shape[0]
        tot["clean_acc"] += (clean.logits.argmax(-1) == y).float().sum().item()
        tot["in_acc"] += (li.argmax(-1) == y).float().sum().item()
        tot["out_acc"] += (lo.argmax(-1) == y).float().sum().item()
        tot["out_entropy"] += entropy(lo).sum().item()
        tot["mask_mean"] += m.flatten(1).mean(1).sum().item()
        n += b
    masker.train()
    return {k: v / max(n, 1) for k, v in tot.items()}


def train(cfg: TrainConfig) -> Path:
    """Run a training and return the path of the saved masker checkpoint."""
    seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")

    classifier = load_classifier(cfg.classifier, cfg.classifier_weights, device=device)
    samples = read_samples(cfg.data)
    train_s, val_s = class_disjoint_split(samples, cfg.val_fraction, cfg.split_seed)
    if cfg.few_shot_classes or cfg.few_shot_per_class:
        train_s = few_shot(train_s, cfg.few_shot_classes, cfg.few_shot_per_class, cfg.seed)
    train_ds = ImageDataset(train_s, train_transform(cfg.image_size, cfg.augment))
    val_ds = ImageDataset(val_s, eval_transform(cfg.image_size)) if val_s else None
    gen = torch.Generator().manual_seed(cfg.seed)
    loader = DataLoader(train_ds, batch_size=cfg.batch_size, shuffle=True, drop_last=len(train_ds) > cfg.batch_size,
                        generator=gen, num_workers=cfg.num_workers, pin_memory=device.type == "cuda")
    val_loader = DataLoader(val_ds, batch_size=64) if val_ds else None

    masker = PhangMasker(MaskerConfig(stages=cfg.stages, gumbel=cfg.gumbel, gumbel_temperature=cfg.gumbel_temperature,
                                      stage_channels=classifier.stage_channels)).to(device).train()
    opt = torch.optim.Adam(masker.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.StepLR(opt, cfg.lr_step_epochs or 10**9, cfg.lr_gamma)
    objective = cfg.objective_config()
    infiller = make_infiller(cfg.infiller)

    step, t_start, images = 0, time.perf_counter(), 0
    epoch_rows: list[dict[str, Any]] = []
    with (out / "steps.csv").open("w", newline="") as f_steps:
        steps_writer = None
        for epoch in range(cfg.epochs):
            bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False)
            for x01, y in bar:
                x = classifier.preprocessing.normalize(x01.to(device, non_blocking=True))
                y = y.to(device)
                with torch.no_grad():
                    clean = classifier.forward_features(x)
                m = masker(clean.stages, tuple(x.shape[-2:]))
                x_in = composite(x, m, infiller(x, m)) if objective.uses_in else None
                x_out = composite(x, 1 - m, infiller(x, 1 - m)) if objective.uses_out else None
                logits = classifier(torch.cat([t for t in (x_in, x_out) if t is not None]))
                li, lo = (logits.chunk(2) if x_in is not None and x_out is not None
                          else (logits, None) if x_in is not None else (None, logits))
                terms = masker_loss(objective, m, y, clean.logits, li, lo)
                opt.zero_grad(set_to_none=True)
                terms["total"].backward()
                torch.nn.utils.clip_grad_norm_(masker.parameters(), cfg.grad_clip)
                opt.step()
                step += 1
                images += x.shape[0]
                row = {"step": step, "epoch": epoch + 1, **{k: round(float(v.detach()), 5) for k, v in terms.items()},
                       "mask_mean": round(float(m.detach().mean()), 4)}
                if steps_writer is None:
                    steps_writer = csv.DictWriter(f_steps, fieldnames=list(row))
                    steps_writer.writeheader()
                steps_writer.writerow(row)
                bar.set_postfix(loss=f"{row['total']:.3f}", mask=f"{row['mask_mean']:.2f}")
                if cfg.max_steps and step >= cfg.max_steps:
                    break
            sched.step()
            f_steps.flush()
            metrics = validate(classifier, masker, val_loader, device) if val_loader else {}
            row = {"epoch": epoch + 1, "steps": step, "elapsed_s": round(time.perf_counter() - t_start, 1),
                   **{f"val_{k}": round(v, 4) for k, v in metrics.items()}}
            epoch_rows.append(row)
            tqdm.write(json.dumps(row))
            _write_csv(out / "epochs.csv", epoch_rows)
            if cfg.max_steps and step >= cfg.max_steps:
                break
    elapsed = time.perf_counter() - t_start
    figures = {"train_images": len(train_ds), "val_images": len(val_ds) if val_ds else 0,
               "val_classes_disjoint": True, "steps": step, "wall_time_s": round(elapsed, 1),
               "images_per_s": round(images / elapsed, 2), "device": str(device),
               "final": epoch_rows[-1] if epoch_rows else {}}
    path = save_masker(out / "masker.safetensors", masker.eval(), classifier, cfg.to_dict(), figures)
    return path


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
