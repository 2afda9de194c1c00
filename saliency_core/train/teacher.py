"""Per-image teacher regions for distilling the area masker (issue 25): ``extremal``'s ``cam`` parametrisation, run
once per training photo, game and area, read back by the training step.

Why: per image, 10-50 steps of ``extremal`` with ``parametrization=cam`` (the area masker's own parametrisation)
find regions that keep or remove the class far better than Grad-CAM's, while the amortised masker trained on the
bounded reward alone stays at Grad-CAM's level even on its own training photos. The teacher's regions are a dense
target (every pixel in or out) for the masker's scores, next to the reward.

A teacher file holds, for each training photo (keyed by the SHA-1 of its 224 px float tensor, as the training
loader yields it without augmentation), the binary regions of each game (``ssr``, ``sdr``) at each teacher area,
bit-packed. It records the areas, iterations, classifier identity and image size, checked when a run loads it.
Files can be made in shards (``--shard k --shards n``), one process each, and given to a run together.

    python -m saliency_core.train.teacher --config runs/x/config.yaml --out runs/teacher_0.pt --shard 0 --shards 2
"""
from __future__ import annotations

import argparse
import hashlib
import io
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

FORMAT = "saliency_core.teacher/1"
#: The games a teacher file holds (``both`` has none: its rows learn from the reward alone).
TEACHER_OBJECTIVES = ("ssr", "sdr")
DEFAULT_TEACHER_AREAS = (0.05, 0.1, 0.2, 0.4)


class TeacherError(ValueError):
    """A teacher file that cannot serve this run (one line)."""


def image_key(x01: torch.Tensor) -> str:
    """The key of one training image (3 x H x W in [0, 1]): SHA-1 of its float32 bytes (stable across processes)."""
    return hashlib.sha1(x01.detach().float().cpu().contiguous().numpy().tobytes()).hexdigest()


def pack(regions: torch.Tensor) -> torch.Tensor:
    """Bool regions (any shape) as packed uint8 bits."""
    return torch.from_numpy(np.packbits(regions.cpu().numpy().astype(bool).reshape(-1)))


