"""A submitted body: read once, validated by the handler's parser, stored, forwarded.

A job's request is stored as JSON: ``{"kind": "json", "body": ...}`` for a JSON body, or
``{"kind": "form", "fields": [[name, text | {"b64": file, "filename": ...}], ...]}`` for a
multipart form. It is forwarded to TorchServe in the encoding it came in, with
``stream: true`` added (the runner follows the job through its progress lines).
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from aiohttp import FormData, web
from aiohttp.web_request import FileField

from nst import InputError


async def read_submission(request: web.Request) -> tuple[dict[str, Any], bytes]:
    """The body as TorchServe would hand it to the handler, and its stored form; a body
    that cannot be read is a 400 ``malformed_body``."""
    try:
        return await _read(request)
    except web.HTTPException:
        raise  # too large: answered as such
    except Exception as exc:
        raise InputError(
            f"the body cannot be read as {request.content_type}: {exc}",
            field="body",
            code="malformed_body",
        ) from exc


async def _read(request: web.Request) -> tuple[dict[str, Any], bytes]:
    if request.content_type.startswith("multipart/"):
        form = await request.post()
        fields: list[list[Any]] = []
        as_torchserve: dict[str, Any] = {}
        for name, value in form.items():  # a repeated field: the last wins, as in TorchServe
            if isinstance(value, FileField):
                data = value.file.read()
                as_torchserve[name] = data
                fields.append(
                    [name, {"b64": base64.b64encode(data).decode(), "filename": value.filename}]
                )
            else:
                as_torchserve[name] = str(value)
                fields.append([name, str(value)])
        return as_torchserve, json.dumps({"kind": "form", "fields": fields}).encode()
    raw = await request.read()
    stored = {"kind": "json", "body": raw.decode("utf-8", "replace")}
    return {"body": raw}, json.dumps(stored).encode()


def request_hash(stored: bytes) -> str:
    """What an idempotency key's request is compared by."""
    return hashlib.sha256(stored).hexdigest()


def forward_body(stored: bytes) -> tuple[FormData | bytes, str | None]:
    """The stored request as TorchServe's body with ``stream`` on, and its content type
    (None: the form sets its own, boundary included)."""
    request = json.loads(stored)
    if request["kind"] == "json":
        body = json.loads(request["body"])
        body["stream"] = True
        return json.dumps(body).encode(), "application/json"
    form = FormData()
    for name, value in request["fields"]:
        if name == "stream":
            continue
        if isinstance(value, dict):
            form.add_field(
                name,
                base64.b64decode(value["b64"]),
                filename=value.get("filename") or name,
                content_type="application/octet-stream",
            )
        else:
            form.add_field(name, value)
    form.add_field("stream", "true")
    return form, None
