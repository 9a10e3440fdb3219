"""KServe's protocols on TorchServe's KServe routes, mapped onto the JSON API.

* **v1** (``POST /v1/models/style_transfer:predict``): ``{"instances": [INSTANCE, ...]}``,
  each instance a JSON API body (``content``, ``style`` (one or a list), ``mask``,
  ``init_image``, ``params``) whose images may also be KServe's ``{"b64": "..."}`` objects.
  Each instance is its own job; the answer is ``{"predictions": [...]}`` in their order, a
  bad instance's entry being its error, and the status 200 unless every instance failed.
* **v2**, the Open Inference Protocol (``POST /v2/models/style_transfer/infer``): inputs
  ``content``, ``style`` (one element per style), ``mask``, ``init_image``, datatype
  ``BYTES``, data the base64 text of the image files (JSON, or the binary tensor extension
  that Triton's clients use by default); the API's parameters in ``parameters``. The answer
  has the output ``image`` (``BYTES``, shape ``[1]``, base64 of the encoded image) and the
  run's figures in ``parameters``; an error is ``{"error": MESSAGE}`` with its 4xx status.

A batch holding such requests is expanded into one request per job (:class:`Expansion`),
answered through the usual path, and folded back (:meth:`Expansion.fold`).
"""

from __future__ import annotations

import base64
import json
import struct
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nst import InputError, NSTError, quote

from . import MODEL_NAME
from .responses import JSON

V1, V2 = "v1", "v2"
# The inputs, and whether one takes several elements (one per style).
V2_INPUTS = {"content": False, "style": True, "mask": False, "init_image": False}
# Request parameters Triton's clients add for themselves: not the API's.
CLIENT_PARAMETERS = ("binary_data_output", "binary_data", "binary_data_size")
BINARY_HEADER = "inference-header-content-length"


@dataclass
class Expansion:
    """A batch with one request per job: KServe requests unfolded, the others as they are."""

    requests: list[Any] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    owners: list[int] = field(default_factory=list)  # the batch request each one came from
    protocols: dict[int, str] = field(default_factory=dict)  # batch index -> v1 / v2
    refused: dict[int, NSTError] = field(default_factory=dict)  # expanded index -> error
    whole: set[int] = field(default_factory=set)  # batch indices refused as a whole
    ids: dict[int, Any] = field(default_factory=dict)  # a v2 request's own "id"

    def add(self, owner: int, request: Any, headers: dict[str, str]) -> int:
        self.requests.append(request)
        self.headers.append(headers)
        self.owners.append(owner)
        return len(self.requests) - 1

    def fold(self, bodies: list[bytes], answers: Recorder, context: Any, count: int) -> list:
        """The batch's replies, one per original request, written to ``context``."""
        members: dict[int, list[int]] = defaultdict(list)
        for index, owner in enumerate(self.owners):
            members[owner].append(index)
        replies: list[bytes] = []
        for owner in range(count):
            indices = members[owner]
            protocol = self.protocols.get(owner)
            if protocol is None:
                (index,) = indices
                answers.copy(index, owner, context)
                replies.append(bodies[index])
                continue
            entries = [answers.entry(i, bodies[i]) for i in indices]
            if owner in self.whole:
                status, body = entries[0][0], _error(entries[0][1])
            elif protocol == V2:
                status, body = _v2_answer(entries[0], self.ids.get(owner))
            else:
                status, body = _predictions(entries)
            # Status and headers (Retry-After, WWW-Authenticate) of the first job whose
            # outcome is the answer's: a success's for a 200, else the failure's.
            source = next(i for i, e in zip(indices, entries) if (e[0] == 200) == (status == 200))
            answers.copy(source, owner, context, content_type=JSON)
            replies.append(json.dumps(body).encode())
        return replies


