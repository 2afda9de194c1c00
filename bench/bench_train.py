"""Training throughput and memory of masker training, and the cost of remaking the shipped maskers.

    python bench/bench_train.py                      # FIX and CA, batch 16, 224 px, on the CPU (+ CUDA if present)
    python bench/bench_train.py --steps 10 --batch-size 32 --modes fix --devices cuda --json out.json

Each (mode, device) runs in its own process (so its peak memory is its own): a few timed optimisation
steps of the real default classifier (EfficientNet-Lite0) on real images from
../shared/data/imagenet-samples (random images when absent), after one warm-up step. Peak memory is
the peak resident memory of that process on the CPU, or torch's peak allocated GPU memory on CUDA.
The wall time to remake each shipped checkpoint is read from its sidecar (``checkpoints/*.json``).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "imagenet-samples" / "labels.csv"


def one(mode: str, device: str, batch_size: int, steps: int, image_size: int, threads: int | None) -> dict:
    import torch

    from saliency_core.train.masker import TrainConfig, Trainer, peak_memory_mb

    data = str(DATA)
    if not DATA.exists():  # synthetic fallback: a CSV of random images
        import csv
        import tempfile

        import numpy as np
        from PIL import Image

        d = Path(tempfile.mkdtemp())
        rng = np.random.default_rng(0)
        with (d / "labels.csv").open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["file", "label"])
            for i in range(max(batch_size, 8) * 2):
                Image.fromarray((rng.random((256, 256, 3)) * 255).astype("uint8")).save(d / f"{i}.png")
                w.writerow([f"{i}.png", i % 10])
        data = str(d / "labels.csv")
    cfg = TrainConfig(data=data, out=str(Path("/tmp") / f"bench_train_{mode}_{device}"), mode=mode, device=device,
                      batch_size=batch_size, image_size=image_size, tensorboard=False, resume=False, threads=threads)
    tr = Trainer(cfg, show_bars=False)
    if tr.pool is not None:
        tr.pool.observe(tr.classifier.model, 0)
    from torch.utils.data import default_collate

    x, y = default_collate([tr.train_ds[i] for i in range(batch_size)])
    tr.training_step(x, y)  # warm-up (allocations, cuDNN autotuning)
    dev = tr.device
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        tr.training_step(x, y)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        times.append(time.perf_counter() - t)
    med = sorted(times)[len(times) // 2]
    return {"mode": mode, "device": str(dev) if dev.type != "cuda" else torch.cuda.get_device_name(dev),
            "batch_size": batch_size, "image_size": image_size, "steps": steps, "amp": tr.amp,
            "channels_last": tr.channels_last, "threads": torch.get_num_threads(),
            "step_s_median": round(med, 3), "images_per_s": round(batch_size / med, 2),
            "peak_memory_mb": round(peak_memory_mb(dev), 1)}


def remake_times() -> list[dict]:
    rows = []
    for p in sorted((ROOT / "checkpoints").glob("*.json")):
        meta = json.loads(p.read_text())
        m = meta.get("metrics", {})
        if "wall_time_s" in m:
            rows.append({"checkpoint": p.with_suffix(".safetensors").name, "wall_time_s": m["wall_time_s"],
                         "epochs": m.get("epochs_completed"), "images_per_s": m.get("images_per_s"),
                         "device": m.get("device")})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--modes", default="fix,ca")
    ap.add_argument("--devices", default="auto", help="comma list of cpu,cuda (auto: cpu, plus cuda when present)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument("--one", nargs=2, metavar=("MODE", "DEVICE"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        print(json.dumps(one(a.one[0], a.one[1], a.batch_size, a.steps, a.image_size, a.threads)))
        return 0
    devices = a.devices.split(",")
    if devices == ["auto"]:
        import torch

        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    results = []
    for device in devices:
        for mode in a.modes.split(","):
            cmd = [sys.executable, __file__, "--one", mode, device, "--batch-size", str(a.batch_size),
                   "--steps", str(a.steps), "--image-size", str(a.image_size)]
            if a.threads:
                cmd += ["--threads", str(a.threads)]
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
            if proc.returncode != 0:
                print(f"{mode}/{device} failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            results.append(r)
            print(f"{r['mode']:4s} {r['device']:>24s}  batch {r['batch_size']:3d}  {r['step_s_median']:7.3f} s/step  "
                  f"{r['images_per_s']:8.2f} images/s  peak {r['peak_memory_mb']:8.1f} MiB  (amp {r['amp']}, "
                  f"{r['threads']} threads)")
    remakes = remake_times()
    for r in remakes:
        print(f"remake {r['checkpoint']}: {r['wall_time_s']} s wall ({r['epochs']} epochs, {r['images_per_s']} images/s "
              f"on {r['device']})")
    if a.json:
        Path(a.json).write_text(json.dumps({"throughput": results, "remake": remakes}, indent=2) + "\n")
    return 0 if results else 1


if __name__ == "__main__":
    sys.exit(main())
