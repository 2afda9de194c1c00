"""Benchmark: top-5 per-label masks from the label-conditioned masker vs one forward and vs per-image optimisation.

Issue targets on the CPU: the top-5 masks of one 224 x 224 image in at most 2 x one classifier forward
(the masker reuses that forward's stage activations and decodes the five labels in one batched pass),
and at least 50 x faster than per-image optimisation of the same five labels (``gupta`` preset, batched).
The forward and the masker are timed interleaved (median of ``--repeats``); the optimisation once
(``--optimize-runs``), since it takes seconds to minutes. The cost does not depend on the weights, so
without a label checkpoint an untrained masker of the same architecture is timed.

    .venv/bin/python bench/bench_label_masker.py [--checkpoint FILE] [--threads 1] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import interleaved  # noqa: E402

from saliency_core.classifiers import load_classifier
from saliency_core.maskers.checkpoint import load_masker  # noqa: E402
from saliency_core.maskers.label import LabelMasker, LabelMaskerConfig, output_layer_weights
from saliency_core.methods.optimize.config import make_config
from saliency_core.methods.optimize.engine import optimize_masks
from saliency_core.methods.trained import default_checkpoint
from saliency_core.train.label_masker import LabelMaskerTrainConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="label masker checkpoint (default: the shipped one)")
    parser.add_argument("--labels", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--optimize-preset", default="gupta")
    parser.add_argument("--optimize-runs", type=int, default=1)
    parser.add_argument("--optimize-steps", type=int, default=None, help="override the preset's steps (smoke runs)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    clf = load_classifier(device=args.device)
    ckpt_path = Path(args.checkpoint) if args.checkpoint else default_checkpoint("label")
    reader = clf  # the classifier whose activations the masker reads: a CA checkpoint brings its own
    if ckpt_path.exists():
        ckpt = load_masker(ckpt_path, clf, device=args.device)
        masker, source, reader = ckpt.masker, str(ckpt_path), ckpt.classifier
        if reader is not clf:
            source += " (CA: its co-trained classifier runs once more, and is timed)"
    else:
        film_at = LabelMaskerTrainConfig().film_at  # what `saliency train --kind label` builds by default
        masker = LabelMasker(LabelMaskerConfig(stage_channels=clf.stage_channels, film_at=film_at,
                                               label_dim=output_layer_weights(clf).shape[1])).eval().to(clf.device)
        source = f"untrained, film_at={film_at} (the cost does not depend on the weights; no label checkpoint found)"
    codes_all = output_layer_weights(reader)
    from skimage import data  # a real photo (chelsea, a tabby cat), so early stopping behaves as on real input

    photo = torch.from_numpy(data.chelsea()).permute(2, 0, 1)[None].float() / 255
    photo = torch.nn.functional.interpolate(photo, size=(224, 224), mode="bilinear", antialias=True)
    x = clf.preprocessing.normalize(photo.clamp(0, 1)).to(clf.device)
    k = args.labels

    @torch.inference_mode()
    def forward() -> None:
        clf.forward_features(x)

    @torch.inference_mode()
    def label_masks() -> torch.Tensor:
        out = clf.forward_features(x)
        top = out.logits.topk(k, dim=1).indices[0]
        if reader is not clf:
            out = reader.forward_features(x)
        return masker(out.stages, tuple(x.shape[-2:]), codes_all[top], head=out.head)

    assert label_masks().shape == (k, 1, 224, 224)
    t_fwd, t_lm = interleaved([forward, label_masks], args.repeats)
    with torch.inference_mode():
        top = clf(x).topk(k, dim=1).indices[0].tolist()
    cfg = make_config(args.optimize_preset, **({"steps": args.optimize_steps} if args.optimize_steps else {}))
    opt_times = []
    for _ in range(args.optimize_runs):
        t = time.perf_counter()
        optimize_masks(clf, x, top, cfg)
        opt_times.append(time.perf_counter() - t)
    t_opt = statistics.median(opt_times)
    rows = {"threads": torch.get_num_threads(), "device": args.device, "labels": k, "masker": source,
            "forward_ms": t_fwd * 1e3, "label_masker_ms": t_lm * 1e3, "optimize_s": t_opt,
            "ratio_to_forward": t_lm / t_fwd, "speedup_vs_optimize": t_opt / t_lm}
    print(f"torch threads {rows['threads']}, device {args.device}, masker: {source}")
    print(f"classifier forward, batch 1:                    {t_fwd * 1e3:8.1f} ms")
    print(f"label masker, top-{k} masks (forward + masker):  {t_lm * 1e3:8.1f} ms   "
          f"ratio {t_lm / t_fwd:.2f}x one forward (target <= 2x)")
    print(f"per-image optimisation '{args.optimize_preset}', top-{k} batched: {t_opt:8.1f} s    "
          f"label masker is {t_opt / t_lm:,.0f}x faster (target >= 50x)")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
