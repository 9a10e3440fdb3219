"""Errors the engine raises; each carries a stable code, the field at fault and a reason.

The engine knows nothing of HTTP: the server maps codes to statuses and writes the body.
"""

from __future__ import annotations

from typing import Any

ECHO_CHARS = 40  # at most this much of a client's text is quoted in an error or a log line
MESSAGE_CHARS = 1000  # an error message never grows past this, whatever it quotes


def quote(value: Any, limit: int = ECHO_CHARS) -> str:
    """``repr(value)`` cut to ``limit`` characters: how errors quote what a client sent."""
    return _cut(repr(value), limit)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


class NSTError(Exception):
    """An error a caller can act on: a stable ``code``, the ``field`` at fault, a message.

    ``field`` may be a name the client made up (an unknown parameter): it is cut to
    :data:`ECHO_CHARS`, and the message to :data:`MESSAGE_CHARS`, so an error never echoes a
    client's text at length.
    """

    code = "error"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None):
        message = _cut(message, MESSAGE_CHARS)
        super().__init__(message)
        self.message = message
        self.field = None if field is None else _cut(str(field), ECHO_CHARS)
        if code is not None:
            self.code = code


class InputError(NSTError, ValueError):
    """The input is not acceptable (the caller's to fix)."""

    code = "invalid_request"


class ParamError(InputError):
    """A parameter is missing, of the wrong type, or out of range."""

    code = "invalid_parameter"


class ImageError(InputError):
    """An input is not a decodable image (``code`` says why)."""

    code = "invalid_image"


class DeadlineExceeded(NSTError):
    """The work could not start, or finish preparing, before its deadline."""

    code = "deadline_exceeded"


class WeightsError(RuntimeError):
    """A weights file is missing, partial, or does not match VGG19's layout."""
