#!/usr/bin/env python3
"""Rewrite the parameter and preset tables of docs/api.md from nst/params.py
(``make docs``)."""

import sys
from pathlib import Path

from nst.params import markdown_table, preset_table

API = Path(__file__).resolve().parents[1] / "docs/api.md"
BLOCKS = {"parameters": markdown_table, "presets": preset_table}


def with_table(text: str, name: str = "parameters") -> str:
    """``text`` with the block between ``name``'s markers replaced by its generated table."""
    start = f"<!-- {name}: generated from nst/params.py by `make docs` -->\n"
    end = f"<!-- end of {name} -->"
    head, rest = text.split(start, 1)
    return head + start + BLOCKS[name]() + end + rest.split(end, 1)[1]


if __name__ == "__main__":
    text = API.read_text()
    for block in BLOCKS:
        text = with_table(text, block)
    API.write_text(text)
    sys.exit(0)
