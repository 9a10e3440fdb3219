"""The try-it page: ``resources/web/``, the sample images and ``/config.json`` (where the API is).

    nst-web --address 127.0.0.1:8084 --inference http://127.0.0.1:8080 \
        [--jobs http://127.0.0.1:8085]

``nst-server start`` runs it beside TorchServe and turns on TorchServe's CORS for exactly
this page's origin, so the page calls the inference API from the browser; with ``--jobs``
the page submits through the async jobs API instead (its job survives a reload, and it can
be cancelled). It serves files
only (no request reaches TorchServe through it) and is meant for local use.
"""

from __future__ import annotations

import argparse
import json
import sys
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

from handler import MODEL_NAME

from . import RESOURCES, add_version

PAGE_DIR = RESOURCES / "web"
EXAMPLES_DIR = RESOURCES / "examples"
ADDRESS_ENV = "NST_WEB_ADDRESS"  # host:port of the page; empty: no page
DEFAULT_ADDRESS = "127.0.0.1:8084"


class PageHandler(SimpleHTTPRequestHandler):
    """Static files of ``web/``; ``/examples/NAME`` from ``examples/``; ``/config.json``.
    No folder is ever listed, and every answer carries headers that keep the page from being
    framed, sniffed or made to load scripts or call addresses other than its own and the API's.
    """

    inference = ""
    jobs = ""
    max_styles: int | None = None

    def do_GET(self) -> None:
        if self.path.split("?")[0] == "/config.json":
            config = {
                "inference": self.inference,
                "jobs": self.jobs,
                "model": MODEL_NAME,
                "max_styles": self.max_styles,  # the served model's limit (None: not known)
            }
            body = json.dumps(config).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()

    def end_headers(self) -> None:
        for name, value in security_headers(self.inference, self.jobs).items():
            self.send_header(name, value)
        super().end_headers()

    def list_directory(self, path):
        self.send_error(404, "Not found")
        return None

    def translate_path(self, path: str) -> str:
        clean = unquote(path.split("?")[0].split("#")[0])
        if clean.startswith("/examples/"):
            # Only the sample images themselves: a name of a file directly in examples/.
            sample = EXAMPLES_DIR / Path(clean).name
            inside = sample.resolve().parent == EXAMPLES_DIR.resolve()
            return str(sample) if inside and sample.is_file() else str(EXAMPLES_DIR / "missing")
        return super().translate_path(path)

    def log_message(self, format: str, *args: object) -> None:
        sys.stderr.write(f"web {self.address_string()} {format % args}\n")


def security_headers(inference: str, jobs: str = "") -> dict[str, str]:
    """Headers of every answer: a content security policy allowing this page's own files,
    previews as data/blob images and calls to the inference and jobs APIs only; no framing,
    no content-type sniffing, no referrer."""
    apis = " ".join(api for api in (inference, jobs) if api)
    policy = (
        "default-src 'none'; script-src 'self'; style-src 'self'; "
        f"img-src 'self' data: blob:; connect-src 'self' {apis}; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    return {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
    }


def origin(address: str) -> str:
    """The page's origin for CORS (``http://host:port``)."""
    return f"http://{address}"


def serve(address: str, inference: str, jobs: str = "", max_styles: int | None = None) -> None:
    """Serve the page until interrupted (``max_styles``: the served model's limit)."""
    host, _, port = address.rpartition(":")
    apis = {"inference": inference.rstrip("/"), "jobs": jobs.rstrip("/")}
    handler = type("Handler", (PageHandler,), {**apis, "max_styles": max_styles})
    server = ThreadingHTTPServer((host, int(port)), partial(handler, directory=str(PAGE_DIR)))
    with server:
        server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    add_version(parser)
    parser.add_argument("--address", default=DEFAULT_ADDRESS, help="host:port to listen on")
    parser.add_argument("--inference", required=True, help="the inference API's address")
    parser.add_argument("--jobs", default="", help="the async jobs API's address (none: unused)")
    parser.add_argument(
        "--max-styles",
        type=int,
        default=None,
        help="style images the served model takes (its max_styles; nst-server start passes "
        "it): the page offers that many slots; without it, slots are not capped and the "
        "server's answer names its limit",
    )
    args = parser.parse_args(argv)
    serve(args.address, args.inference, args.jobs, args.max_styles)
    return 0


if __name__ == "__main__":
    sys.exit(main())
