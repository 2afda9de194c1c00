"""What the gradient and sampling baselines cost against the classifier work they need.

- Grad-CAM for the top-k labels / k forward + backward passes of the image (one batched pass; target <= 1.5x);
- integrated gradients: the resident memory it adds at its default settings, sampled every 2 ms in a fresh
  process (target <= 1.5 GB);
- RISE: its time / the time of its forwards alone, and the quick preview's time.

    OMP_NUM_THREADS=2 .venv/bin/python bench/bench_baselines.py [--size 288] [--k 5]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import torch

IG_CHILD = r"""
import json, os, sys, threading, time
import torch
import saliency_core as sc
from skimage import data
from PIL import Image
size, k = int(sys.argv[1]), int(sys.argv[2])
clf = sc.load_classifier()
x = clf.preprocessing.pil_to_input(Image.fromarray(data.chelsea()).resize((size, size)))
clean = clf.forward_features(x)
labels = clean.logits.topk(k).indices[0].tolist()
page = os.sysconf("SC_PAGE_SIZE")
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * page / 2 ** 20
base, peak, done = rss(), [0.0], []
def watch():
    while not done:
        peak[0] = max(peak[0], rss())
        time.sleep(0.002)
t = threading.Thread(target=watch); t.start()
sc.create_method("integrated-gradients")(clf, x, labels, clean)
done.append(1); t.join()
print(json.dumps({"added_mb": peak[0] - base, "peak_mb": peak[0]}))
"""


def median_time(fn, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--k", type=int, default=5)
    args = parser.parse_args()
    import saliency_core as sc
    from PIL import Image
    from skimage import data

    clf = sc.load_classifier()
    x = clf.preprocessing.pil_to_input(Image.fromarray(data.chelsea()).resize((args.size, args.size)))
    clean = clf.forward_features(x)
    labels = clean.logits.topk(args.k).indices[0].tolist()

    def forward_backward() -> None:
        xx = x.repeat(len(labels), 1, 1, 1).requires_grad_(True)
        with torch.enable_grad():
            out = clf.model(xx)
            out[torch.arange(len(labels)), labels].sum().backward()

    cam = sc.create_method("grad-cam")
    cam(clf, x, labels, clean)  # its private copy of the network is made once
    forward_backward()
    t_fb, t_cam = median_time(forward_backward), median_time(lambda: cam(clf, x, labels, clean))
    rows = [("Grad-CAM, top-%d" % args.k, f"{t_cam:.3f} s", f"{t_fb:.3f} s ({args.k} forward + backward)",
             f"{t_cam / t_fb:.2f}x", "<= 1.5x")]

    rise = sc.create_method("rise")
    n = rise.num_masks

    def forwards_only() -> None:
        with torch.no_grad():
            for i in range(0, n, rise.batch_size):
                clf(x.repeat(min(rise.batch_size, n - i), 1, 1, 1))

    t_rise, t_fw = median_time(lambda: rise(clf, x, labels, clean), 1), median_time(forwards_only, 1)
    rows.append((f"RISE, {n} masks", f"{t_rise:.1f} s", f"{t_fw:.1f} s ({n} forwards)", f"{t_rise / t_fw:.2f}x",
                 "behind Run"))
    preview = sc.create_method("rise-preview")
    t_prev = median_time(lambda: preview(clf, x, labels, clean), 3)
    rows.append((f"RISE preview, {preview.num_masks} masks", f"{t_prev:.2f} s", "", "", "runs at once"))

    out = subprocess.run([sys.executable, "-c", IG_CHILD, str(args.size), str(args.k)], capture_output=True,
                         text=True, check=True)
    ig = json.loads(out.stdout.strip().splitlines()[-1])
    rows.append(("integrated gradients, defaults", "", "", f"+{ig['added_mb']:.0f} MB at its peak "
                 f"({ig['peak_mb']:.0f} MB resident in all)", "<= 1.5 GB"))
    print(f"image {args.size} x {args.size}, top-{args.k} labels, {torch.get_num_threads()} threads\n")
    print("| method | time | the classifier work it needs | ratio / memory | target |")
    print("|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
