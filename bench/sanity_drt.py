"""Data randomisation test (Adebayo et al.) at small scale on the shared images.

Two classifiers share the embedded EfficientNet-Lite0's frozen lower stages (stem .. blocks.4) and
get their upper stages (blocks.5, blocks.6, head) retrained on a coarse ``--groups``-way task
(ImageNet index ranges): classifier A on the true coarse labels, classifier B on a random
permutation of them (it can only memorise). A FIX masker (Phang et al.; stages 4 and 5, gray fill,
the default objective) is trained against each: A twice (seeds 0 and 1, the seed-to-seed baseline)
and B once (seed 0) with its shuffled labels. On held-out images the masks of A(seed 0) are compared
with those of A(seed 1) (the seed-to-seed level), and B with A(seed 0) and A(seed 1) (Spearman, Spearman of |m - 0.5|, HOG, SSIM), and Grad-CAM of A with
Grad-CAM of B. A method passes when A-vs-B similarity is clearly below the seed-to-seed level.

    .venv/bin/python bench/sanity_drt.py --train 256 --test 48 --size 128 --out runs/eval/drt
"""
from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DEFAULT_IMAGES, load_images, markdown_table  # noqa: E402

TRAINABLE = ("blocks.5", "blocks.6", "conv_head", "bn2", "classifier")


