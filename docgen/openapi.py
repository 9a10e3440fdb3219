"""The OpenAPI 3.1 contract of ``POST /predictions/style_transfer``, built from the server's
description (:meth:`ServerSettings.describe`: limits, defaults and every ``StyleParams``
range), so the contract cannot drift from what the handler accepts.

    python -m docgen                   # rewrites docs/openapi.yaml (make docs)
"""

from __future__ import annotations

from typing import Any

import yaml

from handler import MODEL_NAME
from handler.parsing import FALSE_WORDS, TRUE_WORDS
from handler.responses import JSON, NDJSON
from handler.settings import ServerSettings
from nst.layers import layer_indices
from nst.masks import palette_text
from nst.params import MAX_LIST
from nst.progress import STOP_REASONS

from . import ROOT

MODEL_CONFIG = ROOT / "nst_server/resources/model-config.yaml"
CONTRACT = ROOT / "docs" / "openapi.yaml"
HEADER = "# Generated from nst/params.py and model-config.yaml by `make docs`: do not edit.\n"

PATH = f"/predictions/{MODEL_NAME}"
KSERVE_V1 = f"/v1/models/{MODEL_NAME}:predict"
KSERVE_V2 = f"/v2/models/{MODEL_NAME}/infer"
IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp")
# A 16x16 gradient PNG, so that the contract's examples are requests that succeed.
EXAMPLE_PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAABAAAAAQCAIAAACQkWg2AAAAHUlEQVR42mNk"
    "YGgQYGAgHrEwCDCQBEY1jGoYOhoAHgoCnoxpJwYAAAAASUVORK5CYII="
)


def contract_text(model_config: dict[str, Any] | None = None) -> str:
    """docs/openapi.yaml's text for a model config (default: this project's)."""
    if model_config is None:
        model_config = yaml.safe_load(MODEL_CONFIG.read_text())
    settings = ServerSettings.from_model_config(model_config).for_device("cuda")  # GPU defaults
    spec = openapi(settings.describe())
    return HEADER + yaml.safe_dump(spec, sort_keys=False, width=100, allow_unicode=True)


def write_contract() -> None:
    """Rewrite docs/openapi.yaml."""
    CONTRACT.write_text(contract_text())


def openapi(description: dict[str, Any], server_url: str = "http://127.0.0.1:8080") -> dict:
    """The contract for a server described by ``description``."""
    params = description["parameters"]
    limits = description["limits"]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Style-transfer server",
            "version": "0.1.0",
            "description": (
                "Gatys neural style transfer served by TorchServe. Defaults and maxima are "
                "those of this project's model-config.yaml; a server's own are returned by "
                f"its management API: GET /models/{MODEL_NAME}?customized=true."
            ),
        },
        "servers": [{"url": server_url}],
        "paths": {
            PATH: {"post": _operation(params, limits["max_styles"])},
            KSERVE_V1: {"post": _kserve_v1(limits["max_styles"])},
            KSERVE_V2: {"post": _kserve_v2()},
            **_jobs_paths(params, limits["max_styles"]),
        },
        "components": {
            "schemas": {**_schemas(params), "Job": _job_schema()},
            "securitySchemes": _security(),
        },
    }


JOBS = "/v1/jobs"
JOBS_SERVER = [{"url": "http://127.0.0.1:8085", "description": "the async jobs API (nst-jobs)"}]
JOB_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")


