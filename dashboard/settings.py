"""The dashboard's settings: what it runs on and the limits it enforces.

Declared in the core (``saliency_core/dashboard_settings.py``), because ``saliency dashboard`` builds and checks
them before the server starts and the core never imports the app; the command writes them into the environment
(``SALIENCY_DASHBOARD_*``) and the app reads them back with :meth:`DashboardSettings.from_env`. Re-exported
here, through the public API, for the dashboard's modules.
"""
from __future__ import annotations

from saliency_core import DashboardConfigError, DashboardSettings

__all__ = ["DashboardConfigError", "DashboardSettings"]
