"""KServe's model routes on the inference port, answered by the front door (key proxy).

TorchServe serves the KServe v1 ``:predict`` and v2 ``/infer`` routes (handler/kserve.py) but
not their metadata and readiness routes, and its own description of the model (limits,
defaults, batch size) is on the management API, which stays on loopback. The proxy answers:

* ``GET /v2/health/live``, ``GET /v2/health/ready``: no key, as probes ask them;
* ``GET /v2/models/style_transfer``: the Open Inference Protocol metadata (inputs, outputs)
  with the server's ``limits``, request ``parameters`` (defaults and ranges) and
  ``capacity`` (``batch_size`` x ``workers``: requests it optimises at once);
* ``GET /v2/models/style_transfer/ready``, ``GET /v1/models/style_transfer``: readiness.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import ClientError, ClientSession, web

from handler import MODEL_NAME

from .errors import error_response

IMAGE = {"datatype": "BYTES"}
INPUTS = [
    {"name": "content", "shape": [1], **IMAGE},
    {"name": "style", "shape": [-1], **IMAGE},  # one element per style
    {"name": "mask", "shape": [1], **IMAGE, "optional": True},
    {"name": "init_image", "shape": [1], **IMAGE, "optional": True},
]
OUTPUTS = [{"name": "image", "shape": [1], **IMAGE}]
KEYLESS = ("/v2/health/live", "/v2/health/ready")


async def describe(session: ClientSession, management: str, auth: str | None) -> dict | None:
    """The management API's description of the model (with the handler's limits when the
    key is good), or None when it cannot be read."""
    headers = {"Authorization": auth} if auth else {}
    try:
        async with session.get(
            f"{management}/models/{MODEL_NAME}?customized=true", headers=headers
        ) as reply:
            if reply.status != 200:
                return None
            described = await reply.json(content_type=None)
    except (ClientError, ValueError):
        return None
    return described[0] if isinstance(described, list) and described else None


def ready(described: dict | None) -> bool:
    workers = (described or {}).get("workers") or []
    return any(w.get("status") == "READY" for w in workers)


def metadata(described: dict) -> dict[str, Any]:
    """OIP model metadata with the server's limits, parameters and capacity."""
    custom = described.get("customizedMetadata") or {}
    if isinstance(custom, str):
        custom = json.loads(custom)
    workers = len(described.get("workers") or [])
    return {
        "name": MODEL_NAME,
        "versions": [str(described.get("modelVersion", "1.0"))],
        "platform": "pytorch_torchserve",
        "inputs": INPUTS,
        "outputs": OUTPUTS,
        "limits": custom.get("limits", {}),
        "parameters": custom.get("parameters", {}),
        "capacity": {"batch_size": described.get("batchSize", 1), "workers": workers},
    }


def add_routes(app: web.Application, management: str, session_key: web.AppKey) -> None:
    """The routes, ahead of the proxy's catch-all."""
    management = management.rstrip("/")

    async def read(request: web.Request) -> dict | None:
        session = request.app[session_key]
        return await describe(session, management, request.headers.get("Authorization"))

    async def live(request: web.Request) -> web.Response:
        return web.json_response({"live": True})

    async def server_ready(request: web.Request) -> web.Response:
        is_ready = ready(await read(request))
        return web.json_response({"ready": is_ready}, status=200 if is_ready else 503)

    async def model(request: web.Request) -> web.Response:
        if request.match_info["model"] != MODEL_NAME:
            return error_response(404, "unknown_model", f"this server serves {MODEL_NAME}")
        described = await read(request)
        if described is None:
            return error_response(503, "unavailable", "the model's description cannot be read now")
        if request.path.startswith("/v1/"):
            return web.json_response({"name": MODEL_NAME, "ready": ready(described)})
        if request.path.endswith("/ready"):
            is_ready = ready(described)
            return web.json_response(
                {"name": MODEL_NAME, "ready": is_ready}, status=200 if is_ready else 503
            )
        return web.json_response(metadata(described))

    app.router.add_get("/v2/health/live", live)
    app.router.add_get("/v2/health/ready", server_ready)
    app.router.add_get("/v2/models/{model}", model)
    app.router.add_get("/v2/models/{model}/ready", model)
    app.router.add_get("/v1/models/{model}", model)
