"""Benchmark: one classifier forward (batch 1 and 32, 224x224) vs one masker explanation.

The masker reuses the forward's stage activations, so an explanation should cost little more than
the forward itself (target <= 1.3x at batch 1 on the CPU). Then the classifier's weight layout: the
channels-last weights ``load_classifier`` gives against the plain layout, at the batches the dashboard runs (1:
an explanation; 3: the masked views' predictions; 17: a 16-step insertion curve; 224 x 352, the sample photo's
working size). Run: ``python bench/bench_explain.py``.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import interleaved  # noqa: E402

from saliency_core.classifiers import load_classifier
from saliency_core.maskers.checkpoint import load_masker  # noqa: E402
from saliency_core.maskers.phang import MaskerConfig, PhangMasker
from saliency_core.methods.trained import default_checkpoint


def timed(fn, repeats: int) -> float:
    """Median seconds of ``fn()`` over ``repeats`` runs after two warm-up calls."""
    fn(), fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


@torch.inference_mode()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    clf = load_classifier(device=args.device)
    ckpt = default_checkpoint()
    if ckpt.exists():
        masker = load_masker(ckpt, clf, device=args.device).masker
    else:
        masker = PhangMasker(MaskerConfig(stage_channels=clf.stage_channels)).eval().to(clf.device)
    x1 = torch.randn(1, 3, 224, 224, device=clf.device)
    x32 = torch.randn(32, 3, 224, 224, device=clf.device)

    def explain_one() -> torch.Tensor:
        out = clf.forward_features(x1)
        return masker(out.stages, (224, 224))

    # forward and explanation alternate in one loop, so a shared CPU's load hits both alike
    fwd1, expl = interleaved([lambda: clf(x1), explain_one], args.repeats)
    fwd32 = timed(lambda: clf(x32), max(3, args.repeats // 10))
    stages = clf.forward_features(x1).stages
    head = timed(lambda: masker(stages, (224, 224)), args.repeats)
    print(f"torch threads: {torch.get_num_threads()}, device: {clf.device}, checkpoint: "
          f"{ckpt.name if ckpt.exists() else 'untrained masker'}")
    print(f"classifier forward, batch 1:  {fwd1 * 1e3:7.1f} ms")
    print(f"classifier forward, batch 32: {fwd32 * 1e3:7.1f} ms ({fwd32 / 32 * 1e3:.1f} ms per image)")
    print(f"masker head alone:            {head * 1e3:7.1f} ms")
    print(f"masker explanation (forward + masker), batch 1: {expl * 1e3:7.1f} ms")
    print(f"ratio explanation / forward (batch 1): {expl / fwd1:.2f}x  (target <= 1.3x)")

    plain = load_classifier(device=args.device, channels_last=False)
    print("\n| batch (224 x 352) | plain layout | channels-last | speed-up |\n|---|---|---|---|")
    for batch in (1, 3, 17):
        x = torch.randn(batch, 3, 224, 352, device=clf.device)
        t_plain, t_last = interleaved([lambda: plain(x), lambda: clf(x)], max(3, args.repeats // batch))
        print(f"| {batch} | {t_plain * 1e3:.1f} ms | {t_last * 1e3:.1f} ms | {t_plain / t_last:.2f}x |")


if __name__ == "__main__":
    main()
