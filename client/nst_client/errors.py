"""Errors the client raises: each carries the HTTP status and the server's error code and field."""

from __future__ import annotations

from typing import Any


class NSTClientError(Exception):
    """Base class of every error :class:`~nst_client.Client` raises."""


class ConnectionFailed(NSTClientError):
    """The server could not be reached, or did not answer in time."""


class ServerError(NSTClientError):
    """The server answered with an error.

    ``status`` is the HTTP status, ``code`` the server's stable error code (e.g.
    ``invalid_parameter``, ``not_an_image``), ``field`` the request field at fault (or None).
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        request_id: str | None = None,
    ):
        super().__init__(f"{status} {code}: {message}" + (f" (field {field})" if field else ""))
        self.status, self.code, self.message = status, code, message
        self.field, self.request_id = field, request_id


class InvalidRequest(ServerError):
    """400 and other 4xx: a bad image, parameter or body. ``field`` names it."""


class Unauthorized(ServerError):
    """401: no API key, or a wrong one."""


class TooLarge(ServerError):
    """413: an image, the request or the job is too large for this server."""


class ServerBusy(ServerError):
    """503 after every retry: the queue was full or the worker had no time left."""


class InternalServerError(ServerError):
    """5xx other than 503: the server failed (``request_id`` finds it in the server's log)."""


class StreamFailed(ServerError):
    """A streamed job failed after its 200 status was sent (the stream's last line)."""


def error_class(status: int) -> type[ServerError]:
    """The exception class for an HTTP error status."""
    if status == 401:
        return Unauthorized
    if status == 413:
        return TooLarge
    if status == 503:
        return ServerBusy
    if status >= 500:
        return InternalServerError
    return InvalidRequest


def from_body(status: int, body: Any, request_id: str | None = None) -> ServerError:
    """The error for a reply: this server's ``{"error", "message", "field"}`` body, or
    TorchServe's own ``{"code", "type", "message"}`` (queue full, request too large)."""
    if not isinstance(body, dict):
        body = {"message": str(body)[:500] or f"HTTP {status}"}
    code = str(body.get("error") or body.get("type") or f"http_{status}")
    message = str(body.get("message") or code)
    field = body.get("field") if isinstance(body.get("field"), str) else None
    return error_class(status)(status, code, message, field, request_id)
