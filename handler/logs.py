"""The worker's log records as JSON lines: what ``kubectl logs`` and log collectors read.

TorchServe's worker logs to its stdout one message per line, and the frontend copies each line
into its ``MODEL_LOG`` (deploy/log4j2.xml sends the JSON ones to the container's stdout). A
record becomes one JSON object: time, level, logger, the message (a message that is itself a
JSON object, such as a job line, is merged in), the ``extra`` fields the handler gives
(``request_id``, ``error_id``) and the traceback as one escaped string, never several lines.
Only the records of this project's loggers change: TorchServe's own lines (its metrics
protocol among them, which the frontend parses) keep their text.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from .responses import strict_json

EXTRA_FIELDS = ("request_id", "error_id")
OWN_LOGGERS = ("handler", "nst")  # loggers whose records become JSON


class JsonLines(logging.Formatter):
    """One JSON object per record of this project's loggers, on one line; other records as
    TorchServe's worker writes them (the message alone)."""

    plain = logging.Formatter("%(message)s")

    def format(self, record: logging.LogRecord) -> str:
        if record.name.split(".")[0] not in OWN_LOGGERS:
            return self.plain.format(record)
        message = record.getMessage()
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
        }
        parsed = _json_object(message)
        if parsed is None:
            line["message"] = message
        else:
            line.update(parsed)
        for name in EXTRA_FIELDS:
            if hasattr(record, name):
                line[name] = getattr(record, name)
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(strict_json(line), default=str)


def _json_object(text: str) -> dict[str, Any] | None:
    if not text.startswith("{"):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def use_json_lines() -> int:
    """Format the records the worker writes to its stdout (TorchServe's handler on the root
    logger) as JSON lines; other handlers (a test's capture) are left alone. Returns how many
    handlers it changed."""
    changed = 0
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stdout:
            handler.setFormatter(JsonLines())
            changed += 1
    return changed