def lower(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The frozen part: stem and blocks 0..4 (output = stage 4)."""
    h = model.bn1(model.conv_stem(x))
    for b in model.blocks[:5]:
        h = b(h)
    return h


def upper(model: nn.Module, h: torch.Tensor) -> torch.Tensor:
    for b in model.blocks[5:]:
        h = b(h)
    return model.forward_head(model.bn2(model.conv_head(h)))


def make_classifier(base, groups: int):
    clf = copy.deepcopy(base)
    clf.model.reset_classifier(groups)
    clf.class_names = tuple(f"group {i}" for i in range(groups))
    clf.requires_grad_(False).eval()
    for name, mod in clf.model.named_modules():
        if name in TRAINABLE:
            mod.requires_grad_(True)
    return clf


def train_upper(clf, feats, y, epochs: int, seed: int, batch: int = 32) -> float:
    """Train the upper stages on cached stage-4 features (BN statistics frozen); returns train accuracy."""
    gen = torch.Generator().manual_seed(seed)
    params = [p for p in clf.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=1e-3)
    for _ in tqdm(range(epochs), desc="classifier", leave=False):
        order = torch.randperm(len(y), generator=gen)
        for i in range(0, len(y), batch):
            idx = order[i:i + batch]
            loss = nn.functional.cross_entropy(upper(clf.model, feats[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    clf.requires_grad_(False)
    clf.refresh_identity()
    with torch.no_grad():
        return float((upper(clf.model, feats).argmax(-1) == y).float().mean())


def train_masker(clf, x, y, epochs: int, seed: int, batch: int = 16):
    from saliency_core.maskers.phang import MaskerConfig, PhangMasker
    from saliency_core.objectives import MaskerObjective, masker_loss

    torch.manual_seed(seed)
    masker = PhangMasker(MaskerConfig(stages=(4, 5), stage_channels=clf.stage_channels)).train()
    opt = torch.optim.Adam(masker.parameters(), lr=1e-3, weight_decay=1e-4)
    objective = MaskerObjective()
    gen = torch.Generator().manual_seed(seed)
    for _ in tqdm(range(epochs), desc=f"masker seed {seed}", leave=False):
        order = torch.randperm(len(y), generator=gen)
        for i in range(0, len(y), batch):
            idx = order[i:i + batch]
            xb, yb = x[idx], y[idx]
            with torch.no_grad():
                clean = clf.forward_features(xb)
            m = masker(clean.stages, tuple(xb.shape[-2:]))
            li, lo = clf(torch.cat([xb * m, xb * (1 - m)])).chunk(2)
            loss = masker_loss(objective, m, yb, clean.logits, li, lo)["total"]
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(masker.parameters(), 10.0)
            opt.step()
    return masker.eval()


@torch.no_grad()
def masker_masks(masker, clf, x) -> torch.Tensor:
    return torch.cat([masker(clf.forward_features(x[i:i + 16]).stages, tuple(x.shape[-2:]))[:, 0]
                      for i in range(0, len(x), 16)])


def gradcam_masks(clf, x) -> torch.Tensor:
    from saliency_core.methods.base import create_method

    method = create_method("grad-cam")
    out = []
    for i in range(len(x)):
        with torch.no_grad():
            clean = clf.forward_features(x[i:i + 1])
        out.append(method(clf, x[i:i + 1], [int(clean.logits.argmax())], clean).masks[0])
    return torch.stack(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", default=DEFAULT_IMAGES)
    ap.add_argument("--train", type=int, default=256)
    ap.add_argument("--test", type=int, default=48)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--groups", type=int, default=8)
    ap.add_argument("--clf-epochs", type=int, default=30)
    ap.add_argument("--masker-epochs", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="drt")
    args = ap.parse_args()

    import pandas as pd

    from saliency_core.classifiers import load_classifier
    from saliency_core.metrics.similarity import similarity

    t0 = time.perf_counter()
    base = load_classifier()
    x, y_fine, _ = load_images(args.images, base, args.train + args.test, "all", size=args.size,
                               shuffle_seed=args.seed)
    y = (y_fine * args.groups) // 1000
    xtr, ytr, xte, yte = x[:args.train], y[:args.train], x[args.train:], y[args.train:]
    y_shuf = ytr[torch.randperm(len(ytr), generator=torch.Generator().manual_seed(args.seed + 1))]
    with torch.no_grad():
        feats = torch.cat([lower(base.model, xtr[i:i + 32]) for i in range(0, len(ytr), 32)])
        feats_te = torch.cat([lower(base.model, xte[i:i + 32]) for i in range(0, len(yte), 32)])
    clf_a, clf_b = make_classifier(base, args.groups), make_classifier(base, args.groups)
    acc = {"A train (true labels)": train_upper(clf_a, feats, ytr, args.clf_epochs, args.seed),
           "B train (shuffled labels)": train_upper(clf_b, feats, y_shuf, args.clf_epochs, args.seed)}
    with torch.no_grad():
        acc["A test"] = float((upper(clf_a.model, feats_te).argmax(-1) == yte).float().mean())
        acc["B test"] = float((upper(clf_b.model, feats_te).argmax(-1) == yte).float().mean())
    tqdm.write("classifier accuracy: " + ", ".join(f"{k} {v:.3f}" for k, v in acc.items()))
    m_a0 = train_masker(clf_a, xtr, ytr, args.masker_epochs, seed=0)
    m_a1 = train_masker(clf_a, xtr, ytr, args.masker_epochs, seed=1)
    m_b = train_masker(clf_b, xtr, y_shuf, args.masker_epochs, seed=0)
    maps = {"masker A seed 0": masker_masks(m_a0, clf_a, xte), "masker A seed 1": masker_masks(m_a1, clf_a, xte),
            "masker B": masker_masks(m_b, clf_b, xte), "grad-cam A": gradcam_masks(clf_a, xte),
            "grad-cam B": gradcam_masks(clf_b, xte)}
    pairs = [("masker A seed 0", "masker A seed 1", "masker: seed-to-seed (same classifier)"),
             # B shares seed 0 (init and batch order) with A seed 0, so that pair mixes the seed's effect in;
             # A seed 1 vs B differs in the seed *and* the labels: compare it with the seed-to-seed row
             ("masker A seed 0", "masker B", "masker: true vs shuffled labels, same seed"),
             ("masker A seed 1", "masker B", "masker: true vs shuffled labels, other seed (DRT)"),
             ("grad-cam A", "grad-cam B", "grad-cam: true vs shuffled labels (DRT)")]
    rows = []
    for a, b, what in pairs:
        sims = pd.DataFrame([similarity(maps[a][i], maps[b][i]) for i in range(len(yte))])
        rows.append({"comparison": what, **sims.mean(skipna=True).to_dict()})
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(rows)
    table.to_csv(out / "drt.csv", index=False)
    means = {k: float(v.mean()) for k, v in maps.items()}
    (out / "drt_info.txt").write_text(f"{acc}\nmask means {means}\n{vars(args)}\n")
    print(f"classifier accuracy: {acc}; mask means {means}")
    print(markdown_table(table))
    print(f"{time.perf_counter() - t0:.0f} s; wrote {out}/drt.csv")


if __name__ == "__main__":
    main()
