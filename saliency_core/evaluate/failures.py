"""Images an evaluation could not use, as every output says them: one line, a CSV, a count per method.

An image that does not load fails for every method; a method that fails on an image fails for that method only.
Files are named as the images CSV (or folder) names them, never by an absolute machine path.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from saliency_core.files import atomic_write


@dataclass(frozen=True)
class Failure:
    """An image that could not be evaluated: by every method (``method`` None: it did not load) or by one."""

    file: str  # relative to the images CSV or folder
    reason: str
    method: str | None = None

    @property
    def line(self) -> str:
        return f"{self.file}{f' / {self.method}' if self.method else ''}: {self.reason}"


def failed_count(failures: list[Failure], total_images: int) -> str:
    """``3 of 5 images failed`` (images with any failure)."""
    return f"{len({f.file for f in failures})} of {total_images} images failed"


def failure_summary(failures: list[Failure], total_images: int, shown: int = 5) -> str | None:
    """One line: ``3 of 5 images failed: imgs/a.jpg (reason), ...`` (None when nothing failed)."""
    if not failures:
        return None
    listed = ", ".join(f"{f.file}{f' / {f.method}' if f.method else ''} ({f.reason})" for f in failures[:shown])
    more = f", ... ({len(failures) - shown} more)" if len(failures) > shown else ""
    return f"{failed_count(failures, total_images)}: {listed}{more}"


def write_failures_csv(path: Path, failures: list[Failure]) -> None:
    """``file, method, reason`` of every failure (method empty: every method; a header only when none failed)."""
    def write(tmp: Path) -> None:
        with tmp.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["file", "method", "reason"])
            w.writerows([fl.file, fl.method or "", fl.reason] for fl in failures)

    atomic_write(path, write)
