"""The progress callback every long computation accepts: ``progress(fraction in [0, 1], message)``."""
from __future__ import annotations

from typing import Callable

ProgressFn = Callable[[float, str], None]
