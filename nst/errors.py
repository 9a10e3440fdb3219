"""Errors the engine raises for bad input; each names the offending field."""

from __future__ import annotations


class NSTError(ValueError):
    """A user-facing error: a stable ``code``, the ``field`` at fault and a message."""

    code = "invalid_request"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        if code is not None:
            self.code = code

    def to_dict(self) -> dict[str, str | None]:
        """The JSON error body the server returns."""
        return {"error": self.code, "message": self.message, "field": self.field}


class ParamError(NSTError):
    """A parameter is missing, of the wrong type, or out of range."""

    code = "invalid_parameter"


class ImageError(NSTError):
    """An input is not a decodable image (``code`` says why)."""

    code = "invalid_image"


class WeightsError(RuntimeError):
    """A weights file is missing, partial, or does not match VGG19's layout."""