def unpack(packed: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    n = int(np.prod(shape))
    return torch.from_numpy(np.unpackbits(packed.numpy())[:n].reshape(tuple(shape)).astype(np.float32))


def teacher_regions(classifier, x: torch.Tensor, label: int, objective: str, areas: Sequence[float],
                    iterations: int) -> torch.Tensor:
    """A x H x W bool: ``extremal`` (``cam``, gray fill, probability reward) of one normalised image at every area."""
    from saliency_core.methods.optimize.extremal import ExtremalConfig, extremal_masks

    cfg = ExtremalConfig(objective=objective, area=float(areas[0]), areas=tuple(float(a) for a in areas[1:]),
                         parametrization="cam", iterations=iterations, infiller="gray", reward="prob",
                         preview_every=0)
    return extremal_masks(classifier, x, [label], cfg).masks[:, 0] > 0.5


@dataclass
class Teacher:
    """The regions of one or more teacher files, looked up per training image."""

    areas: tuple[float, ...]
    size: tuple[int, int]
    regions: dict[str, dict[str, torch.Tensor]]  # key -> objective -> packed A x H x W

    @classmethod
    def load(cls, paths: Sequence[str | Path], classifier_identity: str, image_size: int) -> "Teacher":
        areas, regions = None, {}
        for path in paths:
            try:
                data = torch.load(Path(path), map_location="cpu", weights_only=True)
            except Exception as exc:  # noqa: BLE001 - any unreadable file: one line
                raise TeacherError(f"teacher file '{path}' cannot be read ({type(exc).__name__})") from None
            if not isinstance(data, dict) or data.get("format") != FORMAT:
                raise TeacherError(f"'{path}' is not a teacher file (python -m saliency_core.train.teacher)")
            if data.get("classifier_identity") != classifier_identity:
                raise TeacherError(f"teacher file '{path}' was made with classifier {data.get('classifier_identity')}, "
                                   f"not {classifier_identity}")
            if int(data.get("image_size", -1)) != image_size:
                raise TeacherError(f"teacher file '{path}' is at {data.get('image_size')} px, the run at {image_size}")
            these = tuple(float(a) for a in data["areas"])
            if areas is not None and these != areas:
                raise TeacherError(f"teacher files disagree on their areas ({areas} and {these})")
            areas = these
            regions.update(data["regions"])
        if areas is None:
            raise TeacherError("no teacher file given")
        return cls(areas, (image_size, image_size), regions)

    def region(self, x01: torch.Tensor, objective: str, area_index: int) -> torch.Tensor | None:
        """H x W float {0, 1}: the teacher's region of this image, game and area; None if it has none."""
        entry = self.regions.get(image_key(x01), {}).get(objective)
        if entry is None:
            return None
        return unpack(entry, (len(self.areas), *self.size))[area_index]


def teacher_rows(settings: list, x01: torch.Tensor, teacher: Teacher, share: float, generator: torch.Generator
                 ) -> tuple[list, list[tuple[int, torch.Tensor]]]:
    """Redraw a ``share`` of the ``ssr`` / ``sdr`` rows at one of the teacher's areas with gray fill (its setting)
    and return the settings and (row, region H x W) of the rows the teacher has a region for. Every ``ssr`` /
    ``sdr`` row draws two numbers from ``generator``, taught or not (a resumed step draws the same)."""
    import dataclasses

    out, taught = list(settings), []
    for i, s in enumerate(settings):
        if s.objective not in TEACHER_OBJECTIVES:
            continue
        u = float(torch.rand((), generator=generator))
        k = int(torch.randint(len(teacher.areas), (1,), generator=generator))
        if u >= share:
            continue
        region = teacher.region(x01[i], s.objective, k)
        if region is None:
            continue
        out[i] = dataclasses.replace(s, infiller="gray", area=teacher.areas[k])
        taught.append((i, region))
    return out, taught


def teacher_loss(scores: torch.Tensor, areas: torch.Tensor, regions: torch.Tensor, temperature: float) -> torch.Tensor:
    """Per row: the binary cross-entropy of the teacher's region (B x H x W, {0, 1}) against the masker's scores
    (B x 1 x H x W) standardised and centred on their own a-quantile, over ``temperature``: every pixel learns which
    side of the threshold the teacher put it (a dense gradient, unlike the nearly binary mask's)."""
    from saliency_core.maskers.area import area_threshold, standardise

    z = standardise(scores[:, 0].float())
    q, _ = area_threshold(z, areas)
    logits = (z - q.view(-1, 1, 1)) / temperature
    return torch.nn.functional.binary_cross_entropy_with_logits(logits, regions.to(logits), reduction="none"
                                                                ).flatten(1).mean(1)


def make_teacher(config_path: str, out: str, iterations: int, areas: Sequence[float], shard: int, shards: int,
                 limit: int | None = None, skip: int = 0) -> dict[str, Any]:
    """Compute and write (atomically; an existing file is refused) the teacher file of one shard of a run's
    training photos, as the run's config reads them (same data, split, size; no augmentation): the shard's photos
    from ``skip`` on, at most ``limit`` of them (a later file can extend an earlier one)."""
    from tqdm import tqdm

    from saliency_core.classifiers import load_classifier
    from saliency_core.datasets import ImageDataset, class_disjoint_split, read_samples, train_transform
    from saliency_core.files import atomic_write_bytes
    from saliency_core.train.conditional_config import ConditionalTrainConfig
    from saliency_core.train.rng import isolated_rng

    if Path(out).exists():
        raise TeacherError(f"{out} exists: give another --out (a teacher file is never overwritten)")
    cfg = ConditionalTrainConfig.from_yaml(config_path)
    if cfg.augment:
        raise TeacherError("a teacher needs a run without augmentation (its images are keyed by their pixels)")
    with isolated_rng(cfg.seed, torch.device("cpu")):  # as the trainer builds it (a random classifier's too)
        clf = load_classifier(cfg.classifier, cfg.classifier_weights, random_init=cfg.classifier_random_init,
                              num_classes=cfg.num_classes)
    samples = read_samples(cfg.data)
    train, _ = class_disjoint_split(samples, cfg.val_fraction, cfg.split_seed)
    mine = train[shard::shards][skip:][:limit]
    ds = ImageDataset(mine, train_transform(cfg.image_size, False))
    regions: dict[str, dict[str, torch.Tensor]] = {}
    t0 = time.perf_counter()
    for i in tqdm(range(len(ds)), desc=f"teacher shard {shard}/{shards}", dynamic_ncols=True):
        x01, _ = ds[i]
        x = clf.preprocessing.normalize(x01[None])
        with torch.no_grad():
            label = int(clf(x).argmax())
        regions[image_key(x01)] = {obj: pack(teacher_regions(clf, x, label, obj, areas, iterations))
                                   for obj in TEACHER_OBJECTIVES}
    data = {"format": FORMAT, "areas": [float(a) for a in areas], "iterations": int(iterations),
            "classifier_identity": clf.identity, "image_size": int(cfg.image_size), "regions": regions}
    buf = io.BytesIO()
    torch.save(data, buf)
    atomic_write_bytes(out, buf.getvalue())
    return {"photos": len(ds), "seconds": round(time.perf_counter() - t0, 1), "out": out}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True, help="the run's config.yaml (data, split, image size, classifier)")
    p.add_argument("--out", required=True, help="the teacher file to write (never overwritten)")
    p.add_argument("--iterations", type=int, default=10)
    p.add_argument("--areas", default=",".join(f"{a:g}" for a in DEFAULT_TEACHER_AREAS))
    p.add_argument("--shard", type=int, default=0)
    p.add_argument("--shards", type=int, default=1)
    p.add_argument("--limit", type=int, default=None, help="at most this many photos of the shard")
    p.add_argument("--skip", type=int, default=0, help="leave out the shard's first N photos (made by an earlier file)")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if not 0 <= args.shard < args.shards:
        p.error(f"--shard must be in 0 .. {args.shards - 1}")
    try:
        areas = tuple(float(a) for a in args.areas.split(","))
        print(make_teacher(args.config, args.out, args.iterations, areas, args.shard, args.shards, args.limit,
                           args.skip))
    except (TeacherError, ValueError) as exc:
        p.exit(2, f"error: {exc}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
