"""TorchServe adapter for the ``nst`` engine: request parsing, responses, metrics.

``style_transfer_handler.py`` is the entry point TorchServe loads; everything else is
plain Python testable without a server.
"""

# The model's name in every route (/predictions/..., /v2/models/...) and in the archive's file
# name; the operator tools (nst_server) read it from here too.
MODEL_NAME = "style_transfer"


def error_json(code: str, message: str, field: str | None = None) -> dict[str, str | None]:
    """The JSON body of every refusal (the handler's, the jobs API's, the key proxy's): a
    stable code, a message and the field at fault (None: the request as a whole)."""
    return {"error": code, "message": message, "field": field}