def _jobs_paths(params: dict[str, Any], max_styles: int) -> dict[str, Any]:
    """The async jobs API's routes (its own port: path-level ``servers``)."""
    stylize = _operation(params, max_styles)
    error = {JSON: {"schema": {"$ref": "#/components/schemas/Error"}}}
    job = {JSON: {"schema": {"$ref": "#/components/schemas/Job"}}}
    job_id = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
    missing = {"description": "no such job for this key", "content": error}
    image = {"schema": {"type": "string", "format": "binary"}}
    security: list[dict[str, list[str]]] = [{}, {"apiKey": []}]
    return {
        JOBS: {
            "servers": JOBS_SERVER,
            "post": {
                "operationId": "submitJob",
                "summary": "Queue a stylisation and return at once",
                "description": "The body of the synchronous route (`stream` is ignored), "
                "checked by the same parser before it is queued.",
                "security": security,
                "parameters": [
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                        "description": "a retried submit with the same key and body returns "
                        "the same job",
                    }
                ],
                "requestBody": stylize["requestBody"],
                "responses": {
                    "202": {
                        "description": "the job (a new one, or the one the key names)",
                        "headers": {
                            "Location": _header("string", "the job's URL"),
                            "Idempotent-Replayed": _header(
                                "string", "`true` when the key named an earlier job"
                            ),
                        },
                        "content": job,
                    },
                    **{
                        code: {"description": text, "content": error}
                        for code, text in (
                            ("400", "a bad image, parameter or body (`field` names it)"),
                            ("401", "no API key or a wrong one, where keys are checked"),
                            ("413", "an image or the request is too large"),
                            ("422", "the Idempotency-Key was used for another body"),
                            ("429", "too many queued jobs for this key (Retry-After)"),
                        )
                    },
                },
            },
        },
        JOBS + "/{id}": {
            "servers": JOBS_SERVER,
            "get": {
                "operationId": "getJob",
                "summary": "A job's status, progress, queue position, error and result",
                "security": security,
                "parameters": [
                    job_id,
                    {
                        "name": "wait",
                        "in": "query",
                        "schema": {"type": "number", "minimum": 0, "maximum": 60},
                        "description": "hold the answer until the status or step changes, "
                        "at most this many seconds",
                    },
                ],
                "responses": {"200": {"description": "the job", "content": job}, "404": missing},
            },
            "delete": {
                "operationId": "cancelJob",
                "summary": "Cancel: a queued job never runs, a running one stops in a step",
                "security": security,
                "parameters": [job_id],
                "responses": {
                    "200": {"description": "the job, ended", "content": job},
                    "202": {"description": "the job, asked to stop", "content": job},
                    "404": missing,
                },
            },
        },
        JOBS + "/{id}/result": {
            "servers": JOBS_SERVER,
            "get": {
                "operationId": "getJobResult",
                "summary": "The image of a job that succeeded, or that was cancelled after a step",
                "security": security,
                "parameters": [job_id],
                "responses": {
                    "200": {
                        "description": "the image",
                        "headers": {
                            key: value
                            for key, value in _responses()["200"]["headers"].items()
                            if key in ("X-NST-Steps", "X-NST-Stopped")
                        },
                        "content": {mime: image for mime in IMAGE_TYPES},
                    },
                    "404": missing,
                    "409": {"description": "no image yet (or none: no step ran)", "content": error},
                },
            },
        },
        JOBS + "/{id}/preview": {
            "servers": JOBS_SERVER,
            "get": {
                "operationId": "getJobPreview",
                "summary": "The latest preview of a running job (with `preview_every`)",
                "security": security,
                "parameters": [job_id],
                "responses": {
                    "200": {"description": "a PNG", "content": {"image/png": image}},
                    "404": missing,
                    "409": {"description": "no preview now", "content": error},
                },
            },
        },
    }


def _job_schema() -> dict[str, Any]:
    time = {"type": ["string", "null"], "format": "date-time"}
    return {
        "type": "object",
        "required": ["id", "status", "created_at", "expires_at", "progress"],
        "properties": {
            "id": {"type": "string"},
            "status": {"type": "string", "enum": list(JOB_STATUSES)},
            "created_at": time,
            "started_at": time,
            "finished_at": time,
            "expires_at": time,
            "progress": {
                "type": "object",
                "properties": {
                    "step": {"type": "integer", "minimum": 0},
                    "steps": {"type": "integer", "minimum": 0},
                    "losses": {"type": ["object", "null"]},
                },
            },
            "queue_position": {"type": "integer", "minimum": 0, "description": "while queued"},
            "cancel_requested": {"type": "boolean"},
            "preview_url": {"type": "string"},
            "error": {
                "description": "when it failed: the synchronous API's error body and the "
                "HTTP status it had",
                "type": "object",
                "properties": {
                    "error": {"type": "string"},
                    "message": {"type": "string"},
                    "field": {"type": ["string", "null"]},
                    "status": {"type": "integer"},
                },
            },
            "result": {
                "description": "once there is an image",
                "type": "object",
                "required": ["url", "content_type"],
                "properties": {
                    "url": {"type": "string"},
                    "content_type": {"type": "string", "enum": list(IMAGE_TYPES)},
                    "steps_run": {"type": "integer", "minimum": 0},
                    "stopped": {"type": ["string", "null"], "enum": [*STOP_REASONS, None]},
                    "seconds": {"type": "number", "minimum": 0},
                    "width": {"type": "integer"},
                    "height": {"type": "integer"},
                },
            },
        },
    }


