"""The tables of bench_fixed_area.py: per-row means with intervals, paired differences, area hit, distinctness."""
from __future__ import annotations

import torch
from _common import markdown_table

from saliency_core.metrics.fixed_area import FIXED_AREAS, bootstrap_ci, region_iou, top_area_regions


def area_hit(row, data: dict) -> dict:
    """Per area: mean |mean(mask > 0.5) - a| and mean share of pixels in (0.1, 0.9) (own-area rows); else the map's
    own figures once (mean mask, share in (0.1, 0.9))."""
    maps = torch.stack([m.float() for m in data["maps"].values()])  # N x A x h x w
    soft = ((maps > 0.1) & (maps < 0.9)).float().mean(dim=(2, 3))  # N x A
    if row.own_areas:
        hit = ((maps > 0.5).float().mean(dim=(2, 3)) - torch.tensor(row.areas)).abs()
        return {"area_error": {a: float(hit[:, j].mean()) for j, a in enumerate(row.areas)},
                "area_error_max": {a: float(hit[:, j].max()) for j, a in enumerate(row.areas)},
                "half_transparent": {a: float(soft[:, j].mean()) for j, a in enumerate(row.areas)}}
    return {"mean_mask": float(maps[:, 0].mean()), "area_above_half": float((maps[:, 0] > 0.5).float().mean()),
            "half_transparent": float(soft[:, 0].mean())}


def _fmt(ci: tuple[float, float, float]) -> str:
    return f"{ci[0]:.3f} [{ci[1]:.3f}, {ci[2]:.3f}]"


def main_table(rows: list, scores: dict, labels: torch.Tensor, names: list[str]) -> list[dict]:
    index = {n: i for i, n in enumerate(names)}
    out = []
    for row in rows:
        s = scores.get(row.name)
        if not s:
            continue
        line = {"row": row.name, "photos": len(s)}
        for kind in ("kept", "removed"):
            for j, a in enumerate(FIXED_AREAS):
                line[f"{'kept' if kind == 'kept' else 'deleted'} {a:g}"] = bootstrap_ci([float(v[kind][j])
                                                                                        for v in s.values()])
        for kind in ("kept", "removed"):
            for j, a in enumerate(FIXED_AREAS):
                acc = [float(v[f"{kind}_logits_top"][j] == labels[index[n]]) if v[f"{kind}_logits_top"][j] >= 0
                       else float("nan") for n, v in s.items()]
                line[f"{'kept' if kind == 'kept' else 'deleted'} acc {a:g}"] = bootstrap_ci(acc)
        out.append(line)
    return out


def paired(scores: dict, a_row: str, b_row: str, kind_a: str, kind_b: str, area: float, sign: float = 1.0
           ) -> tuple[float, float, float, int] | None:
    """mean [95 % paired bootstrap interval] of sign * (a - b) over the photos both rows have."""
    sa, sb = scores.get(a_row), scores.get(b_row)
    if not sa or not sb:
        return None
    j = FIXED_AREAS.index(area)
    common = [n for n in sa if n in sb]
    diff = torch.tensor([sign * (float(sa[n][kind_a][j]) - float(sb[n][kind_b][j])) for n in common])
    diff = diff[~diff.isnan()]
    if not len(diff):
        return None
    return (*bootstrap_ci(diff), len(diff))


# ----------------------------------------------------------------------------------------------- distinctness
def distinctness(pairs: list[tuple[str, str, str]], maps: dict[str, dict], area: float = 0.2) -> list[dict]:
    """Mean over photos of the Spearman rank correlation of two maps and the IoU of their top-``area`` regions."""
    from saliency_core.metrics.similarity import spearman

    out = []
    for label, a, b in pairs:
        if a not in maps or b not in maps:
            continue
        common = [n for n in maps[a] if n in maps[b]]
        rho, iou = [], []
        for n in common:
            ma, mb = maps[a][n].float(), maps[b][n].float()
            rho.append(spearman(ma, mb))
            iou.append(float(region_iou(top_area_regions(ma, area), top_area_regions(mb, area))))
        rho_t = torch.tensor(rho)
        out.append({"toggle": label, "photos": len(common), "spearman": bootstrap_ci(rho_t[~rho_t.isnan()]),
                    f"top-{area * 100:g} % IoU": bootstrap_ci(iou)})
    return out


def _print_ci_table(lines: list[dict]) -> None:
    import pandas as pd

    shown = [{k: (_fmt(v) if isinstance(v, tuple) else v) for k, v in line.items()} for line in lines]
    print(markdown_table(pd.DataFrame(shown)))


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float):
        return round(obj, 5)
    return obj