class Recorder:
    """Stands in for TorchServe's context while the expanded batch is answered: statuses,
    content types and headers are kept per expanded request, then folded onto the real one."""

    def __init__(self, context: Any, expansion: Expansion):
        self._context = context
        real = getattr(context, "request_ids", None)
        real = real if isinstance(real, dict) else {}
        # A v1 instance's id is its request's, followed by ":N" (its place in ``instances``).
        jobs = Counter(expansion.owners)
        seen: dict[int, int] = defaultdict(int)
        self.request_ids: dict[int, str] = {}
        for index, owner in enumerate(expansion.owners):
            base = str(real.get(owner, owner))
            self.request_ids[index] = f"{base}:{seen[owner]}" if jobs[owner] > 1 else base
            seen[owner] += 1
        self.status: dict[int, int] = {}
        self.content_type: dict[int, str] = {}
        self.headers: dict[int, dict[str, str]] = defaultdict(dict)

    def __getattr__(self, name: str) -> Any:  # metrics, manifest, system_properties ...
        return getattr(self._context, name)

    def set_response_status(self, code: int = 200, phrase: str = "", idx: int = 0) -> None:
        self.status[idx] = code

    def set_response_content_type(self, idx: int, value: str) -> None:
        self.content_type[idx] = value

    def set_response_header(self, idx: int, key: str, value: str) -> None:
        self.headers[idx][key] = value

    def entry(self, index: int, body: bytes) -> tuple[int, dict]:
        """(status, JSON answer) of one expanded request."""
        try:
            answer = json.loads(body)
        except ValueError:
            answer = {"error": "internal_error", "message": "the answer was not JSON"}
        return self.status.get(index, 200), answer if isinstance(answer, dict) else {}

    def copy(self, index: int, owner: int, context: Any, content_type: str | None = None) -> None:
        """Status, content type and headers of expanded request ``index`` onto ``owner``."""
        context.set_response_status(self.status.get(index, 200), "", idx=owner)
        if content_type or index in self.content_type:
            context.set_response_content_type(owner, content_type or self.content_type[index])
        for key, value in self.headers[index].items():
            context.set_response_header(owner, key, value)


def expand(data: list, headers: list[dict[str, str]]) -> Expansion | None:
    """The batch unfolded into one request per job, or None when it holds no KServe body."""
    bodies = [_kserve_body(request) for request in data]
    if all(body is None for body in bodies):
        return None
    expansion = Expansion()
    for owner, (request, body) in enumerate(zip(data, bodies)):
        if body is None:
            expansion.add(owner, request, headers[owner])
            continue
        json_headers = {**headers[owner], "accept": JSON}  # answers folded from JSON
        protocol = V1 if "instances" in body else V2
        expansion.protocols[owner] = protocol
        try:
            if protocol == V1:
                jobs = _v1_jobs(body)
            else:
                expansion.ids[owner] = body.get("id")
                jobs = [_v2_job(body, _binary(request, headers[owner], body))]
        except NSTError as exc:
            expansion.whole.add(owner)
            expansion.refused[expansion.add(owner, {"body": {}}, json_headers)] = exc
            continue
        for job in jobs:
            index = expansion.add(owner, {"body": job}, json_headers)
            if isinstance(job, dict) and job.get("stream"):
                expansion.refused[index] = InputError(
                    "stream is not available through KServe's protocols: use "
                    f"/predictions/{MODEL_NAME}",
                    field="stream",
                )
    return expansion


def _kserve_body(request: Any) -> dict | None:
    """The parsed body of a v1 (``instances``) or v2 (``inputs``) request, else None."""
    if not isinstance(request, Mapping) or set(request) != {"body"}:
        return None
    body = request["body"]
    if isinstance(body, bytes | bytearray):
        text = bytes(body)
        if text.lstrip()[:1] != b"{":
            return None
        try:  # the binary extension: a JSON header, then the tensors' bytes
            body = json.JSONDecoder().raw_decode(text.decode("utf-8", "replace").lstrip())[0]
        except ValueError:
            return None
    if isinstance(body, dict) and ("instances" in body or "inputs" in body):
        return body
    return None


def _v1_jobs(body: dict) -> list[Any]:
    instances = body["instances"]
    if not isinstance(instances, list) or not instances:
        raise InputError("'instances' must be a non-empty list", field="instances")
    return [_v1_instance(instance) for instance in instances]


def _v1_instance(instance: Any) -> Any:
    """A v1 instance as a JSON API body: KServe's ``{"b64": ...}`` images become strings."""
    if not isinstance(instance, dict):
        return instance  # refused as a body that is not an object, in its own entry
    return {key: _unwrap(value) if key in V2_INPUTS else value for key, value in instance.items()}


def _unwrap(value: Any) -> Any:
    if isinstance(value, list):
        return [_unwrap(item) for item in value]
    if isinstance(value, dict) and set(value) == {"b64"}:
        return value["b64"]
    return value


def _binary(request: Mapping, headers: Mapping[str, str], body: dict) -> bytes:
    """The binary tensor data after a v2 request's JSON header (empty without one)."""
    length = headers.get(BINARY_HEADER, "").strip()
    raw = request["body"]
    if not length or not isinstance(raw, bytes | bytearray):
        return b""
    if not length.isdigit() or int(length) > len(raw):
        raise InputError(f"{BINARY_HEADER} {quote(length)} does not fit the body", field="body")
    return bytes(raw[int(length) :])


