"""A run's data, prepared before step 1: every image decoded once (bad ones refused in one error or left out), the
class-disjoint validation split (or ``val_data``), few-shot and only-correct selection, label range and batch
checks, and the seeded training dataset and validation loader."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch.utils.data import DataLoader

from saliency_core.classifiers import Classifier
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
from saliency_core.train.config import ConfigError, RunConfig, batch_filled_infillers
from saliency_core.train.data import SeededAugmentation
from saliency_core.train.distributed import DistInfo, all_gather_object

ProgressFn = Callable[[float, str], None]


@dataclass
class RunData:
    """The training and validation images of a run, and how they are loaded."""

    train_samples: list[Sample]
    val_samples: list[Sample]
    train_ds: SeededAugmentation
    val_loader: DataLoader | None  # on the main process only (it alone validates)


def checked_samples(source: str, cfg: RunConfig, dist: DistInfo, log: Callable[[str], None], show_bars: bool,
                    progress: ProgressFn | None) -> list[Sample]:
    """The samples of ``source``, every image decoded in full once before step 1 (each process decodes its share);
    bad ones refused in one error, or left out and listed with ``skip_bad_images``."""
    samples = read_samples(source)
    mine = samples[dist.rank::dist.world_size]
    found = find_bad_images(mine, workers=max(1, cfg.num_workers), show_bar=show_bars, progress=progress)
    index = {id(s): dist.rank + k * dist.world_size for k, s in enumerate(mine)}
    bad = sorted(pair for share in all_gather_object([(index[id(s)], why) for s, why in found], dist)
                 for pair in share)
    report_bad_images(len(samples), [(samples[i], why) for i, why in bad], cfg.skip_bad_images, log,
                      root=data_root(source))
    left_out = {i for i, _ in bad}
    return [s for i, s in enumerate(samples) if i not in left_out]


def prepare_data(cfg: RunConfig, classifier: Classifier, dist: DistInfo, device: torch.device,
                 log: Callable[[str], None], show_bars: bool, progress: ProgressFn | None,
                 batch_norm_stages: Callable[[], tuple[int, int]]) -> RunData:
    """Everything the run reads, checked before anything is written (see the module docstring).
    ``batch_norm_stages`` gives (cells, stage) of the smallest stage whose batch norm trains."""
    samples = checked_samples(cfg.data, cfg, dist, log, show_bars, progress)
    if cfg.val_data:
        train_s, val_s = samples, checked_samples(cfg.val_data, cfg, dist, log, show_bars, progress)
    else:
        train_s, val_s = class_disjoint_split(samples, cfg.val_fraction, cfg.split_seed)
    if cfg.few_shot_classes or cfg.few_shot_per_class:
        train_s = few_shot(train_s, cfg.few_shot_classes, cfg.few_shot_per_class, cfg.few_shot_seed)
    bad = [s for s in train_s + val_s if not 0 <= s.label < classifier.num_classes]
    if bad:
        raise ConfigError(f"label {bad[0].label} of '{bad[0].path}' is outside the classifier's "
                          f"{classifier.num_classes} classes")
    if cfg.only_correct:
        before = len(train_s)
        train_s = correctly_classified(train_s, classifier, cfg.image_size, cfg.val_batch_size, progress=progress)
        if not train_s:
            raise ConfigError("the classifier gets none of the training images right (only_correct)")
        log(f"only_correct: training on {len(train_s)} of {before} images")
    check_batches(cfg, len(train_s), dist.world_size, batch_norm_stages)
    train_ds = SeededAugmentation(ImageDataset(train_s, train_transform(cfg.image_size, cfg.augment)), cfg.seed)
    val_loader = None
    if val_s and dist.is_main:
        val_loader = DataLoader(ImageDataset(val_s, eval_transform(cfg.image_size)), batch_size=cfg.val_batch_size,
                                num_workers=cfg.num_workers, pin_memory=device.type == "cuda",
                                generator=torch.Generator())
    return RunData(train_s, val_s, train_ds, val_loader)


def check_batches(cfg: RunConfig, n_train: int, world: int, batch_norm_stages: Callable[[], tuple[int, int]]) -> None:
    """Refuse, before anything is written, a run whose batches cannot make a step: an infiller that fills from
    the batch (random-image) needs 2+ images in every batch, and the masker's batch norm (and a CA
    classifier's) needs 2+ values per channel over the smallest stage it trains on."""
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
    cells, stage = batch_norm_stages()
    if smallest * cells < 2:
        reason = because + ")" if smallest < cfg.batch_size else (
            f"batch_size is {cfg.batch_size} (use a batch of 2 or more, or a larger image_size)")
        raise ConfigError(f"at image_size {cfg.image_size} stage {stage} is {cells} cell, so batch norm in "
                          f"training needs at least 2 images per batch; {reason}")


@torch.no_grad()
def smallest_trained_stage(classifier: Classifier, image_size: int, stages: tuple[int, ...], every_stage: bool,
                           device: torch.device) -> tuple[int, int]:
    """(cells, stage): the fewest h x w cells among the stages whose batch norm trains (the masker's reducers over
    ``stages``; with ``every_stage``, a training classifier's, every stage), at the training image size."""
    was_training = classifier.training
    classifier.eval()
    out = classifier.forward_features(torch.zeros(1, 3, image_size, image_size, device=device)).stages
    classifier.train(was_training)
    read = range(1, len(out) + 1) if every_stage else stages
    cells = [(out[s - 1].shape[-2] * out[s - 1].shape[-1], s) for s in read if 1 <= s <= len(out)]
    return min(cells, default=(image_size * image_size, 0))  # a stage the classifier lacks: the masker's config says
