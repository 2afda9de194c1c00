"""Fixed-area benchmark (issue 25): which region of exactly a of the photo keeps the class, and which removes it?

On the 100 held-out classes of the shared samples (the class-disjoint val split of ``saliency train``: split_seed 0,
val_fraction 0.125; one photo per class), each row's map becomes a binary region of exactly round(a * N) pixels
(:func:`saliency_core.metrics.fixed_area.top_area_regions`; an area-aware method's own mask at area a), and the
classifier (EfficientNet-Lite0, 224 px centre crop) scores the photo with only the region kept and with it removed,
the rest gray (``--fill``). The target class of every photo is the classifier's own top-1 on the clean photo; the
accuracies count the true label.

Printed: kept / deleted probability at a = 0.05, 0.1, 0.2, 0.4 with 95 % percentile bootstrap intervals over the
photos (2000 resamples, seed 0); the paired differences the issue's targets need (same photos, paired bootstrap);
the area-hit figures of every row (|mean(mask > 0.5) - a| and the share of pixels in (0.1, 0.9)); each method's time
over one classifier forward (measured in the same run as the method); and a distinctness table of the conditional
masker's toggles (Spearman rank correlation of the maps and IoU of their top-20 % regions).

Maps are cached per row and photo under ``--cache`` (git-ignored ``runs/``), keyed by the method, its options and
the checkpoint's SHA-256, so a rerun for a new checkpoint computes only its rows; the per-image ``extremal`` rows
save after every photo. ``--json PATH`` writes every figure (refused if PATH exists).

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/bench_fixed_area.py --threads 1
"""
from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DEFAULT_IMAGES, load_images, markdown_table  # noqa: E402
from _fixed_area_tables import _fmt, _jsonable, _print_ci_table, area_hit, distinctness, main_table, paired  # noqa: E402

from saliency_core.metrics.fixed_area import (  # noqa: E402
    FIXED_AREAS,
    kept_and_removed,
    top_area_regions,
)

PAIRED_AREAS = (0.1, 0.2)


