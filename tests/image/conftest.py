"""Print and keep the figures of the image tests (build time, size, readiness, stop time)."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

from tests.image.report import FIGURES

ROOT = Path(__file__).resolve().parents[2]


def cpu_name() -> str:
    """e.g. "2-core AVX-512-BF16 CPU (AMD EPYC)": figures compare only on the same kind."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in info.splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or platform.machine(),
    )
    kind = "AVX-512-BF16" if "avx512_bf16" in info else "AVX2" if "avx2" in info else ""
    return f"{os.cpu_count()}-core {kind} CPU ({model})".replace("  ", " ")


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
