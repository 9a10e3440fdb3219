"""The JSON error answer of the server's aiohttp fronts (key proxy, model routes, jobs API),
in the same body as the handler's refusals (:func:`handler.error_json`)."""

from __future__ import annotations

from aiohttp import web

from handler import error_json


def error_response(
    status: int, code: str, message: str, field: str | None = None, **headers: str
) -> web.Response:
    """``status`` with the JSON body ``{"error": code, "message": ..., "field": ...}``."""
    return web.json_response(error_json(code, message, field), status=status, headers=headers)
