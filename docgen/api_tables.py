"""The parameter and preset tables of docs/api.md, generated from :mod:`nst.params`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from nst.params import PRESETS, StyleParams, declared_default, number_text

from . import ROOT

API = ROOT / "docs" / "api.md"


def markdown_table() -> str:
    """The parameter table: every :class:`~nst.params.StyleParams` field's declaration."""
    rows = [
        "| name | type | default | allowed | meaning |",
        "|---|---|---|---|---|",
    ]
    for f in dataclasses.fields(StyleParams):
        m = f.metadata
        default = declared_default(f)
        if m["choices"]:
            allowed = ", ".join(f"`{c}`" for c in m["choices"])
        elif m["lo"] is not None:
            allowed = f"{number_text(m['lo'])} .. {number_text(m['hi'])}"
        elif m["kind"] == "layers":
            allowed = "VGG19 layer names"
        else:
            allowed = "numbers ≥ 0"
        shown = ",".join(default) if m["kind"] == "layers" else default
        shown = "equal" if shown == () else f"`{shown}`"
        rows.append(f"| `{f.name}` | {m['kind']} | {shown} | {allowed} | {m['help']} |")
    return "\n".join(rows) + "\n"


def preset_table() -> str:
    """The preset table: what each preset sets."""
    rows = ["| preset | sets |", "|---|---|"]
    for name, values in PRESETS.items():
        if values:
            sets = ", ".join(f"`{k}={v}`" for k, v in values.items())
            rows.append(f"| `{name}` | {sets} |")
    return "\n".join(rows) + "\n"


TABLES: dict[str, Callable[[], str]] = {"parameters": markdown_table, "presets": preset_table}


def with_table(text: str, name: str) -> str:
    """``text`` with the block between ``name``'s markers replaced by its generated table."""
    start = f"<!-- {name}: generated from nst/params.py by `make docs` -->\n"
    end = f"<!-- end of {name} -->"
    head, rest = text.split(start, 1)
    return head + start + TABLES[name]() + end + rest.split(end, 1)[1]


def write_tables() -> None:
    """Rewrite docs/api.md's generated tables."""
    text = API.read_text()
    for name in TABLES:
        text = with_table(text, name)
    API.write_text(text)
