"""Runners: take queued jobs and run each through the pod's TorchServe in streaming mode.

A runner sends the stored request with ``stream: true`` and ``X-NST-Job-Id``, records each
progress line, and keeps the final image (or the error) in the store. While a job runs it
watches the store for a cancel request and then writes the job's cancel marker, which the
handler sees between two steps (:mod:`handler.cancel`). A 503 (the server had no time for
it) puts the job back in the queue for after ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import time
from pathlib import Path
from typing import Any

from aiohttp import ClientError, ClientSession, ClientTimeout

from handler import MODEL_NAME, error_json
from handler.cancel import JOB_ID_HEADER, clear_cancel, request_cancel

from .bodies import forward_body
from .metrics import JobMetrics
from .store import JobRecord, JobStore

log = logging.getLogger(__name__)
POLL_S = 0.25  # how often an idle runner looks for work and a busy one for a cancel
HEARTBEAT_POLLS = 8  # polls between two renewals of a running job's lease (2 s)
MAX_ATTEMPTS = 5  # a job refused this many times with 503 fails
UPSTREAM_TIMEOUT_S = 3600.0  # no job streams longer (the server's own deadline is shorter)


class Runners:
    """``count`` runners sharing one store and one HTTP session to TorchServe."""

    def __init__(
        self,
        store: JobStore,
        inference: str,
        state_dir: Path,
        count: int,
        metrics: JobMetrics,
        key: str | None = None,
    ):
        self.store, self.inference, self.state_dir = store, inference.rstrip("/"), state_dir
        self.count, self.metrics, self.key = count, metrics, key
        self.wake = asyncio.Event()
        self.session: ClientSession | None = None

    async def run(self) -> None:
        """Run until cancelled."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        timeout = ClientTimeout(total=UPSTREAM_TIMEOUT_S, sock_connect=10)
        async with ClientSession(timeout=timeout) as session:
            self.session = session
            await asyncio.gather(*(self._loop() for _ in range(self.count)))

    async def _loop(self) -> None:
        while True:
            try:
                record = self.store.claim()
            except Exception:
                log.exception("could not claim a job (the store is down?)")
                await asyncio.sleep(2)
                continue
            if record is None:
                self.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), POLL_S)
                continue
            self.metrics.started(record)
            try:
                await self._execute(record)
            except Exception:
                log.exception("job %s: runner failed", record.id)
                self.store.finish(
                    record.id, "failed", error=error_json("internal", "runner failed")
                )
            finally:
                clear_cancel(self.state_dir, record.id)
                ended = self.store.get(record.id)
                if ended is not None and ended.status != "queued":
                    self.metrics.ended(ended)

    async def _execute(self, record: JobRecord) -> None:
        assert self.session is not None and record.request is not None
        body, content_type = forward_body(record.request)
        headers = {JOB_ID_HEADER: record.id, "X-Request-Id": record.id}
        if content_type:
            headers["Content-Type"] = content_type
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        url = f"{self.inference}/predictions/{MODEL_NAME}"
        watcher = asyncio.create_task(self._watch_cancel(record.id))
        try:
            async with self.session.post(url, data=body, headers=headers) as reply:
                if reply.status != 200:
                    await self._refused(record, reply.status, await reply.read(), reply.headers)
                    return
                async for line in reply.content:
                    if line.strip():
                        self._line(record, json.loads(line))
        except (ClientError, TimeoutError, ValueError) as exc:
            log.warning("job %s: upstream failed: %s", record.id, exc)
            self.store.finish(
                record.id,
                "failed",
                error=error_json("upstream_failed", f"the server failed: {exc}"),
            )
            return
        finally:
            watcher.cancel()
        current = self.store.get(record.id)
        if current is not None and current.status == "running":  # the stream ended early
            self.store.finish(
                record.id,
                "failed",
                error=error_json("upstream_failed", "the server's stream ended without a result"),
            )

    def _line(self, record: JobRecord, line: dict[str, Any]) -> None:
        kind = line.get("type")
        if kind == "progress":
            preview = line.get("preview_png")
            self.store.progress(
                record.id,
                line["step"],
                line["steps"],
                line.get("losses") or {},
                base64.b64decode(preview) if preview else None,
            )
        elif kind == "result":
            image = base64.b64decode(line.pop("image"))
            content_type = line.pop("content_type")
            line.pop("type")
            status = "cancelled" if line.get("stopped") == "cancelled" else "succeeded"
            self.store.finish(
                record.id, status, result=image, result_type=content_type, summary=line
            )
        elif kind == "error":
            line.pop("type")
            self.store.finish(record.id, "failed", error=line)

    async def _refused(self, record: JobRecord, status: int, body: bytes, headers) -> None:
        """A non-200 answer: back in the queue after a 503, else the job's error."""
        try:
            error = json.loads(body)
        except ValueError:
            error = error_json("upstream_failed", f"the server answered {status}")
        if status == 503 and record.attempts < MAX_ATTEMPTS:
            retry_after = float(headers.get("Retry-After", "5") or 5)
            self.store.requeue(record.id, time.time() + min(retry_after, 60.0))
            return
        self.store.finish(record.id, "failed", error={**error, "status": status})

    async def _watch_cancel(self, job_id: str) -> None:
        """Renew the job's lease while it runs; write its cancel marker once the store says
        it was cancelled."""
        polls, marked = 0, False
        while True:
            if not marked and self.store.cancel_requested(job_id):
                request_cancel(self.state_dir, job_id)
                marked = True
            polls += 1
            if polls % HEARTBEAT_POLLS == 0:
                self.store.heartbeat(job_id)
            await asyncio.sleep(POLL_S)
