"""The dashboard's settings: what it runs on and the limits it enforces.

``saliency dashboard`` writes them into the environment (``SALIENCY_DASHBOARD_*``) and the app reads
them back with :meth:`DashboardSettings.from_env`; nothing here imports Streamlit.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

ENV_PREFIX = "SALIENCY_DASHBOARD_"


class DashboardConfigError(ValueError):
    """A dashboard setting that cannot be used (bad port, missing app file, bad number)."""


@dataclass(frozen=True)
class DashboardSettings:
    """What the dashboard runs on and the limits it enforces (shared by the CLI and the app)."""

    classifier: str = "efficientnet_lite0"
    classifier_weights: str = ""  # a local weights file; empty = the classifier's default
    device: str = "cpu"
    checkpoint_dirs: str = ""  # extra folders of masker checkpoints, os.pathsep-separated
    max_upload_mb: int = 20  # uploads larger than this are refused
    max_pixels: int = 40_000_000  # decoded pixel limit (decompression bombs are refused)
    max_side: int = 2048  # longer side after loading (bigger images are downscaled)
    curve_steps: int = 16  # insertion-curve steps shown by default
    cache_entries: int = 48  # explanations kept in memory (shared by all sessions)

    def __post_init__(self) -> None:
        for name in ("max_upload_mb", "max_pixels", "max_side", "curve_steps", "cache_entries"):
            if getattr(self, name) < 1:
                raise DashboardConfigError(f"dashboard setting {name} must be >= 1, got {getattr(self, name)}")

    @property
    def checkpoint_folders(self) -> list[Path]:
        return [Path(p) for p in self.checkpoint_dirs.split(os.pathsep) if p.strip()]

    def to_env(self) -> dict[str, str]:
        """The settings as ``SALIENCY_DASHBOARD_<FIELD>`` environment variables."""
        return {ENV_PREFIX + k.upper(): str(v) for k, v in asdict(self).items()}

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "DashboardSettings":
        """Read the settings back from the environment (unset variables keep their defaults)."""
        environ = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = environ.get(ENV_PREFIX + f.name.upper())
            if raw is None or raw == "":
                continue
            if f.type in ("int", int):
                try:
                    values[f.name] = int(raw)
                except ValueError:
                    raise DashboardConfigError(f"{ENV_PREFIX + f.name.upper()}={raw!r} is not a whole number") from None
            else:
                values[f.name] = raw
        return cls(**values)
