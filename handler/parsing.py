"""Turn one TorchServe request (``data[i]`` plus its headers) into an ``nst.Job``.

Two encodings are accepted:

* ``multipart/form-data``: file fields ``content``, ``style`` (more styles as ``style_2`` ..
  ``style_N``: TorchServe keeps only the last of repeated form fields), optional
  ``init_image`` and ``mask``; text fields for parameters and ``stream``.
* ``application/json``: ``{"content": b64, "style": b64 | [b64, ...], "init_image": b64,
  "mask": b64, "params": {...}, "stream": bool}``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nst import (
    ImageError,
    InputError,
    Job,
    ParamError,
    StyleParams,
    check_style_count,
    decode_image,
    quote,
    work_pixels,
)

from .settings import ServerSettings

ROUTING_INPUTS = ("model_name",)  # inputs TorchServe's routes add; not the client's fields
OPTIONAL_IMAGES = ("init_image", "mask")
IMAGE_FIELDS = ("content", "style", *OPTIONAL_IMAGES)
JSON_KEYS = {*IMAGE_FIELDS, "params", "stream"}
TRUE_WORDS = ("true", "1", "yes", "on")  # form text of a flag (any case)
FALSE_WORDS = ("false", "0", "no", "off")
_STYLE_FIELD = re.compile(r"^style(?:_([0-9]+))?$")
_DATA_URL = re.compile(r"^\s*data:[\w.+-]+/[\w.+-]+(?:;[\w.+-]+=[\w.+-]+)*;base64,", re.I)
_URL_SAFE = str.maketrans("-_", "+/")
MIN_DECODED_SIDE = 64  # styles are never decoded smaller than this a side


@dataclass
class ParsedRequest:
    """A validated request ready for the engine."""

    job: Job
    stream: bool
    want_json: bool


def parse_request(
    request: Mapping[str, Any],
    headers: Mapping[str, str],
    settings: ServerSettings,
    *,
    streams: bool = True,
) -> ParsedRequest:
    """Validate one request (all but the layers' depth, which needs the weights: the
    handler's gate); raises :class:`nst.errors.NSTError` naming the bad field.
    ``streams``: whether the request's transport can carry a stream (gRPC cannot)."""
    # TorchServe's SageMaker route (/invocations?model_name=...) passes its routing query on
    # as an input; it has already chosen this model.
    request = {k: v for k, v in request.items() if k not in ROUTING_INPUTS}
    is_json = "body" in request and len(request) == 1
    fields = _json_fields(request["body"]) if is_json else dict(request)
    style_files = {name: fields.pop(name) for name in _style_names(fields, settings)}
    content_file = fields.pop("content", None)
    raw = {name: fields.pop(name, None) for name in OPTIONAL_IMAGES}
    stream = _flag(fields.pop("stream", False), "stream", is_json)
    if stream and not streams:
        raise ParamError(
            "stream=true needs the HTTP API: TorchServe's gRPC calls carry one answer per "
            "request here",
            field="stream",
        )
    if raw["init_image"] is not None:
        fields.setdefault("init", "image")  # an init image given is an init image used
    params = StyleParams.from_mapping(fields, defaults=settings.defaults, limits=settings.limits)
    # Images are decoded knowing the sizes they will be used at (large JPEGs decode faster).
    style_side = max(MIN_DECODED_SIDE, math.ceil(params.size * params.style_scale))
    sides = {"init_image": params.size, "mask": None}
    styles = [_image(value, name, settings, style_side) for name, value in style_files.items()]
    content = _image(content_file, "content", settings, params.size)
    extra = {
        name: _image(value, name, settings, sides[name])
        for name, value in raw.items()
        if value is not None
    }
    job = Job(content=content, styles=styles, params=params, **extra)
    check_work(job, settings)
    accept = headers.get("accept", "")
    return ParsedRequest(job, stream, want_json="application/json" in accept.lower())


def check_work(job: Job, settings: ServerSettings) -> None:
    """Refuse a job whose VGG passes would exceed the server's ``max_work_pixels``."""
    work, limit = work_pixels(job), settings.max_work_pixels
    if work > limit:
        p = job.params
        raise ParamError(
            f"this request needs {work} pixels per VGG pass (the output at size {p.size} "
            f"plus {len(job.styles)} style image(s) at style_scale "
            f"{p.style_scale:g}); this server allows {limit}: lower size, style_scale or "
            "the number of styles",
            field="size",
            code="limit_exceeded",
        )


def _json_fields(body: Any) -> dict[str, Any]:
    """Flatten a JSON body into the multipart field layout. A JSON object that arrives as
    bytes (gRPC's ``body`` input, or HTTP without ``Content-Type: application/json``) counts
    as JSON too."""
    if isinstance(body, bytes | bytearray) and body.lstrip()[:1] == b"{":
        with contextlib.suppress(ValueError):  # not JSON after all: refused below
            body = json.loads(body)
    if isinstance(body, bytes | bytearray):
        if not body:
            raise ImageError(
                "the request body is empty: send multipart/form-data with "
                "'content' and 'style' files, or JSON",
                field="content",
                code="missing_field",
            )
        raise InputError(
            "the body is neither multipart/form-data nor valid JSON",
            field="body",
            code="malformed_body",
        )
    if not isinstance(body, dict):
        raise InputError("the JSON body must be an object", field="body", code="malformed_body")
    unknown = set(body) - JSON_KEYS
    if unknown:
        name = sorted(unknown)[0]
        raise ParamError(f"unknown key {quote(name)}; parameters go inside 'params'", field=name)
    body = {k: v for k, v in body.items() if v is not None}  # null: not given
    params = body.get("params", {})
    if not isinstance(params, dict):
        raise ParamError("'params' must be an object", field="params")
    params = {k: v for k, v in params.items() if v is not None}
    misplaced = [k for k in params if k in JSON_KEYS or _STYLE_FIELD.match(k)]
    if misplaced:
        name = misplaced[0]
        raise ParamError(
            f"{quote(name)} goes at the top level of the body, not inside 'params'", field=name
        )
    fields = {k: v for k, v in body.items() if k != "params"}
    style = fields.pop("style", None)
    if isinstance(style, list):
        fields.update({("style" if i == 0 else f"style_{i + 1}"): s for i, s in enumerate(style)})
    elif style is not None:
        fields["style"] = style
    for key, value in params.items():
        fields.setdefault(key, value)
    for name in [k for k in fields if _STYLE_FIELD.match(k) or k in IMAGE_FIELDS]:
        fields[name] = _b64(fields[name], name)
    return fields


def _b64(value: Any, field: str) -> bytes:
    """Decode a JSON image: standard or URL-safe base64, wrapped lines and a missing padding
    allowed, optionally as a ``data:`` URL (what browsers' ``readAsDataURL`` gives)."""
    if not isinstance(value, str):
        raise ImageError(f"{field} must be a base64 string", field=field, code="invalid_base64")
    text = _DATA_URL.sub("", value, count=1)
    text = "".join(text.split()).translate(_URL_SAFE)
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ImageError(
            f"{field} is not valid base64", field=field, code="invalid_base64"
        ) from None


def _style_names(fields: Mapping[str, Any], settings: ServerSettings) -> list[str]:
    """``style``, ``style_2`` .. ``style_N`` present in ``fields``, in order: numbered without
    a gap (a gap or a second first style is refused, never silently renumbered), their count
    checked before any is decoded."""
    names = [k for k in fields if _STYLE_FIELD.match(k)]
    if "style" not in names:  # style_2 ... add styles to it
        raise ImageError("missing 'style' image", field="style", code="missing_field")
    check_style_count(len(names), settings.max_styles)
    expected = ["style", *(f"style_{n}" for n in range(2, len(names) + 1))]
    misnumbered = sorted(set(names) - set(expected))
    if misnumbered:
        raise ParamError(
            f"style images are 'style', then 'style_2', 'style_3' ... without gaps; "
            f"{quote(misnumbered[0])} does not fit with {len(names)} style images",
            field=misnumbered[0],
        )
    return expected


def _image(value: Any, field: str, settings: ServerSettings, side: int | None):
    if value is None:
        raise ImageError(f"missing '{field}' image", field=field, code="missing_field")
    if isinstance(value, str):
        value = value.encode("latin-1", errors="replace")
    if not isinstance(value, bytes | bytearray):
        raise ImageError(f"{field} must be an image file", field=field, code="not_an_image")
    return decode_image(
        bytes(value),
        field=field,
        max_pixels=settings.max_input_pixels,
        manage_colours=field != "mask",  # a mask's exact colours name its regions
        needed_side=side,
    )


def _flag(value: Any, field: str, is_json: bool) -> bool:
    """A JSON boolean, or form text: true/false, 1/0, yes/no, on/off (any case)."""
    if isinstance(value, bool):
        return value
    if is_json:
        raise ParamError(f"{field} must be true or false, got {quote(value)}", field=field)
    text = (
        bytes(value).decode("utf-8", "replace")
        if isinstance(value, bytes | bytearray)
        else str(value)
    )
    text = text.strip().lower()
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    raise ParamError(f"{field} must be true or false, got {quote(text)}", field=field)