def _v2_job(body: dict, binary: bytes) -> dict:
    """An Open Inference Protocol request as a JSON API body."""
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InputError("'inputs' must be a non-empty list", field="inputs")
    job: dict[str, Any] = {}
    offset = 0
    for tensor in inputs:
        name = tensor.get("name") if isinstance(tensor, dict) else None
        if name not in V2_INPUTS:
            raise InputError(
                f"unknown input {quote(name)}; inputs: {', '.join(V2_INPUTS)}", field="inputs"
            )
        if tensor.get("datatype") != "BYTES":
            raise InputError(f"input {name} must have datatype BYTES", field=name)
        elements, offset = _elements(tensor, binary, offset)
        if not elements or (len(elements) > 1 and not V2_INPUTS[name]):
            raise InputError(f"input {name} takes one element, got {len(elements)}", field=name)
        job[name] = elements if V2_INPUTS[name] else elements[0]
    parameters = body.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise InputError("'parameters' must be an object", field="parameters")
    params = {k: v for k, v in parameters.items() if k not in CLIENT_PARAMETERS}
    if "stream" in params:
        job["stream"] = params.pop("stream")
    if params:
        job["params"] = params
    return job


def _elements(tensor: dict, binary: bytes, offset: int) -> tuple[list[str], int]:
    """A BYTES tensor's elements as base64 text, from its JSON ``data`` or its share of the
    binary data (each element: a 4-byte little-endian length, then its bytes)."""
    size = (tensor.get("parameters") or {}).get("binary_data_size")
    if size is None:
        data = tensor.get("data")
        flat = _flatten(data) if isinstance(data, list) else None
        if flat is None or not all(isinstance(item, str) for item in flat):
            raise InputError(
                f"input {tensor['name']}: data must be a list of base64 strings",
                field=tensor["name"],
            )
        return flat, offset
    chunk, elements, at = binary[offset : offset + int(size)], [], 0
    while at + 4 <= len(chunk):
        (length,) = struct.unpack_from("<I", chunk, at)
        elements.append(_as_base64(chunk[at + 4 : at + 4 + length]))
        at += 4 + length
    return elements, offset + int(size)


def _as_base64(element: bytes) -> str:
    """An element's base64 text: the element itself when it is base64 text, else (raw image
    bytes) its encoding."""
    try:
        text = element.decode("ascii")
        base64.b64decode(text, validate=True)
        return text
    except (UnicodeDecodeError, ValueError):
        return base64.b64encode(element).decode("ascii")


def _flatten(data: list) -> list:
    """The leaves of a nested list, in order (a tensor's data may come shaped)."""
    leaves = []
    for item in data:
        leaves.extend(_flatten(item) if isinstance(item, list) else [item])
    return leaves


def _prediction(status: int, answer: dict) -> dict:
    """One v1 prediction: the image as KServe's ``{"b64": ...}`` and the run's figures, or
    the instance's error."""
    if status != 200:
        return {
            "error": answer.get("message", "failed"),
            "code": answer.get("error"),
            "field": answer.get("field"),
            "status": status,
        }
    answer = dict(answer)
    image = answer.pop("image", "")
    return {"image": {"b64": image}, "steps": answer.get("steps_run"), **answer}


def _predictions(entries: list[tuple[int, dict]]) -> tuple[int, dict]:
    """The v1 answer: 200 unless every instance failed (then the first failure's status)."""
    body = {"predictions": [_prediction(status, answer) for status, answer in entries]}
    statuses = [status for status, _ in entries]
    return (200 if 200 in statuses else statuses[0]), body


def _scalars(answer: dict) -> dict:
    """The run's figures as OIP parameters: scalars only (``losses`` flattened to
    ``loss_content`` ...), nulls left out."""
    figures = {k: v for k, v in answer.items() if isinstance(v, str | int | float | bool)}
    for name, value in (answer.get("losses") or {}).items():
        if isinstance(value, int | float):
            figures[f"loss_{name}"] = value
    return figures


def _error(answer: dict) -> dict:
    """A request's error as KServe's protocols have it: ``{"error": MESSAGE, "field"}``."""
    return {"error": answer.get("message", "failed"), "field": answer.get("field")}


def _v2_answer(entry: tuple[int, dict], request_id: Any) -> tuple[int, dict]:
    """The Open Inference Protocol answer of one job: its image as the output, or its error."""
    status, answer = entry
    if status != 200:
        return status, _error(answer)
    answer = dict(answer)
    image = answer.pop("image", "")
    out: dict[str, Any] = {
        "model_name": MODEL_NAME,
        "outputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": [image]}],
        "parameters": _scalars(answer),
    }
    if request_id is not None:
        out["id"] = request_id
    return status, out
