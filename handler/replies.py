"""One reply per request of a batch, whatever happens to the others.

:class:`Replies` owns the reply slot, status and headers of every request in a batch.
:meth:`Replies.guard` turns any exception raised while working on one request into that
request's error reply: 4xx (or 503 for a deadline) with the engine's JSON error for the
client's faults, 500 with an error id for ours, never the exception text. A request whose
NDJSON stream has started keeps its 200 and gets a last ``{"type": "error"}`` line instead.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from nst import NSTError

from .auth import Unauthorized
from .responses import JSON, ClientError, error_body, error_status, strict_json

log = logging.getLogger(__name__)


def client_request_id(headers: dict[str, str]) -> str:
    """The caller's own ``X-Request-Id`` for the log lines: printable ASCII only, at most
    128 characters; empty when none usable was sent."""
    raw = headers.get("x-request-id", "").strip()[:128]
    return raw if raw.isascii() and raw.isprintable() else ""


STREAM_NEXT = "ts_stream_next"  # TorchServe's "more chunks follow" header


class Replies:
    """Reply slots of one batch; :meth:`finish` never leaves one empty."""

    def __init__(
        self, context: Any, headers: list[dict[str, str]], metrics: Any, grpc: Iterable[int] = ()
    ):
        self.context, self.metrics, self.headers = context, metrics, headers
        self.grpc = set(grpc)  # requests that came through TorchServe's gRPC API
        self.bodies: list[bytes | None] = [None] * len(headers)
        # TorchServe's id of each request: its frontend sends it back as the reply's
        # ``X-Request-Id`` (replacing any other), so it is the ``request_id`` of the log
        # lines, the one a user quotes; the client's own goes beside it.
        ids = getattr(context, "request_ids", None)
        self.request_ids = [
            str(ids.get(i, i)) if isinstance(ids, dict) else str(i) for i in range(len(headers))
        ]
        self.client_ids = [client_request_id(h) for h in headers]
        self.streaming: set[int] = set()  # requests whose first NDJSON chunk went out
        self.sizes: dict[int, int] = {}  # the output size of each request that parsed
        self.started = time.monotonic()

    def done(self, i: int) -> bool:
        return self.bodies[i] is not None

    @contextmanager
    def guard(self, indices: int | list[int]) -> Iterator[None]:
        """Run a block for requests ``indices``; an exception becomes the error reply of
        each of them not answered yet (a reply, once made, is never replaced)."""
        indices = [indices] if isinstance(indices, int) else indices
        try:
            yield
        except (NSTError, Unauthorized) as exc:
            for i in indices:
                if not self.done(i):
                    self.error(i, exc)
        except Exception as exc:
            for i in indices:
                if not self.done(i):
                    self.internal(i, exc)

    def success(
        self,
        i: int,
        body: bytes,
        content_type: str,
        headers: dict[str, str],
        fields: dict[str, Any],
    ) -> None:
        """A 200 reply (``fields`` go to the job's log line)."""
        for name, value in headers.items():
            self.context.set_response_header(i, name, value)
        self._finish(i, 200, content_type, body, {"outcome": "ok", **fields})

    def error(self, i: int, exc: ClientError, retry_after: int | None = None) -> None:
        """The client's fault (or a deadline): 4xx/503 and the engine's JSON error."""
        status = error_status(exc)
        if status == 401:
            self.context.set_response_header(i, "WWW-Authenticate", "Bearer")
        if status == 503:
            self.context.set_response_header(i, "Retry-After", str(retry_after or 1))
        self._finish(
            i,
            status,
            JSON,
            json.dumps(error_body(exc)).encode(),
            {"outcome": _outcome(exc), "error": exc.code, "field": exc.field},
        )

    def internal(self, i: int, exc: BaseException, code: str = "internal_error") -> None:
        """Our fault: logged with an error id the client can quote; no exception text."""
        error_id = uuid.uuid4().hex[:12]
        log.error(
            "request %s: error %s",
            self.request_ids[i],
            error_id,
            exc_info=(type(exc), exc, exc.__traceback__),
            extra={"request_id": self.request_ids[i], "error_id": error_id},
        )
        body = {
            "error": code,
            "field": None,
            "error_id": error_id,
            "message": f"the server failed on this request (error id {error_id})",
        }
        self._finish(
            i,
            500,
            JSON,
            json.dumps(body).encode(),
            {"outcome": "error", "error": code, "error_id": error_id},
        )

    def _finish(
        self, i: int, status: int, content_type: str, body: bytes, fields: dict[str, Any]
    ) -> None:
        ctx = self.context
        if i in self.streaming:  # the 200 and NDJSON type went out with the first chunk
            if status != 200:
                error = json.loads(body)
                body = json.dumps({"type": "error", **error}).encode() + b"\n"
        else:
            ctx.set_response_status(status, _phrase(status), idx=i)
            ctx.set_response_content_type(i, content_type)
        if i in self.grpc:
            # TorchServe's StreamPredictions ends the call only on this header (it fails the
            # worker without it); Predictions ignores it. gRPC gets no per-request status, so
            # an error travels as its JSON body.
            ctx.set_response_header(i, STREAM_NEXT, "false")
        self.bodies[i] = body
        seconds = time.monotonic() - self.started
        self._log(i, status, seconds, fields)
        self._count(i, seconds, fields)

    def _log(self, i: int, status: int, seconds: float, fields: dict[str, Any]) -> None:
        line = {
            "event": "job",
            "request_id": self.request_ids[i],
            "client_request_id": self.client_ids[i] or None,
            "status": status,
            "size": self.sizes.get(i),
            "batch_requests": len(self.bodies),
            "seconds": round(seconds, 3),
            **fields,
        }
        log.info("%s", json.dumps(strict_json(line)))

    def _count(self, i: int, seconds: float, fields: dict[str, Any]) -> None:
        try:
            self.metrics.job_outcome(fields["outcome"])
            self.metrics.job_finished(
                fields["outcome"],
                self.sizes.get(i),
                seconds,
                fields.get("optimisation_seconds"),
                fields.get("steps_run"),
            )
        except Exception:
            log.warning("could not record a job outcome", exc_info=True)

    def finish(self) -> list[bytes]:
        """Every reply; a request nobody answered (a bug) gets a 500, not a lost batch."""
        for i, body in enumerate(self.bodies):
            if body is None:
                self.internal(i, RuntimeError("no reply was produced"))
        return [body or b"" for body in self.bodies]


def _outcome(exc: ClientError) -> str:
    return {
        "unauthorized": "unauthorized",
        "deadline_exceeded": "rejected",
        "worker_restarting": "rejected",
        "out_of_memory": "rejected",
    }.get(exc.code, "invalid")


def _phrase(status: int) -> str:
    return {
        200: "OK",
        400: "Bad Request",
        401: "Unauthorized",
        413: "Content Too Large",
        500: "Internal Server Error",
        503: "Service Unavailable",
    }.get(status, "Error")
