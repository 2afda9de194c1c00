"""The files of an evaluation: the JSONL records (resumed after a kill), the CSV tables, ``aggregate.csv/.json``,
``failures.csv`` and ``report.html``."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from saliency_core.evaluate.config import _FINGERPRINT, EvalConfig, EvalError
from saliency_core.evaluate.failures import Failure, failure_summary, write_failures_csv
from saliency_core.files import atomic_write, atomic_write_text


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    records = []
    if not path.exists():
        return records
    with path.open() as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut by a kill: ignore it, it will be redone
                continue
    return records


@dataclass
class EvalResult:
    out: Path
    records: list[dict[str, Any]]
    aggregate: Any  # pandas DataFrame
    failures: list[Failure]
    warnings: list[str] = field(default_factory=list)
    total_images: int = 0

    @property
    def report(self) -> Path:
        return self.out / "report.html"

    @property
    def summary(self) -> str | None:
        """``3 of 5 images failed: a.jpg (reason), ...`` (None when nothing failed)."""
        return failure_summary(self.failures, self.total_images)


def write_outputs(cfg: EvalConfig, out: Path, records: list[dict[str, Any]], failures: list[Failure] = (),
                  total_images: int = 0, methods: list[str] = ()):
    """Rebuild the CSVs, the aggregate tables and the HTML report from the records; every one of them says how many
    of ``total_images`` failed and which (``failures.csv`` lists them with the reason)."""
    from saliency_core.evaluate.report import write_report
    from saliency_core.evaluate.tables import aggregate, records_to_frames, with_failures

    failures = list(failures)
    total = total_images or len({r["image"] for r in records}) + len({f.file for f in failures})
    per_image, per_label = records_to_frames(records)
    atomic_write(out / "per_image.csv", lambda p: per_image.to_csv(p, index=False))  # whole or not at all
    atomic_write(out / "per_label.csv", lambda p: per_label.to_csv(p, index=False))
    agg = with_failures(aggregate(records), failures, list(methods))
    atomic_write(out / "aggregate.csv", lambda p: agg.to_csv(p, index=False))
    write_failures_csv(out / "failures.csv", failures)
    images = {"total": total, "evaluated": total - len({f.file for f in failures if f.method is None}),
              "failed": len({f.file for f in failures})}
    atomic_write_text(out / "aggregate.json", json.dumps(
        {"config": cfg.to_dict(), "images": images, "failures": [asdict(f) for f in failures],
         "methods": json.loads(agg.to_json(orient="records"))}, indent=2) + "\n")
    write_report(cfg, records, agg, out / "report.html", failures=failures, total_images=total)
    return agg


def prepare_out(cfg: EvalConfig) -> tuple[Path, list[dict[str, Any]]]:
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    jsonl = out / "per_image.jsonl"
    cfg_path = out / "config.json"
    records: list[dict[str, Any]] = []
    if cfg.resume and jsonl.exists() and cfg_path.exists():
        old = json.loads(cfg_path.read_text())
        old_fp = {k: old.get(k) for k in _FINGERPRINT}
        if old_fp != cfg.fingerprint():
            diff = [k for k in _FINGERPRINT if old_fp.get(k) != cfg.fingerprint().get(k)]
            raise EvalError(f"'{out}' holds results made with other settings ({', '.join(diff)}); "
                            "use another --out or --no-resume")
        records = _read_jsonl(jsonl)
        # rewrite without a line cut by a kill, so new records start on a fresh line
        atomic_write_text(jsonl, "".join(json.dumps(r) + "\n" for r in records))
    elif jsonl.exists():
        jsonl.unlink()
    atomic_write_text(cfg_path, json.dumps(cfg.to_dict(), indent=2) + "\n")
    return out, records
