"""The tables of an evaluation, rebuilt from its JSONL records: per image, per label, per method (aggregate)."""
from __future__ import annotations

import math
from typing import Any


def records_to_frames(records: list[dict[str, Any]]):
    """(per_image, per_label) pandas DataFrames from the JSONL records."""
    import pandas as pd

    from saliency_core.evaluate.metrics import declared

    top_columns = ["f", *declared("top")]
    img_rows, lab_rows = [], []
    for r in records:
        base = {"image": r["image"], "gt_label": r.get("gt_label", -1), "method": r["method"]}
        level = {k: v for k, v in r.get("image_level", {}).items() if not isinstance(v, (list, dict))}
        top = r["labels"][0] if r.get("labels") else {}
        img_rows.append({**base, "shared_mask": r.get("shared_mask"), "n_labels": len(r.get("labels", [])),
                         **{f"top_{c}": top.get(c) for c in top_columns}, **level, **r.get("timings", {})})
        for row in r.get("labels", []):
            lab_rows.append({**base, **{k: v for k, v in row.items() if not k.endswith("_curve")}})
    return pd.DataFrame(img_rows), pd.DataFrame(lab_rows)


def _averaged(columns: list[str], patterns: list[str]) -> list[str]:
    out = []
    for pattern in patterns:
        if pattern.endswith("*"):
            out += [c for c in columns if c.startswith(pattern[:-1]) and c not in out]
        elif pattern in columns and pattern not in out:
            out.append(pattern)
    return out


def aggregate(records: list[dict[str, Any]]):
    """One row per method: the means and the aggregates every registered metric declares."""
    import pandas as pd

    from saliency_core.evaluate.metrics import METRICS, declared

    per_image, per_label = records_to_frames(records)
    if per_image.empty:
        return pd.DataFrame()
    rows = []
    for method, grp in per_image.groupby("method", sort=False):
        row: dict[str, Any] = {"method": method, "images": int(grp["image"].nunique())}
        labs = per_label[per_label["method"] == method] if not per_label.empty else per_label
        for col in _averaged(list(grp.columns), [*declared("averaged"), "method_s"]):
            vals = pd.to_numeric(grp[col], errors="coerce").dropna()
            if len(vals):
                row[col] = float(vals.mean())
        recs = [r for r in records if r["method"] == method]
        for entry in METRICS.entries().values():
            fn = entry.traits.aggregate
            if fn is not None:
                row.update(fn(recs, grp, labs))
        row["shared_mask"] = bool(grp["shared_mask"].fillna(False).astype(bool).all())
        rows.append(row)
    return pd.DataFrame(rows)


def with_failures(agg, failures: list, methods: list[str]):
    """The aggregate with a ``failed`` column: per method, the images it has no result for because they failed (to
    load: every method; or that method on them). A method that failed on every image gets a row of its own."""
    import pandas as pd

    rows = list(agg["method"]) if not agg.empty else []
    missing = [m for m in methods if m not in rows]
    if missing:
        agg = pd.concat([agg, pd.DataFrame({"method": missing, "images": [0] * len(missing)})], ignore_index=True)
    if agg.empty:
        return agg
    everywhere = {f.file for f in failures if f.method is None}
    agg = agg.copy()
    counts = [len(everywhere | {f.file for f in failures if f.method == m}) for m in agg["method"]]
    agg.insert(list(agg.columns).index("images") + 1, "failed", counts)
    return agg


def cell(row, column: str, digits: int = 3) -> str:
    """One aggregate value as text; ``0.431 [0.382, 0.478]`` when the row holds its interval (``<column>_lo`` /
    ``<column>_hi``)."""
    v = row[column] if column in row else float("nan")
    if not isinstance(v, float):
        return str(v)
    if math.isnan(v):
        return "-"
    lo, hi = row.get(f"{column}_lo"), row.get(f"{column}_hi")
    if isinstance(lo, float) and isinstance(hi, float) and not (math.isnan(lo) or math.isnan(hi)):
        return f"{v:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"
    return f"{v:.{digits}f}"


def _markdown(agg, cols: list[str], titles: dict[str, str] | None = None) -> str:
    titles = titles or {}
    lines = ["| " + " | ".join(titles.get(c, c) for c in cols) + " |", "|" + "---|" * len(cols)]
    for _, r in agg.iterrows():
        lines.append("| " + " | ".join(cell(r, c) for c in cols) + " |")
    return "\n".join(lines)


def main_table(agg, columns: tuple[str, ...] | None = None) -> str:
    """The aggregate table as Markdown: the columns the metrics declare for it, then the method's time (a value
    with a 95 % interval in the aggregate is shown as ``mean [low, high]``)."""
    from saliency_core.evaluate.metrics import declared

    columns = columns or ("images", "failed", *(c for c, _ in declared("table")), "method_s")
    return _markdown(agg, ["method"] + [c for c in columns if c in agg.columns])


def fixed_area_columns(agg) -> dict[str, str]:
    """The fixed-area columns present in the aggregate, ``{column: title}``: kept then deleted probability, then
    kept and deleted accuracy, at every area of the protocol."""
    from saliency_core.metrics.fixed_area import FIXED_AREAS

    out: dict[str, str] = {}
    for kind, title in (("kept", "kept {} ↑"), ("removed", "deleted {} ↓"), ("kept_acc", "kept acc {} ↑"),
                        ("removed_acc", "deleted acc {} ↓")):
        for a in FIXED_AREAS:
            col = f"fa_{kind}_{a:g}"
            if col in agg.columns:
                out[col] = title.format(f"{a * 100:g} %")
    return out


def fixed_area_table(agg) -> str:
    """Markdown: per method, the fixed-area probabilities and accuracies with their 95 % intervals ('' without)."""
    cols = fixed_area_columns(agg) if not agg.empty else {}
    if not cols:
        return ""
    return _markdown(agg, ["method", *cols], {"method": "method", **cols})
