"""Bearer-key check for the Ingress, so unauthenticated uploads never reach TorchServe's queue.

    python scripts/auth_gate.py [--port 8090] [--keys /etc/nst/api-keys/api-keys]

Answers ``GET /check`` (any path) with 204 when the ``Authorization: Bearer KEY`` header names
one of the keys in the file (``NST_API_KEYS_FILE``, re-read when it changes, as the handler
does), else 401. ingress-nginx calls it before forwarding a request (``auth-url``,
deploy/k8s/ingress.yaml): the body is neither read here nor passed on when the key is wrong.
Runs as a sidecar of the server's pod; standard library plus handler/auth.py.

With ``--upstream URL`` it is the front door itself instead (:mod:`nst_server.key_proxy`): it
listens on the public port and forwards only requests with a current key to TorchServe, for
deployments with no Ingress in front (the container's entrypoint runs it so).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from handler.auth import KEYS_FILE_ENV, ApiKeys, Unauthorized

from . import add_version


def make_server(host: str, port: int, keys: ApiKeys) -> ThreadingHTTPServer:
    """An HTTP server answering 204 for a valid bearer key and 401 otherwise."""
    lock = threading.Lock()  # ApiKeys re-reads its file; one reader at a time

    class Check(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                with lock:
                    keys.check(headers)
            except Unauthorized:
                self.send_response(401)
                self.send_header("WWW-Authenticate", "Bearer")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(204)
            self.end_headers()

        do_HEAD = do_POST = do_GET  # noqa: N815 (http.server's naming)

        def log_message(self, *args) -> None:  # no access log: keys travel in headers
            pass

    return ThreadingHTTPServer((host, port), Check)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    add_version(parser)
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on")
    parser.add_argument("--port", type=int, default=8090, help="port to listen on")
    parser.add_argument(
        "--keys",
        type=Path,
        default=os.environ.get(KEYS_FILE_ENV),
        help=f"the API keys file, one key per line (${KEYS_FILE_ENV})",
    )
    parser.add_argument(
        "--upstream",
        help="forward requests with a valid key to this address (TorchServe's inference API) "
        "instead of answering /check",
    )
    parser.add_argument(
        "--management",
        default=os.environ.get("TS_MANAGEMENT_ADDRESS", "http://127.0.0.1:8081"),
        help="with --upstream: TorchServe's management API, from which the proxy answers "
        "KServe's metadata and readiness routes ($TS_MANAGEMENT_ADDRESS)",
    )
    args = parser.parse_args(argv)
    if not args.keys:
        parser.error(f"give --keys or set {KEYS_FILE_ENV}")
    keys = ApiKeys(args.keys)
    if not keys.current():
        parser.error(f"{args.keys} holds no keys")
    if args.upstream:
        from .key_proxy import serve

        print(f"key proxy on {args.host}:{args.port} -> {args.upstream}", flush=True)
        serve(args.host, args.port, args.upstream, keys, args.management)
        return 0
    server = make_server(args.host, args.port, keys)
    # PID 1 in its container ignores SIGTERM unless it handles it: stop at once (stateless).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"auth gate on {args.host}:{args.port}, keys from {args.keys}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