def _operation(params: dict[str, Any], max_styles: int) -> dict:
    return {
        "operationId": "stylize",
        "summary": "Stylise a content image with one or more style images",
        "description": (
            "Send multipart/form-data or JSON. The answer is the image (Accept: image/*, "
            "the default), its JSON form (Accept: application/json), or with stream=true "
            "NDJSON progress lines ending with the result."
        ),
        "security": [{}, {"apiKey": []}],
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": _multipart(params, max_styles),
                    "encoding": {
                        name: {"contentType": ", ".join(IMAGE_TYPES)}
                        for name in _image_fields(max_styles)
                    },
                },
                JSON: {"schema": _json_body(max_styles), "example": _json_example()},
            },
        },
        "responses": _responses(),
    }


def _kserve_error(text: str) -> dict[str, Any]:
    schema = {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string"}, "field": {"type": ["string", "null"]}},
    }
    return {"description": text, "content": {JSON: {"schema": schema}}}


def _kserve_v1(max_styles: int) -> dict[str, Any]:
    """KServe v1: instances of the JSON body (images also as {"b64": ...})."""
    prediction = {
        "type": "object",
        "description": "the image as {b64} and the run's figures (as the JSON answer's), "
        "or this instance's error (error, code, field, status)",
        "properties": {
            "image": {"type": "object", "properties": {"b64": {"type": "string"}}},
            "steps": {"type": "integer"},
            "error": {"type": "string"},
            "code": {"type": "string"},
            "field": {"type": ["string", "null"]},
            "status": {"type": "integer"},
        },
    }
    answer = {
        "type": "object",
        "required": ["predictions"],
        "properties": {"predictions": {"type": "array", "items": prediction}},
    }
    body = {
        "type": "object",
        "required": ["instances"],
        "properties": {
            "instances": {"type": "array", "minItems": 1, "items": _json_body(max_styles)}
        },
    }
    return _json_post(
        "kserveV1Predict",
        "KServe v1: each instance a job of its own",
        "An instance takes the JSON body's keys; images as base64 strings or "
        'KServe\'s {"b64": ...}. 200 unless every instance failed; streams are not offered.',
        body,
        {
            "200": {
                "description": "one prediction per instance",
                "content": {JSON: {"schema": answer}},
            },
            "4XX": {
                "description": "every instance failed, or the body is not v1",
                "content": {JSON: {"schema": answer}},
            },
        },
    )


def _json_post(
    operation_id: str, summary: str, description: str, body: dict, responses: dict
) -> dict[str, Any]:
    """An operation taking a JSON body, with the API's optional key."""
    return {
        "operationId": operation_id,
        "summary": summary,
        "description": description,
        "security": [{}, {"apiKey": []}],
        "requestBody": {"required": True, "content": {JSON: {"schema": body}}},
        "responses": responses,
    }


def _kserve_v2() -> dict[str, Any]:
    """The Open Inference Protocol: BYTES inputs of base64 image files."""
    tensor = {
        "type": "object",
        "required": ["name", "datatype", "shape", "data"],
        "properties": {
            "name": {"enum": ["content", "style", "mask", "init_image"]},
            "datatype": {"const": "BYTES"},
            "shape": {"type": "array", "items": {"type": "integer"}},
            "data": {"type": "array", "items": {"type": "string", "contentEncoding": "base64"}},
        },
    }
    output = {
        "type": "object",
        "properties": {
            "model_name": {"type": "string"},
            "id": {"type": "string"},
            "outputs": {"type": "array", "items": tensor},
            "parameters": {
                "type": "object",
                "description": "steps_run, stopped, seconds, width, height, content_type, loss_*",
            },
        },
    }
    body = {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "inputs": {"type": "array", "items": tensor},
            "parameters": {"type": "object"},
        },
    }
    return _json_post(
        "kserveV2Infer",
        "Open Inference Protocol (KServe v2): one job",
        "Inputs content and style (one element per style), optional mask and "
        "init_image; the API's parameters in `parameters`. Triton's binary tensor extension "
        "is accepted. The answer's output `image` is the base64 of the encoded image.",
        body,
        {
            "200": {"description": "the stylised image", "content": {JSON: {"schema": output}}},
            "4XX": _kserve_error("the request's error, as the protocol has it"),
        },
    )


