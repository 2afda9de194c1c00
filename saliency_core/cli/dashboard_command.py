"""``saliency dashboard [--port N] [--host H]``: start the Streamlit dashboard, offline and headless.

The command replaces itself (``exec``) with ``python -m streamlit run dashboard/app.py`` so that a
signal sent to it reaches the server directly. Everything a ``.streamlit/config.toml`` would hold
is given as flags and environment variables: headless (no browser launch, no e-mail prompt), bound
to the given address (default loopback, which also skips Streamlit's external-IP lookup), no usage
statistics, no file watcher, an upload size limit and no error details in the browser.

:class:`saliency_core.dashboard_settings.DashboardSettings` is the one config of the dashboard, declared in the
core (the core never imports the app): its declared options give this command's flags, the command writes it
into the environment (``SALIENCY_DASHBOARD_*``) and the app reads it back with :meth:`DashboardSettings.from_env`.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from saliency_core.cli import COMMANDS
from saliency_core.cli.flags import add_config_flags
from saliency_core.dashboard_settings import ENV_PREFIX, DashboardConfigError, DashboardSettings  # noqa: F401
from saliency_core.options import declared_options


def app_path() -> Path:
    """The Streamlit entry script, ``dashboard/app.py`` (found without importing the dashboard)."""
    import importlib.util

    spec = importlib.util.find_spec("dashboard")
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    folders.append(str(Path(__file__).resolve().parents[2] / "dashboard"))
    for folder in folders:
        path = Path(folder).resolve() / "app.py"
        if path.is_file():
            return path
    raise DashboardConfigError("the dashboard app (dashboard/app.py) is missing: is the 'dashboard' package installed?")


#: Streamlit settings that make the server offline, headless and quiet (a config.toml, as env vars).
STREAMLIT_ENV = {
    "STREAMLIT_SERVER_HEADLESS": "true",
    "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
    "STREAMLIT_SERVER_SHOW_EMAIL_PROMPT": "false",
    "STREAMLIT_SERVER_FILE_WATCHER_TYPE": "none",
    "STREAMLIT_CLIENT_SHOW_ERROR_DETAILS": "none",
    "STREAMLIT_CLIENT_TOOLBAR_MODE": "minimal",
    "STREAMLIT_SERVER_RUN_ON_SAVE": "false",
}


def streamlit_command(host: str, port: int, settings: DashboardSettings) -> tuple[list[str], dict[str, str]]:
    """The ``python -m streamlit run`` argv and the environment it needs."""
    if not 1 <= port <= 65535:
        raise DashboardConfigError(f"port must be between 1 and 65535, got {port}")
    if not host.strip():
        raise DashboardConfigError("host must not be empty")
    argv = [
        sys.executable, "-m", "streamlit", "run", str(app_path()),
        "--server.headless", "true",
        "--server.address", host,
        "--server.port", str(port),
        "--browser.gatherUsageStats", "false",
        "--server.fileWatcherType", "none",
        "--server.maxUploadSize", str(settings.max_upload_mb),
        "--server.showEmailPrompt", "false",
        "--client.showErrorDetails", "none",
        "--client.toolbarMode", "minimal",
        "--server.runOnSave", "false",
        # one script thread per session: with fast reruns a click starts a new run while the stopped one is still
        # finishing, and the two race on the widget state ("dictionary keys changed during iteration", an error box
        # on the page, seen once in 7 browser-test runs); a stopped run yields within a progress tick (0.25 s)
        "--runner.fastReruns", "false",
    ]
    env = {**STREAMLIT_ENV, **settings.to_env()}
    return argv, env


#: Settings given by a flag of their own: ``--checkpoint-dir`` (repeatable) fills ``checkpoint_dirs``.
_OWN_FLAGS = ("checkpoint_dirs",)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dashboard", help=COMMANDS["dashboard"],
                       description="Start the dashboard on http://HOST:PORT (default 127.0.0.1:8501). "
                                   "Nothing is downloaded and no usage statistics are sent.")
    p.add_argument("--port", type=int, default=8501, help="port to listen on (default 8501)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; 0.0.0.0 to serve other machines)")
    p.add_argument("--checkpoint-dir", action="append", default=[], metavar="DIR",
                   help="extra folder of masker checkpoints (repeatable; checkpoints/ is always searched)")
    add_config_flags(p, DashboardSettings, skip=_OWN_FLAGS)  # one flag per declared setting: values checked by it
    p.add_argument("--print-command", action="store_true", help="print the server command and exit")
    p.set_defaults(handler=run)


def settings_from_args(args: argparse.Namespace) -> DashboardSettings:
    """The settings the flags give (unset ones keep their declared default); a bad value is one line."""
    values = {o.name: getattr(args, o.name) for o in declared_options(DashboardSettings)
              if o.name not in _OWN_FLAGS and getattr(args, o.name, None) is not None}
    dirs = os.pathsep.join(str(Path(d).resolve()) for d in args.checkpoint_dir)
    return DashboardSettings(**values, checkpoint_dirs=dirs)


def exposure(host: str, settings: DashboardSettings) -> list[str]:
    """What a visitor can reach when the server listens beyond this machine (nothing to say on loopback)."""
    if host in ("127.0.0.1", "localhost", "::1"):
        return []
    folders = ", ".join(str(f) for f in settings.checkpoint_folders) or "none"
    return [f"warning: listening on {host}: anyone who can reach this machine's address can use the dashboard",
            f"  they can: run the classifier and the methods on images they upload (up to {settings.max_upload_mb} MB, "
            f"{settings.max_pixels / 1e6:.0f} MP), upload masker checkpoints (checked, kept for their session only),",
            f"  and load the shipped checkpoints and those in the folders given with --checkpoint-dir ({folders});",
            "  they cannot: name any other file on this machine, or write outside the upload folder."]


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    argv, env = streamlit_command(args.host, args.port, settings)
    if args.print_command:
        print(" ".join(f"{k}={v}" for k, v in env.items()))
        print(" ".join(argv))
        return 0
    print(f"saliency dashboard: http://{args.host}:{args.port}  (Ctrl+C stops it)", file=sys.stderr, flush=True)
    for line in exposure(args.host, settings):
        print(line, file=sys.stderr, flush=True)
    full_env = {**os.environ, **env}
    os.execve(sys.executable, argv, full_env)
    return 0  # pragma: no cover - execve does not return
