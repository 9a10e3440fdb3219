"""Response bodies: the image, its JSON form, progress lines and errors."""

from __future__ import annotations

import base64
import json
import math
from dataclasses import asdict
from typing import Any

from PIL import Image

from nst import NSTError, Progress, Result, StyleParams, content_type, encode_image

from . import error_json
from .auth import Unauthorized

JSON = "application/json"
NDJSON = "application/x-ndjson"


ClientError = NSTError | Unauthorized  # errors answered with a JSON body and a 4xx/503


def error_body(error: ClientError) -> dict[str, str | None]:
    """The JSON error body: a stable code, a message, the field at fault."""
    return error_json(error.code, error.message, error.field)


def error_status(error: ClientError) -> int:
    """HTTP status of an engine error: 401 for a bad API key, 413 for oversized images or a
    job too large for the device's memory, 503 for a job the deadline left no time for or
    that reached a worker on its way out, else 400."""
    return {
        "unauthorized": 401,
        "image_too_large": 413,
        "out_of_memory": 413,
        "deadline_exceeded": 503,
        "worker_restarting": 503,
    }.get(error.code, 400)


def strict_json(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None (strict JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict_json(v) for v in value]
    return value


def dumps(value: Any) -> bytes:
    """Strict JSON bytes: losses that are not finite become null."""
    return json.dumps(strict_json(value), allow_nan=False).encode()


def result_summary(result: Result) -> dict:
    """The run's figures (no image)."""
    return {
        "steps_run": result.steps_run,
        "stopped": result.stopped,
        "seconds": round(result.seconds, 3),
        "losses": asdict(result.losses),
        "initial_losses": asdict(result.initial_losses),
        "width": result.image.width,
        "height": result.image.height,
    }


def image_body(result: Result, params: StyleParams) -> tuple[bytes, str]:
    """Encoded image bytes and their MIME type."""
    return encode_image(result.image, params.format, params.quality), content_type(params.format)


def _result_dict(result: Result, params: StyleParams) -> dict:
    data, mime = image_body(result, params)
    return {
        "image": base64.b64encode(data).decode(),
        "content_type": mime,
        **result_summary(result),
    }


def json_body(result: Result, params: StyleParams) -> bytes:
    """The image as base64 plus the run's figures."""
    return dumps(_result_dict(result, params))


def progress_line(progress: Progress, preview: Image.Image | None = None) -> bytes:
    """One NDJSON line for a streamed progress report (``preview`` as base64 PNG)."""
    line = {
        "type": "progress",
        "step": progress.step,
        "steps": progress.steps,
        "losses": asdict(progress.losses),
    }
    if preview is not None:
        line["preview_png"] = base64.b64encode(encode_image(preview, "png")).decode()
    return dumps(line) + b"\n"


def final_line(result: Result, params: StyleParams) -> bytes:
    """The last NDJSON line of a stream: the image and the run's figures."""
    return dumps({"type": "result", **_result_dict(result, params)}) + b"\n"
