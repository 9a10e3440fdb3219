"""TorchServe adapter for the ``nst`` engine: request parsing, responses, metrics.

``style_transfer_handler.py`` is the entry point TorchServe loads; everything else is
plain Python testable without a server.
"""

# The model's name in every route (/predictions/..., /v2/models/...) and in the archive's file
# name; the operator tools (nst_server) read it from here too.
MODEL_NAME = "style_transfer"
