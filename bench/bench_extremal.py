"""The per-image ``extremal`` method against TorchRay's reference extremal perturbation, on held-out photos.

Both implementations explain the classifier's top-1 class of each photo (the default EfficientNet-Lite0, the
first ``--images`` photos of the 100 held-out classes: the class-disjoint val split of training, seed 0) at the
areas 0.1 and 0.2 (one batched run each), in the preservation game (``ssr``) and the deletion game (``sdr``), with
the same fill while optimising (``--fill gray``: TorchRay's "fade" perturbation is x * m in normalised space, which
is the project's gray infiller; ``--fill blur``: TorchRay's blur pyramid, sigma up to 20, against the project's blur
infiller at sigma 20) and the same number of iterations. Each is scored the issue's way: the binary top-a region of
its mask (``metrics.fixed_area.top_area_regions``), the rest gray, and the class probability with only the region
kept / with it removed (one forward for all regions). Grad-CAM's top-a region is scored beside them.

Printed: area hit (mean(mask > 0.5); ours before and after its final calibration), kept / removed probability with
95 % bootstrap intervals over the photos, the paired difference ours - TorchRay, and the time per image of each
with their ratio, all measured in this one run.

TorchRay is NOT a project dependency (unmaintained since 2020); the bench installs it with pip, without its
dependencies, into a throwaway folder (``--torchray``, default /tmp/torchray) and puts it on ``sys.path`` here only.
Shims for torch 2.x: none needed for the code path used (``extremal_perturbation`` with the default
``simple_reward``); its ``torch.meshgrid`` call without ``indexing=`` only warns (silenced here), and it imports
matplotlib at module level (present in the project's environment).

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/bench_extremal.py --images 6 --iterations 300 \\
        --json runs/bench_extremal.json
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import DEFAULT_IMAGES, load_images  # noqa: E402
from saliency_core.classifiers import load_classifier  # noqa: E402
from saliency_core.files import atomic_write_text  # noqa: E402
from saliency_core.methods.optimize.extremal import ExtremalConfig, extremal_masks  # noqa: E402
from saliency_core.metrics.fixed_area import bootstrap_ci, kept_and_removed, top_area_regions  # noqa: E402

GAMES = {"ssr": "preserve", "sdr": "delete"}


def torchray_module(target: str):
    """TorchRay's extremal_perturbation module, installed into ``target`` (no dependencies) when missing."""
    path = Path(target)
    if not (path / "torchray").is_dir():
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(path),
                        "torchray"], check=True)
    sys.path.insert(0, str(path))
    warnings.filterwarnings("ignore", message=".*meshgrid.*")
    import torchray.attribution.extremal_perturbation as ep

    return ep


def spread_schedule(ep, iterations: int):
    """TorchRay's extremal_perturbation with its 800-iteration schedule spread over ``iterations``, as ``extremal``
    spreads it: learning rate 0.01 x 800 / iterations, area weight x 1.0035^(800 / iterations) per step (so it ends
    at the same weight). A copy of the installed function with those two constants substituted; nothing else."""
    import inspect

    src = inspect.getsource(ep.extremal_perturbation)
    scale = 800 / iterations
    for old, new in (("learning_rate = 0.01", f"learning_rate = 0.01 * {scale!r}"),
                     ("regul_weight *= 1.0035", f"regul_weight *= 1.0035 ** {scale!r}")):
        if src.count(old) != 1:
            raise SystemExit(f"TorchRay's source has changed: '{old}' not found once")
        src = src.replace(old, new)
    namespace = dict(vars(ep))
    exec(compile(src, ep.__file__, "exec"), namespace)  # noqa: S102 - the installed reference, two constants changed
    return namespace["extremal_perturbation"]


def gradcam_maps(classifier, x: torch.Tensor, label: int) -> torch.Tensor:
    from saliency_core.methods.base import create_method

    return create_method("grad-cam")(classifier, x, [label], None).masks[0].float().cpu()


