"""Figures the image tests measure (seconds, sizes), printed at the end of the run and kept in
out/image-test.json for docs/deploy.md."""

from __future__ import annotations

FIGURES: dict[str, float] = {}
