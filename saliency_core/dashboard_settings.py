"""What ``saliency dashboard`` hands to the app: what it runs on and the limits it enforces.

Declared here, in the core, because the command (``saliency_core/cli/dashboard_command.py``) builds and checks
them before the server starts, and the core never imports the app; the app reads them back with
:meth:`DashboardSettings.from_env` through the public API (``sc.DashboardSettings``). Each setting is declared
once with :func:`~saliency_core.options.option`: its default, help and range give the command's flags, the check
of a value and the reading of the environment. Nothing here imports torch or Streamlit.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from saliency_core.options import OptionError, check_options, coerce_option, config_to_dict, declared_options, option

ENV_PREFIX = "SALIENCY_DASHBOARD_"


class DashboardConfigError(ValueError):
    """A dashboard setting that cannot be used (bad port, missing app file, bad number)."""


@dataclass(frozen=True)
class DashboardSettings:
    """What the dashboard runs on and the limits it enforces (shared by the command and the app)."""

    classifier: str = option("efficientnet_lite0", help="classifier to explain (default: the embedded "
                                                        "EfficientNet-Lite0)")
    classifier_weights: str = option("", help="local weights file (all but the default classifier)")
    device: str = option("cpu", help="cpu, cuda or auto")
    checkpoint_dirs: str = option("", help="extra folders of masker checkpoints, os.pathsep-separated "
                                           "(checkpoints/ is always searched)")
    max_upload_mb: int = option(20, low=1, help="largest accepted upload in MB (larger ones are refused)")
    max_pixels: int = option(40_000_000, low=1, help="decoded pixel limit of an image (decompression bombs are "
                                                     "refused)")
    max_side: int = option(2048, low=1, help="longer side of an image after loading (bigger ones are downscaled)")
    curve_steps: int = option(16, low=1, help="insertion-curve steps shown by default")
    cache_entries: int = option(48, low=1, help="explanations kept in memory (shared by all sessions)")

    def __post_init__(self) -> None:
        try:
            check_options(self, "dashboard setting")
        except OptionError as exc:
            raise DashboardConfigError(str(exc)) from None

    @property
    def checkpoint_folders(self) -> list[Path]:
        return [Path(p) for p in self.checkpoint_dirs.split(os.pathsep) if p.strip()]

    def to_env(self) -> dict[str, str]:
        """The settings as ``SALIENCY_DASHBOARD_<FIELD>`` environment variables."""
        return {ENV_PREFIX + k.upper(): str(v) for k, v in config_to_dict(self).items()}

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "DashboardSettings":
        """Read the settings back from the environment (unset or empty variables keep their defaults); a bad
        value is one line naming the variable."""
        environ = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for opt in declared_options(cls):
            var = ENV_PREFIX + opt.name.upper()
            raw = environ.get(var)
            if raw is None or raw == "":
                continue
            try:
                values[opt.name] = coerce_option(opt, raw, "dashboard setting")
            except OptionError:
                raise DashboardConfigError(f"{var}={raw!r} must be {opt.describe()}") from None
        return cls(**values)