def interval(values: list[float]) -> str:
    mean, lo, hi = bootstrap_ci(values)
    return f"{mean:.3f} [{lo:.3f}, {hi:.3f}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=6)
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--areas", type=float, nargs="+", default=[0.1, 0.2])
    ap.add_argument("--games", nargs="+", default=["ssr", "sdr"], choices=list(GAMES))
    ap.add_argument("--fill", default="gray", choices=["gray", "blur"])
    ap.add_argument("--torchray", default="/tmp/torchray", help="throwaway folder TorchRay is installed into")
    ap.add_argument("--torchray-schedule", default="spread", choices=["spread", "own"],
                    help="spread: TorchRay's lr and area-weight growth spread over --iterations as ours; own: as is "
                         "(tuned for 800 iterations)")
    ap.add_argument("--data", default=DEFAULT_IMAGES)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None, help="rows written after every photo (a partial run keeps its rows)")
    ap.add_argument("--skip", type=int, default=0, help="start after this many photos (to split a run)")
    ap.add_argument("--no-torchray", action="store_true", help="ours and Grad-CAM only (TorchRay is ~5x slower)")
    ap.add_argument("--report", nargs="+", default=None,
                    help="print the summary of earlier runs' --json files (rows merged) and stop")
    args = ap.parse_args()
    if args.report:
        saved = [json.loads(Path(f).read_text()) for f in args.report]
        report([r for run in saved for r in run["rows"]], argparse.Namespace(**{**saved[0]["args"], "json": None}))
        return
    torch.set_num_threads(args.threads)
    reference = None
    if not args.no_torchray:
        ep = torchray_module(args.torchray)
        reference = (spread_schedule(ep, args.iterations) if args.torchray_schedule == "spread"
                     else ep.extremal_perturbation)

    clf = load_classifier("efficientnet_lite0")
    xs, _, names = load_images(args.data, clf, args.skip + args.images, split="val")
    rows: list[dict] = []
    for i, name in list(enumerate(names))[args.skip:]:
        x = xs[i:i + 1]
        with torch.no_grad():
            probs = clf(x).softmax(-1)[0]
        label = int(probs.argmax())
        cam = gradcam_maps(clf, x, label)
        for game in args.games:
            t = time.perf_counter()
            maps = {}
            if reference is not None:
                ref, _ = reference(clf, x, label, areas=list(args.areas), max_iter=args.iterations,
                                   perturbation="fade" if args.fill == "gray" else "blur", variant=GAMES[game])
                maps["torchray"] = ref[:, 0].detach().cpu()
            t_ref = time.perf_counter() - t
            cfg = ExtremalConfig(objective=game, area=args.areas[0], areas=tuple(args.areas[1:]),
                                 iterations=args.iterations, infiller=args.fill)
            t = time.perf_counter()
            ours = extremal_masks(clf, x, [label], cfg)
            t_ours = time.perf_counter() - t
            maps["ours"] = ours.masks[:, 0]
            impls = [*maps, "grad-cam"]
            for j, a in enumerate(args.areas):
                regions = torch.stack([top_area_regions(maps[impl][j] if impl in maps else cam, a) for impl in impls])
                s = kept_and_removed(clf, x, label, regions)
                for k, impl in enumerate(impls):
                    m = maps[impl][j] if impl in maps else None
                    rows.append({"image": name, "label": label, "clean": float(probs[label]), "game": game,
                                 "area": a, "impl": impl, "kept": float(s.kept[k]), "removed": float(s.removed[k]),
                                 "hit": float((m > 0.5).float().mean()) if m is not None else None,
                                 "hit_raw": ours.raw_area[j] if impl == "ours" else None,
                                 "soft": float(((m > 0.1) & (m < 0.9)).float().mean()) if m is not None else None,
                                 "seconds": {"torchray": t_ref, "ours": t_ours}.get(impl)})
            print(f"{name} {game}: torchray {t_ref:.0f} s, ours {t_ours:.0f} s; "
                  + "; ".join(f"{r['impl']} a={r['area']} hit {r['hit'] if r['hit'] is None else round(r['hit'], 3)}"
                              f" kept {r['kept']:.3f} removed {r['removed']:.3f}"
                              for r in rows[-len(impls) * len(args.areas):]), flush=True)
        if args.json:
            atomic_write_text(Path(args.json), json.dumps({"args": vars(args), "rows": rows}, indent=1))
    report(rows, args)


def report(rows: list[dict], args) -> None:
    """The summary table (markdown) and the paired differences, from the rows of one run."""
    def pick(impl, game, a):
        return [r for r in rows if r["impl"] == impl and r["game"] == game and r["area"] == a]

    n = len({r["image"] for r in rows})
    print(f"\n{n} held-out photos, {args.iterations} iterations, fill while optimising: {args.fill}; scored: top-a "
          "region, rest gray; mean [95 % bootstrap interval]\n")
    print("| game | area | implementation | area hit (mask > 0.5) | soft pixels | kept prob. | removed prob. |")
    print("|---|---|---|---|---|---|---|")
    for game in args.games:
        for a in args.areas:
            for impl in ("torchray", "ours", "grad-cam"):
                rs = pick(impl, game, a)
                if not rs or (impl == "grad-cam" and game != args.games[0]):
                    continue
                hit = "" if rs[0]["hit"] is None else f"{sum(r['hit'] for r in rs) / len(rs):.3f} (max off " \
                    f"{max(abs(r['hit'] - a) for r in rs):.3f})"
                if impl == "ours":
                    hit += f"; raw {sum(r['hit_raw'] for r in rs) / len(rs):.3f} (max off " \
                           f"{max(abs(r['hit_raw'] - a) for r in rs):.3f})"
                soft = "" if rs[0]["soft"] is None else f"{sum(r['soft'] for r in rs) / len(rs):.3f}"
                print(f"| {game if impl != 'grad-cam' else 'any'} | {a} | {impl} | {hit} | {soft} | "
                      f"{interval([r['kept'] for r in rs])} | {interval([r['removed'] for r in rs])} |")
    for other in ("torchray", "grad-cam"):
        print(f"\nPaired, ours - {other} (the photos both ran): kept / removed probability")
        for game in args.games:
            for a in args.areas:
                theirs = {r["image"]: r for r in pick(other, game, a)}
                pairs = [(o, theirs[o["image"]]) for o in pick("ours", game, a) if o["image"] in theirs]
                if pairs:
                    print(f"  {game} a={a} ({len(pairs)} photos): "
                          f"kept {interval([x['kept'] - y['kept'] for x, y in pairs])}, "
                          f"removed {interval([x['removed'] - y['removed'] for x, y in pairs])}")
    times = {impl: [r["seconds"] for r in rows if r["impl"] == impl][::len(args.areas)] for impl in ("torchray", "ours")}
    line = ", ".join(f"{impl} {sum(t) / len(t):.1f} s ({len(t)} runs)" for impl, t in times.items() if t)
    if times["torchray"] and times["ours"]:
        ran = {r["image"] for r in rows if r["impl"] == "torchray"}
        same = [r["seconds"] for r in rows if r["impl"] == "ours" and r["image"] in ran][::len(args.areas)]
        line += f"; ratio ours / TorchRay on the same runs {sum(same) / sum(times['torchray']):.2f}"
    print(f"\nTime per image and game ({len(args.areas)} areas in one batch): {line}")


if __name__ == "__main__":
    main()
