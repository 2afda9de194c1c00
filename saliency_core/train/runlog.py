"""The run folder's logs: ``steps.csv`` (one row per step), ``epochs.csv`` (one row per epoch, with validation),
``tb/`` (TensorBoard), and setting an earlier run's files aside when a new run starts in the same folder.

A resumed run first cuts ``steps.csv`` back to the saved step (atomically), so a kill never leaves a step logged
twice; the trainer flushes and fsyncs the log before it writes a state, so a kill never loses a logged row.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

from saliency_core.files import atomic_write

#: Columns of the Phang / conditional runs' steps.csv (a term that a run does not use stays empty).
STEP_FIELDS = ["step", "epoch", "lr", "total", "in_ce", "area_in", "out_negentropy", "out_negce", "area_out", "tv",
               "mask_mean", "clean_acc", "judge", "cls_loss", "cls_clean_ce", "cls_out_ce", "cls_in_ce", "step_s"]

#: What a run writes into its folder (an earlier run's are moved aside when a new one starts there); config.json is
#: what the label masker's runs wrote before they had config.yaml.
RUN_OUTPUTS = ("state.pt", "pool-*.safetensors", "steps.csv", "epochs.csv", "config.yaml", "config.json",
               "masker.safetensors", "masker.json", "tb")


def write_csv(path: Path, rows: list[dict[str, Any]], fieldnames: list[str] | None = None) -> None:
    """Write a CSV whole (:func:`saliency_core.files.atomic_write`; ``fieldnames``: the columns; default those of
    the rows)."""
    keys = fieldnames or list(dict.fromkeys(k for r in rows for k in r))

    def write(tmp: Path) -> None:
        with tmp.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys, restval="", extrasaction="ignore")
            w.writeheader()
            w.writerows(rows)

    atomic_write(path, write)


def set_aside_outputs(out: Path) -> Path | None:
    """Move an earlier run's files into ``<out>/previous-<n>/`` (nothing is deleted); None when there were none."""
    found = [p for pattern in RUN_OUTPUTS for p in sorted(out.glob(pattern))]
    if not found:
        return None
    n = 1
    while (out / f"previous-{n}").exists():
        n += 1
    target = out / f"previous-{n}"
    target.mkdir()
    for p in found:
        os.replace(p, target / p.name)
    return target


class RunLog:
    """steps.csv, epochs.csv and TensorBoard of one process (only the main process writes anything)."""

    def __init__(self, out: Path, fields: list[str], is_main: bool, tensorboard: bool,
                 resumed_at: int | None) -> None:
        self.out, self.fields, self.is_main = Path(out), fields, is_main
        self.steps_path = self.out / "steps.csv"
        self.tb = None
        self.steps_file = None
        if not is_main:
            return
        rows: list[dict[str, str]] = []
        if resumed_at is not None and self.steps_path.exists():
            with self.steps_path.open(newline="") as f:  # drop steps done after the saved state
                rows = [r for r in csv.DictReader(f) if r.get("step") and int(r["step"]) <= resumed_at]
        write_csv(self.steps_path, rows, fields)  # atomically: a kill here keeps the old log
        self.steps_file = self.steps_path.open("a", newline="")
        self.steps_writer = csv.DictWriter(self.steps_file, fieldnames=fields, restval="", extrasaction="ignore")
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(self.out / "tb"), purge_step=resumed_at + 1 if resumed_at is not None else None)

    def step(self, row: dict[str, Any], step: int) -> None:
        """Append one step's row (floats to 6 significant digits) and its figures to TensorBoard."""
        if self.steps_file is None:
            return
        self.steps_writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
        if step % 10 == 0:
            self.steps_file.flush()
        if self.tb is not None:
            for k, v in row.items():
                if isinstance(v, float):
                    self.tb.add_scalar(f"train/{k}", v, step)

    def epochs(self, rows: list[dict[str, Any]]) -> None:
        """Rewrite epochs.csv with every epoch's row; the last row's figures to TensorBoard."""
        if not self.is_main:
            return
        write_csv(self.out / "epochs.csv", rows)
        if self.tb is not None and rows:
            row = rows[-1]
            for k, v in row.items():
                if k.startswith(("val_", "train_")) and isinstance(v, (int, float)):
                    self.tb.add_scalar(k.replace("_", "/", 1), v, row["epoch"])
            self.tb.flush()

    def sync(self) -> None:
        """Flush steps.csv to the disk (before a state is saved: the log then reaches the saved step)."""
        if self.steps_file is not None and not self.steps_file.closed:
            self.steps_file.flush()
            os.fsync(self.steps_file.fileno())

    def close(self) -> None:
        if self.steps_file is not None:
            self.steps_file.close()
        if self.tb is not None:
            self.tb.close()
