"""Read the project's Dockerfile as (INSTRUCTION, arguments) pairs, for the tests."""

from __future__ import annotations

import re
from pathlib import Path

DOCKERFILE = Path(__file__).resolve().parents[2] / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            pairs.append((keyword.upper(), " ".join(rest.split())))
    return pairs


def env() -> dict[str, str]:
    """The ENV instructions as a dict (values as written, no $-expansion)."""
    values = {}
    for keyword, args in instructions():
        if keyword == "ENV":
            for item in args.split():
                key, _, value = item.partition("=")
                values[key] = value
    return values