@dataclass
class Row:
    """One line of the table: a method with options; ``own_areas``: scored by its own mask at each area."""

    name: str
    method: str
    options: dict = field(default_factory=dict)
    own_areas: bool = False
    areas: tuple[float, ...] = FIXED_AREAS  # own_areas: the areas it is run at (a subset for the slow rows)
    limit: int | None = None  # only the first N photos (the slow per-image rows)
    per_photo_seed: bool = False  # a seeded control: seed = photo index

    def key(self) -> str:
        """The cache key: method, options (a checkpoint by its SHA-256) and areas; photos are keys inside."""
        options = dict(self.options)
        if options.get("checkpoint"):  # the file's content, not where it lies
            options["checkpoint"] = _sha(options["checkpoint"])
        text = json.dumps([self.method, options, self.own_areas, self.per_photo_seed]
                          + ([list(self.areas)] if self.own_areas else []), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _sha(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# ----------------------------------------------------------------------------------------------------- maps
def _forward_seconds(clf, x1: torch.Tensor, repeats: int = 5) -> float:
    with torch.no_grad():
        clf(x1)
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            clf(x1)
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def _save(path: Path, obj: dict) -> None:
    from saliency_core.files import atomic_write

    atomic_write(path, lambda p: torch.save(obj, p))


def row_maps(row: Row, clf, x: torch.Tensor, targets: list[int], names: list[str], cache: Path,
             upto: int | None = None, cached_only: bool = False) -> dict:
    """{"maps": {photo: A x h x w (A = 1, or the protocol's areas for own_areas)}, "seconds": {photo: s},
    "forward_s": one classifier forward (median of 5, measured with the row)}; cached per row and photo."""
    from saliency_core.methods.base import create_method

    n = min(len(names), row.limit or len(names), upto or len(names))
    path = cache / f"{row.name.replace(' ', '_').replace('/', '-')}_{row.key()}.pt"
    data = torch.load(path) if path.exists() else {"maps": {}, "seconds": {}, "forward_s": None}
    data["path"] = path
    todo = [i for i in range(n) if names[i] not in data["maps"]]
    if cached_only and not data["maps"]:
        raise FileNotFoundError("nothing cached yet (--cached-only)")
    if not todo or cached_only:
        return data
    print(f"  {row.name}: {len(todo)} photos to compute", flush=True)
    forward = _forward_seconds(clf, x[:1])
    options = dict(row.options)
    if row.own_areas:
        options["area"], options["areas"] = row.areas[0], row.areas[1:]
    method = None if row.per_photo_seed else create_method(row.method, **options)
    if hasattr(method, "show_progress"):
        method.show_progress = False
    slow = row.limit is not None
    for i in todo:
        m = create_method(row.method, **options, seed=i) if row.per_photo_seed else method
        xi = x[i:i + 1]
        t = time.perf_counter()
        with torch.no_grad():
            clean = clf.forward_features(xi)
        res = m(clf, xi, [targets[i]], clean)
        seconds = time.perf_counter() - t
        main = res.masks[0].detach().float().clamp(0, 1)
        if row.own_areas:
            got = [float(a) for a in res.areas]
            extra = [res.area_masks[got.index(a)][0] for a in row.areas[1:]]
            maps = torch.stack([main, *[e.detach().float().clamp(0, 1) for e in extra]])
        else:
            maps = main[None]
        data["maps"][names[i]] = maps.half()
        data["seconds"][names[i]] = seconds
        if slow:
            data["forward_s"] = forward
            _save(path, {k: v for k, v in data.items() if k != "path"})
            print(f"    {names[i]}: {seconds:.1f} s", flush=True)
    data["forward_s"] = statistics.median([forward, _forward_seconds(clf, x[:1])])
    _save(path, {k: v for k, v in data.items() if k != "path"})
    return data


# --------------------------------------------------------------------------------------------------- scores
def row_scores(row: Row, data: dict, clf, x: torch.Tensor, targets: list[int], names: list[str], fill) -> dict:
    """Per photo and area: kept / removed probability of the target and whether the view's top-1 is the label
    (cached beside the maps, per fill)."""
    fill_name = getattr(fill, "cache_name", "fill")
    cached = data.setdefault("scores", {}).setdefault(fill_name, {})
    out = {}
    for i, name in enumerate(names):
        if name not in data["maps"]:
            continue
        if name in cached:
            out[name] = cached[name]
            continue
        maps = data["maps"][name].float()
        areas = row.areas if row.own_areas else FIXED_AREAS
        if row.own_areas:
            regions = torch.stack([top_area_regions(m, a) for m, a in zip(maps, areas)])
        else:
            regions = top_area_regions(maps[0], areas)
        s = kept_and_removed(clf, x[i:i + 1], targets[i], regions, fill=fill)
        # every protocol area, NaN where the row was not run (label -1 never matches)
        full = {k: torch.full((len(FIXED_AREAS),), float("nan")) for k in ("kept", "removed")}
        tops = {k: torch.full((len(FIXED_AREAS),), -1, dtype=torch.long) for k in ("kept", "removed")}
        for j, a in enumerate(areas):
            full["kept"][FIXED_AREAS.index(a)], full["removed"][FIXED_AREAS.index(a)] = s.kept[j], s.removed[j]
            tops["kept"][FIXED_AREAS.index(a)] = s.kept_logits[j].argmax()
            tops["removed"][FIXED_AREAS.index(a)] = s.removed_logits[j].argmax()
        out[name] = {"kept": full["kept"], "removed": full["removed"], "kept_logits_top": tops["kept"],
                     "removed_logits_top": tops["removed"]}
        cached[name] = out[name]
    if "path" in data and row.limit is None:  # a slow row's file belongs to the run computing it (cheap to score)
        _save(data["path"], {k: v for k, v in data.items() if k != "path"})
    return out


# ------------------------------------------------------------------------------------------------------ main
def build_rows(args, area_conditioned: bool) -> tuple[list[Row], list[Row]]:
    """(scored rows, toggle rows for the distinctness table)."""
    cond = args.conditional
    tag = "cond" + _sha(cond)[:7]
    rows = [Row("grad-cam", "grad-cam"), Row("center-gaussian", "center-gaussian"),
            Row("random", "random", per_photo_seed=True),
            Row("fix_lite0", "masker", {"checkpoint": args.fix})]
    if args.old_conditional:
        old = args.old_conditional
        otag = "cond" + _sha(old)[:7]
        rows += [Row(f"{otag} default", "conditional-masker", {"checkpoint": old}),
                 Row(f"{otag} ssr", "conditional-masker", {"checkpoint": old, "objective": "ssr"}),
                 Row(f"{otag} sdr", "conditional-masker", {"checkpoint": old, "objective": "sdr"})]
    toggles: list[Row] = []
    if area_conditioned:
        for obj in ("ssr", "sdr", "both"):
            rows.append(Row(f"{tag} {obj} (own area)", "conditional-masker", {"checkpoint": cond, "objective": obj},
                            own_areas=True))
        base = {"checkpoint": cond, "area": 0.2}
    else:
        rows += [Row(f"{tag} default", "conditional-masker", {"checkpoint": cond}),
                 Row(f"{tag} ssr", "conditional-masker", {"checkpoint": cond, "objective": "ssr"}),
                 Row(f"{tag} sdr", "conditional-masker", {"checkpoint": cond, "objective": "sdr"})]
        base = {"checkpoint": cond}
    lim = args.toggle_limit
    for obj in ("ssr", "sdr", "both"):
        toggles.append(Row(f"t {tag} {obj}", "conditional-masker", {**base, "objective": obj}, limit=lim))
    for tv in args.tv:
        toggles.append(Row(f"t {tag} both tv{tv:g}", "conditional-masker", {**base, "objective": "both",
                                                                           "tv_weight": tv}, limit=lim))
    for inf in ("blur", "noise"):
        toggles.append(Row(f"t {tag} both {inf}", "conditional-masker", {**base, "objective": "both",
                                                                        "infiller": inf}, limit=lim))
    if args.extremal_limit:
        ext = {"infiller": args.fill, "iterations": args.extremal_iterations, **dict(
            o.split("=", 1) for o in args.extremal_options)}
        areas = tuple(args.extremal_areas)
        rows += [Row("extremal ssr", "extremal", {**ext, "objective": "ssr"}, own_areas=True, areas=areas,
                     limit=args.extremal_limit),
                 Row("extremal sdr", "extremal", {**ext, "objective": "sdr"}, own_areas=True, areas=areas,
                     limit=args.extremal_limit)]
    return rows, toggles


def _is_area_conditioned(path: str, clf, x1: torch.Tensor) -> bool:
    """Whether the conditional masker at ``path`` takes an area (it explains one photo with ``area=0.2``)."""
    from saliency_core.methods.base import create_method

    try:
        with torch.no_grad():
            clean = clf.forward_features(x1)
        create_method("conditional-masker", checkpoint=path, area=0.2)(clf, x1, [0], clean)
    except Exception as exc:  # noqa: BLE001 - any refusal means: not area-conditioned
        print(f"{Path(path).name}: no area option ({str(exc).splitlines()[0][:120]}); scored by its top-a maps")
        return False
    return True


def main() -> int:
    from saliency_core.classifiers import load_classifier
    from saliency_core.infill.base import create_infiller
    from saliency_core.maskers.catalog import default_checkpoint

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", default=DEFAULT_IMAGES)
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--fill", default="gray", help="infiller of the scored views (and of extremal's optimisation)")
    p.add_argument("--conditional", default=str(default_checkpoint("conditional")))
    p.add_argument("--old-conditional", default=None,
                   help="an earlier conditional checkpoint for rows of its own (e.g. the issue-24 one)")
    p.add_argument("--area-conditioned", choices=("auto", "yes", "no"), default="auto",
                   help="score the conditional masker by its own mask at each area (auto: from its metadata)")
    p.add_argument("--fix", default=str(default_checkpoint("phang")))
    p.add_argument("--tv", type=float, nargs=2, default=(1e-4, 0.1), help="the two TV weights compared")
    p.add_argument("--extremal-limit", type=int, default=20, help="photos for the per-image extremal rows (0: none)")
    p.add_argument("--extremal-iterations", type=int, default=300)
    p.add_argument("--extremal-options", nargs="*", default=[], metavar="KEY=VALUE",
                   help="more options of extremal, e.g. parametrization=cam reward=prob (part of the cache key)")
    p.add_argument("--extremal-areas", type=float, nargs="+", default=list(PAIRED_AREAS),
                   help="the areas extremal is run at (one batch; default 0.1 0.2, the targets' areas)")
    p.add_argument("--rows", default=None, help="comma-separated row names to compute (default: all)")
    p.add_argument("--no-toggles", action="store_true", help="skip the distinctness table")
    p.add_argument("--toggle-limit", type=int, default=40, help="photos of the distinctness table (the issue's 40)")
    p.add_argument("--cache", default="runs/fixed_area_cache")
    p.add_argument("--cached-only", action="store_true",
                   help="compute no map: print the figures of the photos already cached (while a run goes on)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", default=None, help="also write every figure to this JSON file (never overwritten)")
    args = p.parse_args()
    if args.json and Path(args.json).exists():
        p.error(f"{args.json} exists: give another --json path (results are never overwritten)")
    torch.set_num_threads(args.threads)
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)

    clf = load_classifier()
    x, labels, names = load_images(args.images, clf, args.limit, split="val")
    with torch.no_grad():
        logits = torch.cat([clf(x[i:i + 25]) for i in range(0, len(x), 25)])
    targets = logits.argmax(-1).tolist()
    accuracy = float((logits.argmax(-1) == labels).float().mean())
    confidence = float(logits.softmax(-1).max(-1).values.mean())
    print(f"{len(names)} held-out photos; clean top-1 accuracy {accuracy:.2f}, mean top-1 probability "
          f"{confidence:.3f}; fill {args.fill}")
    conditioned = (args.area_conditioned == "yes" or
                   (args.area_conditioned == "auto" and _is_area_conditioned(args.conditional, clf, x[:1])))
    rows, toggles = build_rows(args, conditioned)
    wanted = set(args.rows.split(",")) if args.rows else None
    slow = [r for r in rows if r.limit and (not wanted or r.name in wanted)]
    for i in range(0 if args.cached_only else max((r.limit for r in slow), default=0)):  # in turn: paired
        for row in slow:
            row_maps(row, clf, x, targets, names, cache, upto=i + 1)
    fill = create_infiller(args.fill)
    fill.cache_name = args.fill
    maps: dict[str, dict] = {}
    scores: dict[str, dict] = {}
    timing: dict[str, dict] = {}
    hits: dict[str, dict] = {}
    for row in rows + ([] if args.no_toggles else toggles):
        if wanted and row.name not in wanted and not row.name.startswith("t "):
            continue
        try:
            data = row_maps(row, clf, x, targets, names, cache, cached_only=args.cached_only)
        except Exception as exc:  # noqa: BLE001 - a setting the checkpoint refuses: said, and the rest goes on
            print(f"skipped {row.name}: {str(exc).splitlines()[0][:160]}")
            continue
        maps[row.name] = {n: m[0] if not row.own_areas else m[row.areas.index(0.2)] if 0.2 in row.areas else m[0]
                          for n, m in data["maps"].items()}
        if row in toggles:
            continue
        scores[row.name] = row_scores(row, data, clf, x, targets, names, fill)
        secs = list(data["seconds"].values())
        timing[row.name] = {"seconds": statistics.median(secs), "forward_s": data["forward_s"],
                            "ratio": statistics.median(secs) / data["forward_s"]}
        hits[row.name] = area_hit(row, data)

    print("\n## Kept / deleted probability of the top-1 class, binary top-a regions, "
          f"{args.fill} fill (mean [95 % bootstrap interval])\n")
    table = main_table(rows, scores, labels, names)
    _print_ci_table([{k: v for k, v in line.items() if "acc" not in k} for line in table])
    print("\n## Top-1 accuracy (true label) of the kept / deleted views\n")
    _print_ci_table([{k: v for k, v in line.items() if "acc" in k or k in ("row", "photos")} for line in table])

    ssr = next((r.name for r in rows if r.name.endswith("ssr (own area)")), None) or \
        next((r.name for r in rows if r.name.endswith(" ssr") and r.name.startswith("cond")), None)
    sdr = next((r.name for r in rows if r.name.endswith("sdr (own area)")), None) or \
        next((r.name for r in rows if r.name.endswith(" sdr") and r.name.startswith("cond")), None)
    diffs = []
    for a in PAIRED_AREAS:
        for label, args_ in ((f"{ssr} kept - grad-cam kept", (ssr, "grad-cam", "kept", "kept", a)),
                             (f"grad-cam deleted - {sdr} deleted", ("grad-cam", sdr, "removed", "removed", a)),
                             (f"{ssr} kept - {sdr} kept (ssr's task)", (ssr, sdr, "kept", "kept", a)),
                             (f"{ssr} deleted - {sdr} deleted (sdr's task)", (ssr, sdr, "removed", "removed", a)),
                             (f"extremal ssr kept - grad-cam kept", ("extremal ssr", "grad-cam", "kept", "kept", a)),
                             ("grad-cam deleted - extremal sdr deleted",
                              ("grad-cam", "extremal sdr", "removed", "removed", a)),
                             (f"{ssr} kept - extremal ssr kept", (ssr, "extremal ssr", "kept", "kept", a)),
                             (f"extremal sdr deleted - {sdr} deleted", ("extremal sdr", sdr, "removed", "removed", a))):
            got = paired(scores, *args_)
            if got is not None:
                diffs.append({"a": a, "difference (> 0: the first wins)": label, "photos": got[3],
                              "mean [95 % paired interval]": _fmt(got[:3]), "excludes 0": got[1] > 0 or got[2] < 0})
    if diffs:
        import pandas as pd

        print("\n## Paired differences (same photos)\n")
        print(markdown_table(pd.DataFrame(diffs)))

    print("\n## Area hit and half-transparent pixels\n")
    hit_lines = []
    for name, h in hits.items():
        if "area_error" in h:
            hit_lines.append({"row": name, **{f"|area - {a:g}| mean / max": f"{e:.3f} / {h['area_error_max'][a]:.3f}"
                                              for a, e in h["area_error"].items()},
                              "in (0.1, 0.9)": " / ".join(f"{v:.3f}" for v in h["half_transparent"].values())})
        else:
            hit_lines.append({"row": name, "mean mask": f"{h['mean_mask']:.3f}",
                              "share > 0.5": f"{h['area_above_half']:.3f}",
                              "in (0.1, 0.9)": f"{h['half_transparent']:.3f}"})
    import pandas as pd

    print(markdown_table(pd.DataFrame(hit_lines).fillna("")))
    print("\n## Time per photo (map from the photo, one thread) over one classifier forward, same run\n")
    print(markdown_table(pd.DataFrame([{"row": k, "s / photo": f"{v['seconds']:.3f}",
                                        "forward s": f"{v['forward_s']:.3f}", "ratio": f"{v['ratio']:.2f}x"}
                                       for k, v in timing.items()])))

    dist = []
    if not args.no_toggles:
        tag = "cond" + _sha(args.conditional)[:7]
        t = f"t {tag}"
        pairs = [("objective ssr vs sdr", f"{t} ssr", f"{t} sdr"), ("objective ssr vs both", f"{t} ssr", f"{t} both"),
                 ("objective sdr vs both", f"{t} sdr", f"{t} both"),
                 (f"tv_weight {args.tv[0]:g} vs {args.tv[1]:g}", f"{t} both tv{args.tv[0]:g}",
                  f"{t} both tv{args.tv[1]:g}"),
                 ("infiller gray vs blur", f"{t} both", f"{t} both blur"),
                 ("infiller gray vs noise", f"{t} both", f"{t} both noise")]
        if conditioned:
            for obj in ("ssr", "sdr"):
                own = f"{tag} {obj} (own area)"
                for i, j in ((0, 1), (1, 2), (2, 3), (1, 3)):
                    pairs.append((f"{obj}: area {FIXED_AREAS[i]:g} vs {FIXED_AREAS[j]:g}", f"{own}@{i}",
                                  f"{own}@{j}"))
                    if own in scores:
                        data = row_maps(next(r for r in rows if r.name == own), clf, x, targets, names, cache)
                        maps[f"{own}@{i}"] = {n: m[i] for n, m in data["maps"].items()}
                        maps[f"{own}@{j}"] = {n: m[j] for n, m in data["maps"].items()}
        dist = distinctness(pairs, maps)
        print(f"\n## Distinctness of the conditional masker's toggles ({tag}; mean over photos [95 % interval]; "
              "1 = the same map)\n")
        _print_ci_table(dist)

    if args.json:
        from saliency_core.files import atomic_write_text

        atomic_write_text(args.json, json.dumps(_jsonable({
            "photos": len(names), "fill": args.fill, "target": "the classifier's top-1 on the clean photo",
            "conditional_sha256": _sha(args.conditional),
            "extremal": {"iterations": args.extremal_iterations, "areas": list(args.extremal_areas),
                         "options": list(args.extremal_options)} if args.extremal_limit else None,
            "table": table, "paired": diffs, "area_hit": hits,
            "timing": timing, "distinctness": dist}), indent=1) + "\n")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
