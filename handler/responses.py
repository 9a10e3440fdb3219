"""Response bodies: the image, its JSON form, progress lines and errors."""

from __future__ import annotations

import base64
import json
from dataclasses import asdict

from nst import Progress, Result, encode_image
from nst.errors import NSTError
from nst.imageio import content_type
from nst.params import StyleParams

JSON = "application/json"
NDJSON = "application/x-ndjson"


def error_status(error: NSTError) -> int:
    """HTTP status for an input error: 401 for a bad API key, 413 for oversized images, else 400."""
    return {"unauthorized": 401, "image_too_large": 413}.get(error.code, 400)


def error_body(error: NSTError) -> bytes:
    """``{"error": CODE, "message": TEXT, "field": NAME}``."""
    return json.dumps(error.to_dict()).encode()


def internal_error_body(message: str) -> bytes:
    return json.dumps({"error": "internal_error", "message": message, "field": None}).encode()


def result_summary(result: Result) -> dict:
    """The run's figures (no image)."""
    return {"steps_run": result.steps_run, "stopped": result.stopped,
            "seconds": round(result.seconds, 3), "losses": asdict(result.losses),
            "initial_losses": asdict(result.initial_losses),
            "width": result.image.width, "height": result.image.height}


def image_body(result: Result, params: StyleParams) -> tuple[bytes, str]:
    """Encoded image bytes and their MIME type."""
    return encode_image(result.image, params.format, params.quality), content_type(params.format)


def _result_dict(result: Result, params: StyleParams) -> dict:
    data, mime = image_body(result, params)
    return {"image": base64.b64encode(data).decode(), "content_type": mime,
            **result_summary(result)}


def json_body(result: Result, params: StyleParams) -> bytes:
    """The image as base64 plus the run's figures."""
    return json.dumps(_result_dict(result, params)).encode()


def progress_line(progress: Progress) -> bytes:
    """One NDJSON line for a streamed progress report (preview as base64 PNG)."""
    line = {"type": "progress", "step": progress.step, "steps": progress.steps,
            "losses": asdict(progress.losses)}
    if progress.preview is not None:
        line["preview_png"] = base64.b64encode(encode_image(progress.preview, "png")).decode()
    return json.dumps(line).encode() + b"\n"


def final_line(result: Result, params: StyleParams) -> bytes:
    """The last NDJSON line of a stream: the image and the run's figures."""
    return json.dumps({"type": "result", **_result_dict(result, params)}).encode() + b"\n"
