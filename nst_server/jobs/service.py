"""The jobs API over HTTP (aiohttp), and the ``nst-jobs`` command.

POST   /v1/jobs               submit (the body of /predictions/style_transfer) -> 202
GET    /v1/jobs/{id}          status, progress, queue position, error (?wait=SECONDS)
GET    /v1/jobs/{id}/result   the image once there is one, else 409
DELETE /v1/jobs/{id}          cancel
GET    /metrics               the queue's Prometheus series
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import logging
import os
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis
from aiohttp import web

from handler.activity import STATE_DIR_ENV
from handler.auth import ApiKeys, Unauthorized
from handler.cancel import clear_stale, request_cancel
from handler.parsing import parse_request
from handler.responses import error_body, error_status
from handler.settings import ServerSettings
from nst import NSTError, check_layers_depth

from .. import RESOURCES, add_version, server_home
from ..errors import error_response
from ..mar import packed_depth, served_settings
from . import ADDRESS_ENV, DEFAULT_ADDRESS
from .bodies import read_submission, request_hash
from .metrics import JobMetrics
from .runner import Runners
from .store import ENDED, JobRecord, JobStore, SQLiteStore

log = logging.getLogger(__name__)
MAX_WAIT_S = 60.0  # longest ?wait= long-poll
MAX_BODY = 32 * 2**20  # as TorchServe's max_request_size in config.properties
IDEMPOTENCY_HEADER = "Idempotency-Key"
STORE_ERRORS = (sqlite3.Error, redis.RedisError)
SERVICE: web.AppKey[Service] = web.AppKey("service", object)  # type: ignore[arg-type]


class Service:
    """What the routes share: the store, the settings and weights' depth requests are
    checked against, the keys, the limits and the runners' wake-up."""

    def __init__(
        self,
        store: JobStore,
        settings: ServerSettings,
        keys: ApiKeys | None,
        max_queued: int,
        metrics: JobMetrics,
        runners: Runners | None = None,
        depth: int | None = None,
    ):
        self.store, self.settings, self.keys = store, settings, keys
        self.max_queued, self.metrics, self.runners = max_queued, metrics, runners
        self.depth = depth  # VGG19 layers the served weights cover (None: not known here)

    def owner(self, request: web.Request) -> str:
        """Who submits: a digest of the caller's key (all callers are one without keys)."""
        if self.keys is None:
            return ""
        key = self.keys.check({k.lower(): v for k, v in request.headers.items()})
        return hashlib.sha256(key).hexdigest()[:32]

    def job(self, request: web.Request) -> JobRecord:
        """The job the path names, if the caller's key submitted it (else 404)."""
        owner = self.owner(request)
        record = self.store.get(request.match_info["job_id"])
        if record is None or record.owner != owner:
            raise NotFound(f"no job {request.match_info['job_id']!r}")
        return record


class NotFound(Exception):
    code = "not_found"

    def __init__(self, message: str):
        super().__init__(message)
        self.message, self.field = message, None


@web.middleware
async def errors(request: web.Request, handler) -> web.StreamResponse:
    """Every refusal as the synchronous API's JSON error body."""
    try:
        return await handler(request)
    except Unauthorized as exc:
        return error_response(
            401, exc.code, exc.message, exc.field, **{"WWW-Authenticate": "Bearer"}
        )
    except NotFound as exc:
        return error_response(404, exc.code, exc.message)
    except NSTError as exc:
        return web.json_response(error_body(exc), status=error_status(exc))
    except web.HTTPRequestEntityTooLarge:
        return error_response(413, "request_too_large", f"the body is over {MAX_BODY} bytes")
    except web.HTTPException as exc:
        if exc.status >= 400:
            return error_response(exc.status, "http_error", exc.reason)
        raise
    except STORE_ERRORS:
        log.exception("%s %s: the store failed", request.method, request.path)
        return error_response(
            503, "jobs_unavailable", "the jobs store cannot be reached; retry shortly",
            **{"Retry-After": "5"},
        )  # fmt: skip
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        return error_response(500, "internal", "the jobs API failed on this request")


