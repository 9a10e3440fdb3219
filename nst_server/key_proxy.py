"""A front door that checks the bearer key before TorchServe reads a byte of the body.

    nst-auth-gate --upstream http://127.0.0.1:8079 --host 0.0.0.0 --port 8080 --keys FILE

TorchServe checks nothing before it queues a body: where no Ingress asks the auth gate first
(``docker run``, the KServe predictor), a keyless client could fill ``job_queue_size``. This
proxy sits on the public port instead: a request without a current key (``NST_API_KEYS_FILE``,
re-read when it changes) gets 401 at once, its body unread and the connection closed; a
request with one is streamed to TorchServe and its answer streamed back as it comes
(NDJSON progress included). ``/ping`` and CORS preflights pass without a key. The handler
checks the key again.
"""

from __future__ import annotations

import logging

from aiohttp import ClientError, ClientSession, ClientTimeout, web

from handler.auth import ApiKeys, Unauthorized

from .errors import error_response
from .model_routes import KEYLESS, add_routes

log = logging.getLogger(__name__)

KEYLESS_PATHS = ("/ping", *KEYLESS)  # health answers: no body, no model work
# Headers about one connection, not the request: never forwarded either way.
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "expect",
    "host",
}
CHUNK = 256 * 1024
UPSTREAM_KEY: web.AppKey[ClientSession] = web.AppKey("upstream", ClientSession)


def needs_key(request: web.BaseRequest) -> bool:
    return request.method != "OPTIONS" and request.path not in KEYLESS_PATHS


def refusal(keys: ApiKeys, request: web.BaseRequest) -> web.Response | None:
    """The 401 for a request without a current key (None when it may pass)."""
    if not needs_key(request):
        return None
    try:
        keys.check({k.lower(): v for k, v in request.headers.items()})
    except Unauthorized as error:
        response = error_response(
            401, error.code, error.message, error.field, **{"WWW-Authenticate": "Bearer"}
        )
        response.force_close()  # the body is never read: this connection cannot carry another
        return response
    return None


def forwarded_headers(request: web.BaseRequest) -> dict[str, str]:
    headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
    peer = request.remote or ""
    earlier = request.headers.get("X-Forwarded-For")
    headers["X-Forwarded-For"] = f"{earlier}, {peer}" if earlier else peer
    return headers


def make_app(
    upstream: str, keys: ApiKeys, read_timeout_s: float = 600.0, management: str | None = None
) -> web.Application:
    """The proxy: every path and method, checked, then streamed to ``upstream``; with
    ``management``, KServe's metadata and readiness routes answered from it."""
    upstream = upstream.rstrip("/")

    async def expect_continue(request: web.Request) -> None:
        # curl asks before sending a large body: only a request with a key is told to go on.
        if refusal(keys, request) is None and request.version >= (1, 1):
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    async def forward(request: web.Request) -> web.StreamResponse:
        session = request.app[UPSTREAM_KEY]
        body = request.content.iter_chunked(CHUNK) if request.body_exists else None
        try:
            async with session.request(
                request.method,
                upstream + request.rel_url.raw_path_qs,
                headers=forwarded_headers(request),
                data=body,
                allow_redirects=False,
                auto_decompress=False,
            ) as answer:
                response = web.StreamResponse(status=answer.status, reason=answer.reason)
                for name, value in answer.headers.items():
                    if name.lower() not in HOP_BY_HOP:
                        response.headers.add(name, value)
                await response.prepare(request)
                try:
                    async for chunk in answer.content.iter_any():
                        await response.write(chunk)
                    await response.write_eof()
                except ConnectionResetError:  # the client left mid-answer: nothing to tell it
                    log.info("client left before the end of the answer")
                return response
        except ClientError as error:
            log.warning("upstream %s failed: %s", upstream, type(error).__name__)
            return error_response(
                502, "upstream_unavailable", "the model server did not answer; retry later"
            )

    async def open_session(app: web.Application):
        timeout = ClientTimeout(total=None, sock_connect=10, sock_read=read_timeout_s)
        async with ClientSession(timeout=timeout, auto_decompress=False) as session:
            app[UPSTREAM_KEY] = session
            yield

    @web.middleware
    async def checked(request: web.Request, handler) -> web.StreamResponse:
        refused = refusal(keys, request)
        return refused if refused is not None else await handler(request)

    app = web.Application(client_max_size=0, middlewares=[checked])
    app.cleanup_ctx.append(open_session)
    if management:
        add_routes(app, management, UPSTREAM_KEY)
    app.router.add_route("*", "/{tail:.*}", forward, expect_handler=expect_continue)
    return app


def serve(host: str, port: int, upstream: str, keys: ApiKeys, management: str | None) -> None:
    """Run until SIGTERM or SIGINT (aiohttp stops cleanly on both)."""
    web.run_app(
        make_app(upstream, keys, management=management),
        host=host,
        port=port,
        access_log=None,
        print=None,
        lingering_time=0,  # a refused body is not read: close at once
        auto_decompress=False,  # bodies pass as sent, with their Content-Encoding
    )
