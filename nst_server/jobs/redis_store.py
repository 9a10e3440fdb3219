"""Where jobs live across replicas: Redis, shared by every jobs service behind one Service.

Any replica answers for any job; a job is taken by one runner only (claiming is one Lua
script: the oldest queued job that may run moves to the running set). A running job holds a
lease its runner renews every few seconds; when a replica dies, its jobs' leases run out and
any other replica fails them with ``interrupted`` (never ``running`` for ever).

Keys, under a prefix (``nst:``): ``job:{id}`` (a hash), ``queue`` (queued ids by when they may
run), ``running`` (ids by lease end), ``ended`` (ids by expiry), ``owner:{owner}:queued``
(set), ``idem:{owner}:{key}`` (the id an idempotency key names), ``counts`` (ended jobs by
status).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import redis

from handler import error_json

from .store import COLUMNS, JobRecord

FIELDS = [name.strip() for name in COLUMNS.split(",")]
JSON_FIELDS = ("losses", "error", "summary")
FLOAT_FIELDS = ("created", "started", "finished", "expires", "not_before")
INT_FIELDS = ("attempts", "step", "steps")
BOOL_FIELDS = ("cancel_requested", "has_preview")

CLAIM = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 1)
if #ids == 0 then return false end
local id = ids[1]
local job = ARGV[3] .. 'job:' .. id
redis.call('ZREM', KEYS[1], id)
redis.call('SREM', ARGV[3] .. 'owner:' .. redis.call('HGET', job, 'owner') .. ':queued', id)
redis.call('HSET', job, 'status', 'running', 'started', ARGV[1])
redis.call('HINCRBY', job, 'attempts', 1)
redis.call('ZADD', KEYS[2], tonumber(ARGV[1]) + tonumber(ARGV[2]), id)
return id
"""

# ARGV: id, status, now, expires, prefix, the status the job must have (running: a runner
# or the reaper ends it; queued: a cancel), then field/value pairs to set. Ends the job once,
# and only from that status, so a cancel never ends a job a runner has just claimed.
FINISH = """
local job = ARGV[5] .. 'job:' .. ARGV[1]
if redis.call('HGET', job, 'status') ~= ARGV[6] then return 0 end
redis.call('ZREM', ARGV[5] .. 'queue', ARGV[1])
redis.call('ZREM', ARGV[5] .. 'running', ARGV[1])
redis.call('SREM', ARGV[5] .. 'owner:' .. redis.call('HGET', job, 'owner') .. ':queued', ARGV[1])
redis.call('HSET', job, 'status', ARGV[2], 'finished', ARGV[3], 'expires', ARGV[4])
redis.call('HDEL', job, 'request', 'preview')
redis.call('HSET', job, 'has_preview', 0)
for i = 7, #ARGV, 2 do redis.call('HSET', job, ARGV[i], ARGV[i + 1]) end
redis.call('ZADD', ARGV[5] .. 'ended', ARGV[4], ARGV[1])
redis.call('HINCRBY', ARGV[5] .. 'counts', ARGV[2], 1)
return 1
"""

REQUEUE = """
local job = ARGV[3] .. 'job:' .. ARGV[1]
if redis.call('HGET', job, 'status') ~= 'running' then return 0 end
redis.call('ZREM', ARGV[3] .. 'running', ARGV[1])
redis.call('HSET', job, 'status', 'queued', 'not_before', ARGV[2])
redis.call('HDEL', job, 'started')
redis.call('ZADD', ARGV[3] .. 'queue', ARGV[2], ARGV[1])
redis.call('SADD', ARGV[3] .. 'owner:' .. redis.call('HGET', job, 'owner') .. ':queued', ARGV[1])
return 1
"""


