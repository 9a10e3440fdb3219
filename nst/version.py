"""The engine's version: that of the ``nst-server`` distribution it ships in."""

from __future__ import annotations

import argparse
from importlib import metadata

DISTRIBUTION = "nst-server"


def version() -> str:
    """The installed distribution's version (declared once, in pyproject.toml)."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:  # sources on sys.path, never installed
        return "unknown"


def add_version(parser: argparse.ArgumentParser) -> None:
    """``--version`` on a command's parser."""
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
