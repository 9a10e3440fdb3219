"""Print and keep the figures of the image tests (build time, size, readiness, stop time)."""

from __future__ import annotations

import json
import platform
from pathlib import Path

from tests.image.report import FIGURES

ROOT = Path(__file__).resolve().parents[2]


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def pytest_terminal_summary(terminalreporter) -> None:
    if not FIGURES:
        return
    figures = {name: round(value, 2) for name, value in FIGURES.items()}
    out = ROOT / "out/image-test.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"cpu": cpu_name(), **figures}, indent=2) + "\n")
    terminalreporter.section("image figures")
    for name, value in figures.items():
        terminalreporter.write_line(f"{name}: {value}")
    terminalreporter.write_line(f"(on {cpu_name()}; kept in {out.relative_to(ROOT)})")
