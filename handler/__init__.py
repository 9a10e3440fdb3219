"""TorchServe adapter for the ``nst`` engine: request parsing, responses, metrics.

``style_transfer_handler.py`` is the entry point TorchServe loads; everything else is
plain Python testable without a server.
"""