class RedisStore:
    """The :class:`~nst_server.jobs.store.SQLiteStore` interface over Redis (``url``:
    ``redis://host:port/db``)."""

    def __init__(self, url: str, ttl_s: float, lease_s: float = 30.0, prefix: str = "nst:"):
        self.ttl_s, self.lease_s, self.prefix = ttl_s, lease_s, prefix
        # Any: redis-py types every reply as a union of bytes, str, lists and awaitables
        self.db: Any = redis.Redis.from_url(url)
        self.db.ping()
        self._claim = self.db.register_script(CLAIM)
        self._finish = self.db.register_script(FINISH)
        self._requeue = self.db.register_script(REQUEUE)

    def close(self) -> None:
        self.db.close()

    def _key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    def submit(
        self, owner: str, request: bytes, request_hash: str, idempotency_key: str | None
    ) -> tuple[JobRecord, bool]:
        now = time.time()
        job_id = uuid.uuid4().hex
        if idempotency_key is not None:
            idem = self._key("idem", owner, idempotency_key)
            if not self.db.set(idem, job_id, nx=True):
                existing = self.find(owner, idempotency_key)
                if existing is not None:
                    return existing, False
                self.db.set(idem, job_id)  # it expired meanwhile: the key is free again
        fields: dict[str, Any] = {
            "id": job_id,
            "owner": owner,
            "request_hash": request_hash,
            "status": "queued",
            "created": now,
            "expires": now + self.ttl_s,
            "not_before": 0,
            "attempts": 0,
            "cancel_requested": 0,
            "step": 0,
            "steps": 0,
            "has_preview": 0,
            "request": request,
        }
        if idempotency_key is not None:
            fields["idempotency_key"] = idempotency_key
        with self.db.pipeline() as pipe:
            pipe.hset(self._key("job", job_id), mapping=fields)
            pipe.zadd(self._key("queue"), {job_id: now})
            pipe.sadd(self._key("owner", owner, "queued"), job_id)
            pipe.execute()
        record = self.get(job_id)
        assert record is not None
        return record, True

    def find(self, owner: str, idempotency_key: str) -> JobRecord | None:
        job_id = self.db.get(self._key("idem", owner, idempotency_key))
        return None if job_id is None else self.get(job_id.decode())

    def get(self, job_id: str, with_request: bool = False) -> JobRecord | None:
        names = FIELDS + (["request"] if with_request else [])
        values = self.db.hmget(self._key("job", job_id), names)
        if values[0] is None:
            return None
        return _record(dict(zip(names, values)))

    def queue_position(self, record: JobRecord) -> int:
        rank = self.db.zrank(self._key("queue"), record.id)
        return 0 if rank is None else int(rank)

    def queued_count(self, owner: str) -> int:
        return int(self.db.scard(self._key("owner", owner, "queued")))

    def counts(self) -> dict[str, int]:
        ended = {k.decode(): int(v) for k, v in self.db.hgetall(self._key("counts")).items()}
        return {
            "queued": int(self.db.zcard(self._key("queue"))),
            "running": int(self.db.zcard(self._key("running"))),
            **{status: ended.get(status, 0) for status in ("succeeded", "failed", "cancelled")},
        }

    def claim(self) -> JobRecord | None:
        job_id = self._claim(
            keys=[self._key("queue"), self._key("running")],
            args=[time.time(), self.lease_s, self.prefix],
        )
        return None if job_id is None else self.get(job_id.decode(), with_request=True)

    def heartbeat(self, job_id: str) -> None:
        """Renew a running job's lease (its runner is alive)."""
        self.db.zadd(self._key("running"), {job_id: time.time() + self.lease_s}, xx=True)

    def progress(
        self,
        job_id: str,
        step: int,
        steps: int,
        losses: dict[str, Any],
        preview: bytes | None = None,
    ) -> None:
        fields: dict[str, Any] = {"step": step, "steps": steps, "losses": json.dumps(losses)}
        if preview is not None:
            fields |= {"preview": preview, "has_preview": 1}
        self.db.hset(self._key("job", job_id), mapping=fields)

    def preview(self, job_id: str) -> bytes | None:
        return self.db.hget(self._key("job", job_id), "preview")

    def requeue(self, job_id: str, not_before: float) -> None:
        self._requeue(args=[job_id, not_before, self.prefix])

    def finish(
        self,
        job_id: str,
        status: str,
        *,
        result: bytes | None = None,
        result_type: str | None = None,
        summary: dict[str, Any] | None = None,
        error: dict[str, Any] | None = None,
    ) -> None:
        extra: list[Any] = []
        if result is not None:
            extra += ["result", result, "result_type", result_type or ""]
        if summary is not None:
            extra += ["summary", json.dumps(summary)]
            if "steps_run" in summary:
                extra += ["step", summary["steps_run"]]
        if error is not None:
            extra += ["error", json.dumps(error)]
        self._end(job_id, status, "running", extra)

    def _end(self, job_id: str, status: str, only_from: str, extra: list[Any]) -> bool:
        """End the job as ``status`` if it is ``only_from`` now (one script); whether it was."""
        now = time.time()
        args = [job_id, status, now, now + self.ttl_s, self.prefix, only_from, *extra]
        return bool(self._finish(args=args))

    def result(self, job_id: str) -> bytes | None:
        return self.db.hget(self._key("job", job_id), "result")

    def cancel(self, job_id: str) -> JobRecord | None:
        """A queued job ends at once; one running (or claimed meanwhile) is flagged."""
        if self.get(job_id) is None:
            return None
        if not self._end(job_id, "cancelled", "queued", []):
            current = self.get(job_id)
            if current is not None and current.status == "running":
                self.db.hset(self._key("job", job_id), "cancel_requested", 1)
        return self.get(job_id)

    def cancel_requested(self, job_id: str) -> bool:
        return self.db.hget(self._key("job", job_id), "cancel_requested") == b"1"

    def expire(self) -> int:
        """Delete ended jobs past their expiry."""
        removed = 0
        for raw in self.db.zrangebyscore(self._key("ended"), "-inf", time.time()):
            job_id = raw.decode()
            owner, key, status = self.db.hmget(
                self._key("job", job_id), ["owner", "idempotency_key", "status"]
            )
            with self.db.pipeline() as pipe:
                pipe.delete(self._key("job", job_id))
                pipe.zrem(self._key("ended"), job_id)
                if status is not None:
                    pipe.hincrby(self._key("counts"), status.decode(), -1)
                if owner is not None and key is not None:
                    pipe.delete(self._key("idem", owner.decode(), key.decode()))
                pipe.execute()
            removed += 1
        return removed

    def reap(self) -> list[str]:
        """:meth:`fail_interrupted`, which any replica runs now and then."""
        return self.fail_interrupted()

    def fail_interrupted(self) -> list[str]:
        """Fail the running jobs whose runner stopped renewing their lease (its replica
        died); their ids."""
        late = self.db.zrangebyscore(self._key("running"), "-inf", time.time())
        error = error_json("interrupted", "the replica running this job stopped; submit it again")
        ids = [raw.decode() for raw in late]
        for job_id in ids:
            self.finish(job_id, "failed", error=error)
        return ids


def _record(raw: dict[str, Any]) -> JobRecord:
    values: dict[str, Any] = {}
    for name, value in raw.items():
        if value is None:
            values[name] = None
        elif name == "request":
            values[name] = value
        else:
            values[name] = value.decode()
    for name in JSON_FIELDS:
        values[name] = json.loads(values[name]) if values.get(name) else None
    for name in FLOAT_FIELDS:
        if values.get(name) is not None:
            values[name] = float(values[name])
    for name in INT_FIELDS:
        values[name] = int(values.get(name) or 0)
    for name in BOOL_FIELDS:
        values[name] = values.get(name) == "1"
    values["not_before"] = values.get("not_before") or 0.0
    values["request_hash"] = values.get("request_hash") or ""
    return JobRecord(**values)
