"""Where a request came from, told by what only that path carries.

TorchServe hands the handler three kinds of request through the same ``handle()`` call:

* HTTP inference requests (``/predictions``, ``/v1``, ``/v2``, ``/invocations``): the client's
  headers are forwarded, so a client can send any header, ``describe`` included;
* gRPC ``Predictions`` / ``StreamPredictions`` calls: the frontend turns no gRPC metadata into
  headers, so they arrive with no request header at all (the worker lists each input's own
  content type under the input's name, and TorchServe adds ``ts_*`` sequence headers), while
  every HTTP request that carries a body has at least ``Content-Length`` or
  ``Transfer-Encoding``;
* the management API's describe call (``GET /models/NAME?customized=true``, gRPC
  ``DescribeModel`` with ``customized``): a job the frontend always runs alone in its batch,
  with no input at all and its own ``describe: True`` header.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

FRONTEND_PREFIX = "ts_"  # headers TorchServe itself adds (sequence ids); never a client's


def is_describe_call(data: Sequence[Any], headers: Sequence[Mapping[str, str]]) -> bool:
    """True for the management API's describe call: alone, empty, ``describe: True``.

    A client sending ``describe: True`` on an inference request with an input gets that
    request answered as inference; only an empty request alone in its batch can look like
    the describe call, and it gets the same one reply (after the key check)."""
    if len(data) != 1 or len(headers) != 1:
        return False
    empty = not data[0] or (isinstance(data[0], Mapping) and not any(data[0].values()))
    return empty and headers[0].get("describe", "").lower() == "true"


def arrived_over_grpc(request: Any, headers: Mapping[str, str]) -> bool:
    """True for a request from TorchServe's gRPC API: no header but its inputs' own."""
    inputs = {str(k).lower() for k in request} if isinstance(request, Mapping) else set()
    return not any(
        name not in inputs and not name.startswith(FRONTEND_PREFIX) and name != "describe"
        for name in headers
    )