def iso(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds")


def view(service: Service, record: JobRecord) -> dict[str, Any]:
    """A job as the API shows it."""
    out: dict[str, Any] = {
        "id": record.id,
        "status": record.status,
        "created_at": iso(record.created),
        "started_at": iso(record.started),
        "finished_at": iso(record.finished),
        "expires_at": iso(record.expires),
        "progress": {"step": record.step, "steps": record.steps, "losses": record.losses},
    }
    if record.status == "queued":
        out["queue_position"] = service.store.queue_position(record)
    if record.status == "running" and record.cancel_requested:
        out["cancel_requested"] = True
    if record.has_preview:
        out["preview_url"] = f"/v1/jobs/{record.id}/preview"
    if record.error is not None:
        out["error"] = record.error
    if record.result_type is not None:
        out["result"] = {
            "url": f"/v1/jobs/{record.id}/result",
            "content_type": record.result_type,
            **(record.summary or {}),
        }
    return out


async def submit(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    owner = service.owner(request)
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is not None and not (0 < len(key) <= 255 and key.isascii() and key.isprintable()):
        return error_response(
            400, "bad_idempotency_key", "Idempotency-Key must be 1-255 printable ASCII"
        )
    as_torchserve, stored = await read_submission(request)
    digest = request_hash(stored)
    headers = {k.lower(): v for k, v in request.headers.items()}
    # The handler's own parser and layer check: the same 4xx, now, rather than when it runs.
    parsed = await asyncio.to_thread(parse_request, as_torchserve, headers, service.settings)
    if service.depth is not None:
        check_layers_depth(parsed.job.params, service.depth)
    fresh = key is None or service.store.find(owner, key) is None
    if fresh and service.store.queued_count(owner) >= service.max_queued:
        return error_response(
            429,
            "too_many_jobs",
            f"at most {service.max_queued} queued jobs per key; wait for some to start",
            **{"Retry-After": "10"},
        )
    record, created = service.store.submit(owner, stored, digest, key)
    if not created and record.request_hash != digest:
        return error_response(
            422,
            "idempotency_key_reused",
            "this Idempotency-Key was used for another request",
            "idempotency-key",
        )
    if created and service.runners is not None:
        service.runners.wake.set()
    extra = {} if created else {"Idempotent-Replayed": "true"}
    return web.json_response(
        view(service, record),
        status=202,
        headers={"Location": f"/v1/jobs/{record.id}", **extra},
    )


async def status(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    record = service.job(request)
    wait = _wait_seconds(request)
    deadline = time.monotonic() + wait
    seen = (record.status, record.step)
    while wait and record.status not in ENDED and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        current = service.store.get(record.id)
        if current is None:
            break
        record = current
        if (record.status, record.step) != seen:
            break
    return web.json_response(view(service, record))


def _wait_seconds(request: web.Request) -> float:
    raw = request.query.get("wait")
    if raw is None:
        return 0.0
    try:
        wait = float(raw)
    except ValueError:
        raise NSTError(f"wait must be a number of seconds, got {raw!r}", field="wait") from None
    if not 0 <= wait <= MAX_WAIT_S:
        raise NSTError(f"wait must be between 0 and {MAX_WAIT_S:g} seconds", field="wait")
    return wait


async def result(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    record = service.job(request)
    if record.result_type is None:
        return error_response(
            409,
            "no_result",
            f"job {record.id} is {record.status}: it has no image "
            + ("yet" if record.status not in ENDED else "(it ran no step)"),
        )
    body = service.store.result(record.id) or b""
    summary = record.summary or {}
    headers = {"X-NST-Steps": str(summary.get("steps_run", record.step))}
    if summary.get("stopped"):
        headers["X-NST-Stopped"] = str(summary["stopped"])
    return web.Response(body=body, content_type=record.result_type, headers=headers)


async def preview(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    record = service.job(request)
    body = service.store.preview(record.id) if record.has_preview else None
    if body is None:
        return error_response(409, "no_preview", f"job {record.id} has no preview now")
    return web.Response(body=body, content_type="image/png", headers={"Cache-Control": "no-store"})


async def cancel(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    before = service.job(request)
    record = service.store.cancel(before.id)
    assert record is not None
    if before.status == "queued" and record.status == "cancelled":
        service.metrics.cancelled_in_queue()
    return web.json_response(
        view(service, record), status=202 if record.status == "running" else 200
    )


async def metrics(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    body = service.metrics.exposition(service.store.counts())
    return web.Response(body=body, content_type="text/plain", charset="utf-8")


async def ping(request: web.Request) -> web.Response:
    return web.json_response({"status": "Healthy"})


def cors(origin: str | None):
    """Allow the try-it page's origin (none: no CORS headers)."""

    @web.middleware
    async def middleware(request: web.Request, handler) -> web.StreamResponse:
        if origin and request.method == "OPTIONS":
            response: web.StreamResponse = web.Response(status=204)
        else:
            response = await handler(request)
        if origin:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Allow-Methods"] = "GET, POST, DELETE, OPTIONS"
            response.headers["Access-Control-Allow-Headers"] = (
                "Content-Type, Authorization, Idempotency-Key, X-Request-Id"
            )
            response.headers["Access-Control-Expose-Headers"] = (
                "Location, X-NST-Steps, X-NST-Stopped"
            )
        return response

    return middleware


def make_app(service: Service, cors_origin: str | None = None) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY, middlewares=[cors(cors_origin), errors])
    app[SERVICE] = service
    app.router.add_post("/v1/jobs", submit)
    app.router.add_get("/v1/jobs/{job_id}", status)
    app.router.add_get("/v1/jobs/{job_id}/result", result)
    app.router.add_get("/v1/jobs/{job_id}/preview", preview)
    app.router.add_delete("/v1/jobs/{job_id}", cancel)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/ping", ping)
    return app


def server_settings(model_config: Path) -> ServerSettings:
    """The handler's settings from ``model_config`` (a model-config.yaml, or the model
    archive that packs one), for the device this machine offers (the pod's workers see the
    same devices)."""
    return served_settings(model_config).for_device(worker_device())


# Asked in a child process: this service never holds torch (about 0.5 GB resident).
DEVICE_PROBE = "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')"


def worker_device() -> str:
    """ "cuda" where torch in this environment sees a GPU, as the pod's workers will, else
    "cpu"; SystemExit when torch cannot tell (the workers could not start either)."""
    probe = subprocess.run(
        [sys.executable, "-c", DEVICE_PROBE], capture_output=True, text=True, timeout=300
    )
    answer = probe.stdout.strip()
    if probe.returncode != 0 or answer not in ("cuda", "cpu"):
        raise SystemExit(f"nst-jobs: cannot tell the workers' device: {probe.stderr.strip()}")
    return answer


async def maintain(store: JobStore, state_dir: Path, every_s: float = 5.0) -> None:
    """Now and then: drop expired jobs, fail the running jobs whose runner stopped (with
    Redis, a replica that died), asking this pod's workers to stop them too, and remove
    cancel markers older than a job's record lives (no runner is left to clear those)."""
    while True:
        try:
            if removed := store.expire():
                log.info("expired %d jobs", removed)
            for job_id in store.reap():
                log.warning("job %s: its replica stopped; failed", job_id)
                request_cancel(state_dir, job_id)
            clear_stale(state_dir, store.ttl_s)
        except Exception:
            log.exception("could not maintain the jobs store")
        await asyncio.sleep(every_s)


def open_store(where: str, ttl_s: float, lease_s: float) -> JobStore:
    """``redis://...`` (several replicas), else the path of an SQLite file (one)."""
    if where.startswith(("redis://", "rediss://", "unix://")):
        from .redis_store import RedisStore

        while True:  # Redis may come up after this pod: wait for it
            try:
                return RedisStore(where, ttl_s, lease_s)
            except redis.ConnectionError as exc:
                log.warning("waiting for the jobs store at %s: %s", where, exc)
                time.sleep(2)
    return SQLiteStore(where, ttl_s)


def with_background(app: web.Application, runners: Runners, store: JobStore) -> None:
    """Run the runners and the expiry while the app serves."""

    async def background(app: web.Application):
        tasks = [
            asyncio.create_task(runners.run()),
            asyncio.create_task(maintain(store, runners.state_dir)),
        ]
        yield
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app.cleanup_ctx.append(background)


def parser() -> argparse.ArgumentParser:
    home = server_home()
    p = argparse.ArgumentParser(
        prog="nst-jobs",
        description="The async jobs API beside a TorchServe serving style_transfer.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--address",
        default=os.environ.get(ADDRESS_ENV) or DEFAULT_ADDRESS,
        help=f"host:port to listen on (${ADDRESS_ENV})",
    )
    p.add_argument(
        "--inference",
        default="http://127.0.0.1:8080",
        help="TorchServe's inference API, where jobs run",
    )
    p.add_argument(
        "--store",
        default=str(home / ".run" / "jobs.sqlite3"),
        help="the jobs' SQLite file (one service), or redis://host:port/db (several replicas "
        "sharing one Redis)",
    )
    p.add_argument(
        "--lease",
        type=float,
        default=30.0,
        help="with Redis: seconds after which a running job whose replica stopped renewing it "
        "is failed",
    )
    p.add_argument(
        "--state-dir",
        type=Path,
        default=Path(os.environ.get(STATE_DIR_ENV) or home / ".run" / "state"),
        help=f"the workers' state folder, for cancel markers (${STATE_DIR_ENV})",
    )
    p.add_argument(
        "--model-config",
        type=Path,
        default=RESOURCES / "model-config.yaml",
        help="the model's settings, whose limits a submit is checked against: a "
        "model-config.yaml, or the model archive (.mar) that packs it",
    )
    p.add_argument(
        "--ttl",
        type=float,
        default=3600.0,
        help="seconds a job and its result are kept after it ends",
    )
    p.add_argument("--max-queued", type=int, default=20, help="queued jobs allowed per key")
    p.add_argument(
        "--runners",
        type=int,
        default=4,
        help="jobs sent to TorchServe at once (about its batch size)",
    )
    p.add_argument(
        "--cors-origin",
        default=None,
        help="the try-it page's origin, allowed to call this API from a browser",
    )
    add_version(p)
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    keys = ApiKeys.from_env()
    store = open_store(args.store, args.ttl, args.lease)
    interrupted = store.fail_interrupted()
    if interrupted:
        log.warning("%d jobs were running when the service stopped: failed", len(interrupted))
    metrics = JobMetrics()
    key = keys.current()[0].decode() if keys is not None else None
    runners = Runners(store, args.inference, args.state_dir, args.runners, metrics, key)
    settings, depth = server_settings(args.model_config), packed_depth(args.model_config)
    service = Service(store, settings, keys, args.max_queued, metrics, runners, depth)
    app = make_app(service, args.cors_origin)
    with_background(app, runners, store)
    host, _, port = args.address.rpartition(":")
    print(f"jobs API on http://{host}:{port}/v1/jobs -> {args.inference}", flush=True)
    web.run_app(app, host=host, port=int(port), print=None, access_log=None)


if __name__ == "__main__":
    main()
