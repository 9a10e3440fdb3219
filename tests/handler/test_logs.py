"""The worker's log records as JSON lines (handler/logs.py)."""

from __future__ import annotations

import io
import json
import logging
import sys

from handler.logs import JsonLines, use_json_lines


def record(message: str, *args, exc: BaseException | None = None, **extra) -> logging.LogRecord:
    info = (type(exc), exc, exc.__traceback__) if exc else None
    made = logging.LogRecord("handler.replies", logging.ERROR, __file__, 1, message, args, info)
    made.__dict__.update(extra)
    return made


def test_an_error_with_its_traceback_is_one_json_line():
    try:
        raise RuntimeError("boom")
    except RuntimeError as caught:
        error = caught
    text = JsonLines().format(
        record("request %s: error %s", "r1", "e1", exc=error, request_id="r1", error_id="e1")
    )
    assert "\n" not in text
    line = json.loads(text)
    assert line["level"] == "ERROR" and line["logger"] == "handler.replies"
    assert (line["request_id"], line["error_id"]) == ("r1", "e1")
    assert line["message"] == "request r1: error e1"
    assert "RuntimeError: boom" in line["traceback"] and "Traceback" in line["traceback"]


def test_a_job_line_is_merged_not_nested():
    job = {"event": "job", "request_id": "r2", "status": 200, "loss": float("nan")}
    line = json.loads(JsonLines().format(record("%s", json.dumps(job))))
    assert line["event"] == "job" and line["request_id"] == "r2" and "message" not in line
    assert line["loss"] is None  # strict JSON: no NaN for a collector to choke on
    assert line["time"].endswith("+00:00")


def test_only_the_workers_stdout_handler_is_switched():
    root = logging.getLogger()
    stdout, other = logging.StreamHandler(sys.stdout), logging.StreamHandler(io.StringIO())
    root.addHandler(stdout)
    root.addHandler(other)
    try:
        assert use_json_lines() >= 1
        assert isinstance(stdout.formatter, JsonLines)
        assert not isinstance(other.formatter, JsonLines)
    finally:
        root.removeHandler(stdout)
        root.removeHandler(other)


def test_torchserves_own_lines_keep_their_text():
    """The frontend parses the worker's metrics lines: they must stay as they are."""
    line = "[METRICS]nst_jobs_total.Count:1.0|#ModelName:style_transfer,Level:Model|#hostname:h"
    made = logging.LogRecord("ts.metrics.metric", logging.INFO, __file__, 1, line, (), None)
    assert JsonLines().format(made) == line
