"""Operator tools around TorchServe: start/stop, model archive, probes, the Ingress auth gate."""

from __future__ import annotations

from pathlib import Path


def project_root() -> Path:
    """The checkout this package runs from (it holds config.properties), else the current
    directory: the defaults of ``nst-server`` and ``nst-build-mar`` are relative to it."""
    checkout = Path(__file__).resolve().parents[1]
    return checkout if (checkout / "config.properties").is_file() else Path.cwd()
