"""Errors the engine raises; each carries a stable code, the field at fault and a reason.

The engine knows nothing of HTTP: the server maps codes to statuses and writes the body.
"""

from __future__ import annotations


class NSTError(Exception):
    """An error a caller can act on: a stable ``code``, the ``field`` at fault, a message."""

    code = "error"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
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


class WeightsError(RuntimeError):
    """A weights file is missing, partial, or does not match VGG19's layout."""
