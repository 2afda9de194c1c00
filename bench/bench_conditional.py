"""The conditional masker, measured on the 100 held-out classes (the class-disjoint split of training).

1. Fidelity: at four settings (the default ``both``; ``ssr`` only; a high TV weight; ``upsample=8``) the
   conditional masker against a dedicated masker trained at that one setting with the same budget (same
   network, data, steps; ``saliency train --kind conditional`` over a one-point space): masked-in / masked-out
   accuracy (gray fill), mean mask, insertion / deletion AUC of the true class (gray fill), and the Spearman
   correlation between the two maskers' masks (per image, on the masker's own grid; mean over images).
2. The toggles do what the papers say: TV weight vs mask total variation, upsampling vs connected components,
   ssr vs both mask size, sdr vs ssr masked-out accuracy, and the infiller's effect (one row each); for a masker
   trained over area weights, the area weight vs mean mask and sdr vs ssr at area weights 2 and 4.
3. The default setting against the shipped fix_lite0.
4. Speed: one mask (classifier forward + masker) over one classifier forward, batch 1.

    .venv/bin/python bench/bench_conditional.py --dedicated runs/dedicated_{both,ssr,tv,up8}/masker.safetensors \\
        --seed-twin runs/dedicated_both_seed1/masker.safetensors --json bench/results/conditional.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import DEFAULT_IMAGES, interleaved, load_images, markdown_table  # noqa: E402
from saliency_core.classifiers import load_classifier  # noqa: E402
from saliency_core.infill.composite import composite  # noqa: E402
from saliency_core.maskers.catalog import default_checkpoint  # noqa: E402
from saliency_core.files import atomic_write_bytes  # noqa: E402
from saliency_core.maskers.checkpoint import load_masker  # noqa: E402
from saliency_core.maskers.conditional import Setting  # noqa: E402
from saliency_core.metrics.insertion import deletion_curves, insertion_curves  # noqa: E402
from saliency_core.metrics.similarity import spearman  # noqa: E402
from saliency_core.objectives import total_variation_per_mask  # noqa: E402

DEFAULT = Setting("both", "gray", 1e-3, 1)


@torch.no_grad()
def masks_of(masker_fn, classifier, x: torch.Tensor, batch: int = 25) -> torch.Tensor:
    out = []
    for i in range(0, len(x), batch):
        xb = x[i:i + batch]
        out.append(masker_fn(classifier.forward_features(xb).stages, tuple(xb.shape[-2:])))
    return torch.cat(out)[:, 0]


@torch.no_grad()
def judged(classifier, x: torch.Tensor, y: torch.Tensor, m: torch.Tensor, batch: int = 50) -> dict[str, float]:
    """Masked-in / masked-out accuracy (gray fill) and the mean mask."""
    acc_in = acc_out = 0
    for i in range(0, len(x), batch):
        xb, mb, yb = x[i:i + batch], m[i:i + batch, None], y[i:i + batch]
        acc_in += (classifier(composite(xb, mb)).argmax(-1) == yb).sum().item()
        acc_out += (classifier(composite(xb, 1 - mb)).argmax(-1) == yb).sum().item()
    return {"masked-in acc": acc_in / len(x), "masked-out acc": acc_out / len(x), "mean mask": float(m.mean())}


@torch.no_grad()
def aucs(classifier, x: torch.Tensor, y: torch.Tensor, m: torch.Tensor, steps: int) -> dict[str, float]:
    ins = [float(insertion_curves(classifier, x[i:i + 1], m[i:i + 1], [int(y[i])], steps=steps).auc[0])
           for i in range(len(x))]
    dele = [float(deletion_curves(classifier, x[i:i + 1], m[i:i + 1], [int(y[i])], steps=steps).auc[0])
            for i in range(len(x))]
    return {"insertion AUC": float(np.mean(ins)), "deletion AUC": float(np.mean(dele))}


def grid_spearman(a: torch.Tensor, b: torch.Tensor, cell: int) -> float:
    """Mean over images of the Spearman correlation of two masks on a grid of ``cell``-pixel cells."""
    pa = F.avg_pool2d(a[:, None], cell)[:, 0]
    pb = F.avg_pool2d(b[:, None], cell)[:, 0]
    return float(np.nanmean([spearman(pa[i].numpy(), pb[i].numpy()) for i in range(len(a))]))


def components(m: torch.Tensor) -> float:
    """Mean number of 8-connected regions of the mask above 0.5 (scikit-image)."""
    from skimage.measure import label

    return float(np.mean([label(mi.numpy() > 0.5, connectivity=2).max() for mi in m]))


def mean_tv(m: torch.Tensor) -> float:
    return float(total_variation_per_mask(m[:, None]).mean())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", default=DEFAULT_IMAGES)
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--split", choices=("val", "train"), default="val",
                   help="val: the 100 held-out classes (the figures); train: training classes, to choose a recipe "
                        "without looking at the held-out ones")
    p.add_argument("--conditional", default=str(default_checkpoint("conditional")))
    p.add_argument("--fix", default=str(default_checkpoint("phang")))
    p.add_argument("--dedicated", nargs=4, metavar=("BOTH", "SSR", "TV", "UP8"), default=None,
                   help="dedicated maskers of the four settings (default, ssr, high TV, upsample 8); - skips one")
    p.add_argument("--dedicated-sdr", default=None, metavar="SDR",
                   help="a further setting: a dedicated sdr masker (is its masked-out accuracy below ssr's?)")
    p.add_argument("--dedicated-area", default=None, metavar="SSR_AREA",
                   help="a fifth setting, for a masker trained over area weights: a dedicated ssr masker trained at "
                        "area weight --area (where ssr no longer keeps the whole image)")
    p.add_argument("--area", type=float, default=4.0, help="the area weight of --dedicated-area")
    p.add_argument("--seed-twin", default=None, metavar="BOTH_SEED1",
                   help="the default setting's dedicated masker again, trained with another seed: its gap to the "
                        "first is the noise floor of the fidelity gaps at this budget")
    p.add_argument("--conditional-twin", default=None, metavar="COND_SEED1",
                   help="the conditional masker trained again with another seed: its gaps to the first at the four "
                        "settings are the conditional masker's own noise floor")
    p.add_argument("--no-auc", action="store_true", help="skip insertion / deletion AUC (the slow part)")
    p.add_argument("--high-tv", type=float, default=0.03, help="the high-TV setting (that of its dedicated masker)")
    p.add_argument("--steps", type=int, default=16, help="insertion / deletion steps")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default=None, help="also write every figure to this JSON file")
    p.add_argument("--sections", default="fidelity,toggles,default,speed",
                   help="which parts to run (speed wants an idle CPU: run it alone if other work is running)")
    args = p.parse_args()
    if args.json and Path(args.json).exists():
        p.error(f"{args.json} exists: give another --json path (results are never overwritten)")
    torch.set_num_threads(args.threads)
    sections = set(args.sections.split(","))

    clf = load_classifier()
    x, y, _ = load_images(args.images, clf, args.limit, split=args.split,
                          shuffle_seed=0 if args.split == "train" else None)  # train: 100 classes of the 700
    cond = load_masker(args.conditional, classifier=clf)
    out: dict = {"images": len(x), "split": args.split, "conditional": Path(args.conditional).name}

    def cond_fn(setting: Setting):
        return lambda stages, size: cond.masker(stages, size, cond.masker.config.check_setting(setting))
    cond_fn.config = cond.masker.config  # type: ignore[attr-defined]

    settings = {"both (default)": DEFAULT, "ssr": Setting("ssr", "gray", 1e-3, 1),
                f"tv_weight {args.high_tv:g}": Setting("both", "gray", args.high_tv, 1),
                "upsample 8": Setting("both", "gray", 1e-3, 8)}
    dedicated = list(args.dedicated or ["-"] * 4)
    if args.dedicated_area:
        settings[f"ssr, area_weight {args.area:g}"] = Setting("ssr", "gray", 1e-3, 1, args.area)
        dedicated.append(args.dedicated_area)
    if args.dedicated_sdr:
        settings["sdr"] = Setting("sdr", "gray", 1e-3, 1)
        dedicated.append(args.dedicated_sdr)
    compared = {name: path for name, path in zip(settings, dedicated) if path != "-"}
    t0 = time.perf_counter()
    cond_masks = {name: masks_of(cond_fn(s), clf, x) for name, s in settings.items()} if sections - {"speed"} else {}

    # 1. fidelity
    if compared and "fidelity" in sections:
        rows, ded_masks = [], {}
        for name, path in compared.items():
            setting = settings[name]
            ded = load_masker(path, classifier=clf)
            dm = ded_masks[name] = masks_of(lambda st, sz, d=ded: d.masker(st, sz), clf, x)
            cm = cond_masks[name]
            for who, m in (("conditional", cm), ("dedicated", dm)):
                row = {"setting": name, "masker": who, **judged(clf, x, y, m), "mask TV": mean_tv(m),
                       **({} if args.no_auc else aucs(clf, x, y, m, args.steps))}
                rows.append(row)
            rho = grid_spearman(cm, dm, 4 * setting.upsample)
            rows[-1]["Spearman (cond, ded)"] = rows[-2]["Spearman (cond, ded)"] = rho
            print(f"  fidelity {name}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        df = pd.DataFrame(rows)
        print("\n## Fidelity to dedicated maskers (same budget)\n")
        print(markdown_table(df))
        out["fidelity"] = rows
        gaps = []
        for name in compared:
            c, d = (next(r for r in rows if r["setting"] == name and r["masker"] == w) for w in ("conditional",
                                                                                               "dedicated"))
            gaps.append({"setting": name, "|d masked-in acc|": abs(c["masked-in acc"] - d["masked-in acc"]),
                         "|d masked-out acc|": abs(c["masked-out acc"] - d["masked-out acc"]),
                         "Spearman": c["Spearman (cond, ded)"]})
        if args.seed_twin:
            twin = load_masker(args.seed_twin, classifier=clf)
            tm = masks_of(lambda st, sz: twin.masker(st, sz), clf, x)
            first = next(r for r in rows if r["setting"] == "both (default)" and r["masker"] == "dedicated")
            t = judged(clf, x, y, tm)
            gaps.append({"setting": "both: dedicated seed 0 vs seed 1 (noise floor)",
                         "|d masked-in acc|": abs(t["masked-in acc"] - first["masked-in acc"]),
                         "|d masked-out acc|": abs(t["masked-out acc"] - first["masked-out acc"]),
                         "Spearman": grid_spearman(ded_masks["both (default)"], tm, 4)})
            out["seed_twin"] = {**t, "mask TV": mean_tv(tm)}
        if args.conditional_twin:
            twin_c = load_masker(args.conditional_twin, classifier=clf)
            out["conditional_twin"] = []
            for name, setting in ((n, settings[n]) for n in compared):
                tm = masks_of(lambda st, sz, s=setting: twin_c.masker(st, sz, twin_c.masker.config.check_setting(s)),
                              clf, x)
                t = judged(clf, x, y, tm)
                first = next(r for r in rows if r["setting"] == name and r["masker"] == "conditional")
                gaps.append({"setting": f"{name}: conditional seed 0 vs seed 1 (noise floor)",
                             "|d masked-in acc|": abs(t["masked-in acc"] - first["masked-in acc"]),
                             "|d masked-out acc|": abs(t["masked-out acc"] - first["masked-out acc"]),
                             "Spearman": grid_spearman(cond_masks[name], tm, 4 * setting.upsample)})
                out["conditional_twin"].append({"setting": name, **t, "mask TV": mean_tv(tm)})
        print("\n" + markdown_table(pd.DataFrame(gaps)))
        out["fidelity_gaps"] = gaps

    if "toggles" in sections:
        out["toggles"] = toggles(clf, x, y, cond_fn, cond_masks,
                                 "held-out images" if args.split == "val" else f"{len(x)} training-class images")
    if "default" in sections:
        out["default_vs_fix"] = default_vs_fix(clf, x, y, args.fix, cond_masks,
                                               steps=None if args.no_auc else args.steps)
    if "speed" in sections:
        out["speed"] = speed(clf, x, cond, args.threads)
    if args.json:  # with the command that made it; never over an earlier result
        out["command"] = " ".join(["bench/bench_conditional.py", *sys.argv[1:]])
        atomic_write_bytes(Path(args.json), (json.dumps(out, indent=1, default=float) + "\n").encode())
    return 0


def toggles(clf, x, y, cond_fn, cond_masks, where: str = "held-out images") -> list[dict]:
    effects = []
    tv_values = [0.0, 1e-4, 1e-3, 1e-2, 0.1]
    tvs = [mean_tv(masks_of(cond_fn(Setting("both", "gray", t, 1)), clf, x)) for t in tv_values]
    effects.append({"toggle": "tv_weight 0 -> 1e-4 -> 1e-3 -> 1e-2 -> 0.1", "measure": "mask total variation",
                    "values": " -> ".join(f"{v:.1f}" for v in tvs), "expected": "falls",
                    "holds": all(a >= b for a, b in zip(tvs, tvs[1:])),
                    "effect": f"{tvs[-1] / max(tvs[0], 1e-9):.3f}x"})
    comps = [components(masks_of(cond_fn(Setting("both", "gray", 1e-3, s)), clf, x)) for s in (1, 2, 4, 8)]
    effects.append({"toggle": "upsample 1 -> 2 -> 4 -> 8", "measure": "connected regions (mask > 0.5)",
                    "values": " -> ".join(f"{v:.2f}" for v in comps), "expected": "falls",
                    "holds": comps[-1] < comps[0], "effect": f"{comps[-1] - comps[0]:+.2f} regions"})
    by_obj = {o: cond_masks["ssr"] if o == "ssr" else masks_of(cond_fn(Setting(o, "gray", 1e-3, 1)), clf, x)
              for o in ("ssr", "sdr", "both")}
    area = {o: float(m.mean()) for o, m in by_obj.items()}
    effects.append({"toggle": "objective ssr vs both", "measure": "mean mask",
                    "values": f"ssr {area['ssr']:.3f}, both {area['both']:.3f}", "expected": "ssr larger",
                    "holds": area["ssr"] > area["both"], "effect": f"{area['ssr'] - area['both']:+.3f}"})
    outs = {o: judged(clf, x, y, by_obj[o])["masked-out acc"] for o in ("ssr", "sdr")}
    effects.append({"toggle": "objective sdr vs ssr", "measure": "masked-out acc",
                    "values": f"sdr {outs['sdr']:.2f}, ssr {outs['ssr']:.2f}", "expected": "sdr lower",
                    "holds": outs["sdr"] < outs["ssr"], "effect": f"{outs['sdr'] - outs['ssr']:+.2f}"})
    config = cond_fn.config
    if config.area_conditioned:
        weights = [a for a in (0.25, 0.5, 1.0, 2.0, 4.0) if config.area_low <= a <= config.area_high]
        sizes = [float(masks_of(cond_fn(Setting("both", "gray", 1e-3, 1, a)), clf, x).mean()) for a in weights]
        effects.append({"toggle": "area_weight " + " -> ".join(f"{a:g}" for a in weights), "measure": "mean mask",
                        "values": " -> ".join(f"{v:.3f}" for v in sizes), "expected": "falls",
                        "holds": all(a > b for a, b in zip(sizes, sizes[1:])),
                        "effect": f"{sizes[-1] / max(sizes[0], 1e-9):.2f}x"})
        for a in [a for a in (2.0, 4.0) if a in weights]:
            m = {o: masks_of(cond_fn(Setting(o, "gray", 1e-3, 1, a)), clf, x) for o in ("ssr", "sdr")}
            o_acc = {o: judged(clf, x, y, m[o])["masked-out acc"] for o in m}
            effects.append({"toggle": f"objective sdr vs ssr at area_weight {a:g}", "measure": "masked-out acc "
                            "(mean mask)", "values": ", ".join(f"{o} {o_acc[o]:.2f} ({float(m[o].mean()):.2f})"
                                                              for o in ("sdr", "ssr")),
                            "expected": "sdr lower", "holds": o_acc["sdr"] < o_acc["ssr"],
                            "effect": f"{o_acc['sdr'] - o_acc['ssr']:+.2f}"})
    inf = {i: masks_of(cond_fn(Setting("both", i, 1e-3, 1)), clf, x) for i in ("gray", "blur", "noise",
                                                                               "random-image")}
    effects.append({"toggle": "infiller gray -> blur / noise / random-image", "measure": "mean mask; Spearman to gray",
                    "values": ", ".join(f"{i} {float(m.mean()):.3f} ({grid_spearman(inf['gray'], m, 4):.2f})"
                                        for i, m in inf.items()),
                    "expected": "masks differ",
                    "holds": all(float((m - inf["gray"]).abs().mean()) > 0.01 for i, m in inf.items() if i != "gray"),
                    "effect": "mean |m - m_gray| " + ", ".join(f"{float((m - inf['gray']).abs().mean()):.3f}"
                                                             for i, m in inf.items() if i != "gray")})
    print(f"\n## The toggles on the {where}\n")
    print(markdown_table(pd.DataFrame(effects)))
    return effects


def default_vs_fix(clf, x, y, fix_path: str, cond_masks, steps: int | None = None) -> list[dict]:
    """The default setting against fix_lite0; with ``steps``, also insertion / deletion AUC, which rank pixels
    by mask value and so compare the two at any mask size (masked-out accuracy falls as a mask grows)."""
    fix = load_masker(fix_path, classifier=clf)
    fix_m = masks_of(lambda st, sz: fix.masker(st, sz), clf, x)
    vs = []
    for name, m in (("conditional (default setting)", cond_masks["both (default)"]), (Path(fix_path).stem, fix_m)):
        vs.append({"masker": name, **judged(clf, x, y, m), **(aucs(clf, x, y, m, steps) if steps else {})})
    print("\n## Default setting vs fix_lite0\n")
    print(markdown_table(pd.DataFrame(vs)))
    return vs


def speed(clf, x, cond, threads: int) -> dict:
    x1 = x[:1]
    setting = Setting("sdr", "noise", 0.05, 4)

    @torch.no_grad()
    def forward():
        clf(x1)

    @torch.no_grad()
    def one_mask():
        cond.masker(clf.forward_features(x1).stages, (224, 224), setting)

    t_fwd, t_mask = interleaved([forward, one_mask], repeats=30)
    figures = {"threads": threads, "forward_ms": 1000 * t_fwd, "mask_ms": 1000 * t_mask, "ratio": t_mask / t_fwd}
    print(f"\n## Speed (batch 1, {threads} threads)\n\none forward {figures['forward_ms']:.1f} ms; one mask "
          f"(forward + masker) {figures['mask_ms']:.1f} ms: **{figures['ratio']:.2f}x** a forward")
    return figures


if __name__ == "__main__":
    raise SystemExit(main())