def _image_fields(max_styles: int) -> list[str]:
    styles = ["style", *(f"style_{i}" for i in range(2, max_styles + 1))]
    return ["content", *styles, "init_image", "mask"]


def _param_schema(entry: dict[str, Any], form: bool) -> dict[str, Any]:
    """JSON Schema of one parameter; lists are comma-separated text in a form."""
    kind = entry["type"]
    schema: dict[str, Any] = {"description": entry["description"]}
    if kind in ("int", "float"):
        schema["type"] = "integer" if kind == "int" else "number"
        schema.update(minimum=entry["minimum"], maximum=entry["maximum"])
    elif kind == "str":
        schema.update(type="string", enum=entry["choices"])
    elif form:
        schema["type"] = "string"
        schema["description"] += " (comma-separated)"
    elif kind == "floats":
        schema.update(type="array", maxItems=MAX_LIST, items={"type": "number", "minimum": 0})
    else:  # layers
        schema.update(
            type="array",
            minItems=1,
            maxItems=MAX_LIST,
            items={"type": "string", "enum": sorted(layer_indices())},
        )
    default = entry["default"]
    if default != []:
        schema["default"] = ",".join(map(str, default)) if form and kind == "layers" else default
    return schema if form else _nullable(schema)


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON value that may also be null, meaning "not given" (the default applies)."""
    out = {**schema, "type": [schema["type"], "null"]}
    if "enum" in out:
        out["enum"] = [*out["enum"], None]
    return out


def _multipart(params: dict[str, Any], max_styles: int) -> dict[str, Any]:
    images = {
        name: {"type": "string", "format": "binary", "description": _image_text(name)}
        for name in _image_fields(max_styles)
    }
    return {
        "type": "object",
        "required": ["content", "style"],
        "properties": {
            **images,
            **{name: _param_schema(entry, form=True) for name, entry in params.items()},
            "stream": {
                "type": "string",
                "enum": [*TRUE_WORDS, *FALSE_WORDS],
                "default": "false",
                "description": _STREAM + " (any case)",
            },
        },
        "additionalProperties": False,
    }


def _json_body(max_styles: int) -> dict[str, Any]:
    b64 = {"type": "string", "contentEncoding": "base64"}
    return {
        "type": "object",
        "description": "Images in base64: standard or URL-safe, line breaks and a missing "
        "padding allowed, or a data: URL. An optional key set to null counts as not given.",
        "required": ["content", "style"],
        "properties": {
            "content": {**b64, "description": _image_text("content")},
            "style": {
                "description": f"the style image, or 1 to {max_styles} of them (base64)",
                "oneOf": [
                    b64,
                    {"type": "array", "minItems": 1, "maxItems": max_styles, "items": b64},
                ],
            },
            "init_image": _nullable({**b64, "description": _image_text("init_image")}),
            "mask": _nullable({**b64, "description": _image_text("mask")}),
            "params": {"oneOf": [{"$ref": "#/components/schemas/Params"}, {"type": "null"}]},
            "stream": _nullable({"type": "boolean", "default": False, "description": _STREAM}),
        },
        "additionalProperties": False,
    }


def _json_example() -> dict[str, Any]:
    return {
        "content": EXAMPLE_PNG,
        "style": EXAMPLE_PNG,
        "params": {"size": 32, "steps": 2},
    }


def _image_text(name: str) -> str:
    if name == "content":
        return "the content image (PNG, JPEG, WebP, GIF, BMP or TIFF)"
    if name == "init_image":
        return "starting image, used with init=image"
    if name == "mask":
        return f"region mask of the content's shape, by colour ({palette_text()})"
    return f"style image {name.removeprefix('style_') if '_' in name else 1}"


_STREAM = "stream NDJSON progress lines while the job runs, then the result line"


def _responses() -> dict[str, Any]:
    error = {JSON: {"schema": {"$ref": "#/components/schemas/Error"}}}
    headers = {
        "X-NST-Steps": _header("integer", "optimisation steps run"),
        "X-NST-Batch-Jobs": _header("integer", "jobs optimised together with this one"),
        "X-NST-Stopped": {
            "description": "why the job stopped before its steps (absent when it ran them all)",
            "schema": {"type": "string", "enum": list(STOP_REASONS)},
        },
        "x-request-id": _header("string", "TorchServe's id of the request (in the job's log line)"),
    }
    image = {"schema": {"type": "string", "format": "binary"}}
    return {
        "200": {
            "description": "the stylised image, its JSON form, or the NDJSON stream",
            "headers": headers,
            "content": {
                **{mime: image for mime in IMAGE_TYPES},
                JSON: {"schema": {"$ref": "#/components/schemas/Result"}},
                NDJSON: {"schema": {"$ref": "#/components/schemas/StreamLine"}},
            },
        },
        "400": {
            "description": "a bad image, parameter or body (`field` names it)",
            "content": error,
        },
        "401": {
            "description": "no API key or a wrong one, where keys are checked",
            "content": error,
        },
        "413": {"description": "an image, the request or the job is too large", "content": error},
        "500": {
            "description": "this job failed (`error_id` is in the server log)",
            "content": error,
        },
        "503": {
            "description": "the queue is full, or the worker's batch has no time left "
            "(retry after Retry-After seconds when given)",
            "headers": {"Retry-After": _header("integer", "seconds to wait")},
            "content": error,
        },
    }


def _header(kind: str, text: str) -> dict[str, Any]:
    return {"description": text, "schema": {"type": kind}}


def _schemas(params: dict[str, Any]) -> dict[str, Any]:
    losses = {
        "type": "object",
        "properties": {
            k: {"type": ["number", "null"]} for k in ("content", "style", "tv", "total")
        },
    }
    result = {
        "type": "object",
        "required": ["image", "content_type", "width", "height", "steps_run", "seconds"],
        "properties": {
            "image": {"type": "string", "contentEncoding": "base64"},
            "content_type": {"type": "string", "enum": list(IMAGE_TYPES)},
            "width": {"type": "integer", "minimum": 1},
            "height": {"type": "integer", "minimum": 1},
            "steps_run": {"type": "integer", "minimum": 0},
            "stopped": {"type": ["string", "null"], "enum": [*STOP_REASONS, None]},
            "seconds": {"type": "number", "minimum": 0},
            "losses": losses,
            "initial_losses": losses,
        },
    }
    return {
        "Params": {
            "type": "object",
            "description": "every parameter is optional; unknown names are a 400",
            "properties": {name: _param_schema(e, form=False) for name, e in params.items()},
            "additionalProperties": False,
        },
        "Result": result,
        "StreamLine": {
            "description": "one line of an NDJSON stream",
            "oneOf": [
                {
                    "type": "object",
                    "required": ["type", "step", "steps"],
                    "properties": {
                        "type": {"const": "progress"},
                        "step": {"type": "integer"},
                        "steps": {"type": "integer"},
                        "losses": losses,
                        "preview_png": {"type": "string", "contentEncoding": "base64"},
                    },
                },
                {
                    "allOf": [{"$ref": "#/components/schemas/Result"}],
                    "properties": {"type": {"const": "result"}},
                },
                {
                    "allOf": [{"$ref": "#/components/schemas/Error"}],
                    "properties": {"type": {"const": "error"}},
                },
            ],
        },
        "Error": {
            "description": "this server's error body, or TorchServe's own (queue full, "
            "request too large, worker died)",
            "anyOf": [
                {
                    "type": "object",
                    "required": ["error", "message"],
                    "properties": {
                        "error": {"type": "string", "description": "a stable error code"},
                        "message": {"type": "string"},
                        "field": {"type": ["string", "null"], "description": "the field at fault"},
                        "error_id": {"type": "string", "description": "500: id in the server log"},
                    },
                },
                {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {
                        "code": {"type": "integer"},
                        "type": {"type": "string"},
                        "message": {"type": "string"},
                    },
                },
            ],
        },
    }


def _security() -> dict[str, Any]:
    return {
        "apiKey": {
            "type": "http",
            "scheme": "bearer",
            "description": "where the server checks keys (the container image, Kubernetes); "
            "the local make serve checks none",
        }
    }
