"""Operator tools around TorchServe: start/stop, model archive, probes, the Ingress auth gate."""

from __future__ import annotations

import argparse
import os
from importlib import metadata
from pathlib import Path

DISTRIBUTION = "nst-server"
# What the commands need beside the code, shipped in the package: TorchServe's settings for a
# local server, the model's settings, the metrics TorchServe exports, the try-it page and its
# sample images.
RESOURCES = Path(__file__).resolve().parent / "resources"
HOME_ENV = "NST_HOME"  # where an installed server keeps its archive, run folder and logs


def add_version(parser: argparse.ArgumentParser) -> None:
    """``--version`` on a command's parser (``nst.version``'s, without importing the engine:
    the probes stay light)."""
    try:
        number = metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:  # sources on sys.path, never installed
        number = "unknown"
    parser.add_argument("--version", action="version", version=f"%(prog)s {number}")


def checkout() -> Path | None:
    """The source checkout this package runs from (editable installs), else None."""
    root = Path(__file__).resolve().parents[1]
    return root if (root / "pyproject.toml").is_file() else None


def server_home() -> Path:
    """Where ``nst-server`` and ``nst-build-mar`` put what they make (the model archive, the
    run folder, the logs): the checkout when run from one (as ``make serve`` does), else
    ``$NST_HOME``, else ``$XDG_STATE_HOME/nst-server`` (``~/.local/state/nst-server``). Never
    the installed package itself."""
    if os.environ.get(HOME_ENV):
        return Path(os.environ[HOME_ENV]).expanduser()
    root = checkout()
    if root is not None:
        return root
    state = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(state) / DISTRIBUTION
