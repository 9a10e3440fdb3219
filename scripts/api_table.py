#!/usr/bin/env python3
"""Rewrite the parameter table of docs/api.md from nst/params.py (``make docs``)."""

import sys
from pathlib import Path

from nst.params import markdown_table

API = Path(__file__).resolve().parents[1] / "docs/api.md"
START = "<!-- parameters: generated from nst/params.py by `make docs` -->\n"
END = "<!-- end of parameters -->"


def with_table(text: str) -> str:
    """``text`` with the block between the markers replaced by the generated table."""
    head, rest = text.split(START, 1)
    return head + START + markdown_table() + END + rest.split(END, 1)[1]


if __name__ == "__main__":
    API.write_text(with_table(API.read_text()))
    sys.exit(0)
