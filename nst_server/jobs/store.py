"""Where jobs live: an SQLite file (one machine; jobs survive a restart of the service).

A job's row holds its request until it runs, its progress while it runs and its result or
error afterwards. Every change is one short transaction and claiming a job is one
``UPDATE ... RETURNING``, so a job is taken by one runner only. One service process owns a
file: at start it fails the jobs a stopped process left ``running``.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from handler import error_json

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
ENDED = ("succeeded", "failed", "cancelled")

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    idempotency_key TEXT,
    request_hash TEXT NOT NULL,
    status TEXT NOT NULL,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    expires REAL NOT NULL,
    not_before REAL NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    step INTEGER NOT NULL DEFAULT 0,
    steps INTEGER NOT NULL DEFAULT 0,
    losses TEXT,
    error TEXT,
    request BLOB,
    summary TEXT,
    result BLOB,
    result_type TEXT,
    preview BLOB,
    has_preview INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS jobs_idempotency ON jobs (owner, idempotency_key);
CREATE INDEX IF NOT EXISTS jobs_queue ON jobs (status, created);
"""


@dataclass
class JobRecord:
    """One job as stored (the request and result bytes only when asked for)."""

    id: str
    owner: str
    status: str
    created: float
    expires: float
    request_hash: str = ""
    idempotency_key: str | None = None
    started: float | None = None
    finished: float | None = None
    not_before: float = 0.0
    attempts: int = 0
    cancel_requested: bool = False
    step: int = 0
    steps: int = 0
    losses: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    summary: dict[str, Any] | None = None
    result_type: str | None = None
    has_preview: bool = False
    request: bytes | None = field(default=None, repr=False)

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> JobRecord:
        values = dict(row)
        values.pop("result", None)
        values.pop("preview", None)
        for name in ("losses", "error", "summary"):
            values[name] = json.loads(values[name]) if values[name] else None
        values["cancel_requested"] = bool(values["cancel_requested"])
        values["has_preview"] = bool(values["has_preview"])
        return cls(**values)


COLUMNS = (
    "id, owner, idempotency_key, request_hash, status, created, started, finished, expires, "
    "not_before, attempts, cancel_requested, step, steps, losses, error, summary, result_type, "
    "has_preview"
)


class JobStore(Protocol):
    """What the service and its runners need of a store (SQLite here, or
    :class:`~nst_server.jobs.redis_store.RedisStore`)."""

    ttl_s: float  # seconds a job's record is kept after it ended

    def submit(
        self, owner: str, request: bytes, request_hash: str, idempotency_key: str | None
    ) -> tuple[JobRecord, bool]: ...
    def find(self, owner: str, idempotency_key: str) -> JobRecord | None: ...
    def get(self, job_id: str) -> JobRecord | None: ...
    def queue_position(self, record: JobRecord) -> int: ...
    def queued_count(self, owner: str) -> int: ...
    def counts(self) -> dict[str, int]: ...
    def claim(self) -> JobRecord | None: ...
    def heartbeat(self, job_id: str) -> None: ...
    def progress(
        self,
        job_id: str,
        step: int,
        steps: int,
        losses: dict[str, Any],
        preview: bytes | None = None,
    ) -> None: ...
    def preview(self, job_id: str) -> bytes | None: ...
    def requeue(self, job_id: str, not_before: float) -> None: ...
    def finish(
        self,
        job_id: str,
        status: str,
        *,
        result: bytes | None = None,
        result_type: str | None = None,
        summary: dict[str, Any] | None = None,
        error: dict[str, Any] | None = None,
    ) -> None: ...
    def result(self, job_id: str) -> bytes | None: ...
    def cancel(self, job_id: str) -> JobRecord | None: ...
    def cancel_requested(self, job_id: str) -> bool: ...
    def expire(self) -> int: ...
    def fail_interrupted(self) -> list[str]: ...
    def reap(self) -> list[str]: ...
    def close(self) -> None: ...


class SQLiteStore:
    """Jobs in one SQLite file (WAL mode, so readers never wait for the runners)."""

    def __init__(self, path: str | Path, ttl_s: float):
        self.path, self.ttl_s = Path(path), ttl_s
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA busy_timeout=5000")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def _one(self, sql: str, args: tuple = ()) -> JobRecord | None:
        row = self.db.execute(sql, args).fetchone()
        return None if row is None else JobRecord.from_row(row)

    def submit(
        self, owner: str, request: bytes, request_hash: str, idempotency_key: str | None
    ) -> tuple[JobRecord, bool]:
        """Queue a job; with an idempotency key already used by ``owner``, that job instead.
        Returns (the job, whether it is new)."""
        now = time.time()
        job_id = uuid.uuid4().hex
        try:
            self.db.execute(
                "INSERT INTO jobs (id, owner, idempotency_key, request_hash, status, created, "
                "expires, request) VALUES (?, ?, ?, ?, 'queued', ?, ?, ?)",
                (job_id, owner, idempotency_key, request_hash, now, now + self.ttl_s, request),
            )
        except sqlite3.IntegrityError:
            existing = self.find(owner, idempotency_key) if idempotency_key else None
            if existing is not None:
                return existing, False
            raise
        record = self.get(job_id)
        assert record is not None
        return record, True

    def find(self, owner: str, idempotency_key: str) -> JobRecord | None:
        """The job ``owner`` submitted with ``idempotency_key``, if any."""
        return self._one(
            f"SELECT {COLUMNS} FROM jobs WHERE owner = ? AND idempotency_key = ?",
            (owner, idempotency_key),
        )

    def get(self, job_id: str) -> JobRecord | None:
        return self._one(f"SELECT {COLUMNS} FROM jobs WHERE id = ?", (job_id,))

    def heartbeat(self, job_id: str) -> None:
        """Nothing: one process owns the file (running jobs are failed at its next start)."""

    def reap(self) -> list[str]:
        """Nothing: while the owning process runs, its runners are the only ones."""
        return []

    def queue_position(self, record: JobRecord) -> int:
        """Jobs queued before this one (0: it runs next)."""
        row = self.db.execute(
            "SELECT COUNT(*) FROM jobs WHERE status = 'queued' AND created < ?",
            (record.created,),
        ).fetchone()
        return int(row[0])

    def queued_count(self, owner: str) -> int:
        row = self.db.execute(
            "SELECT COUNT(*) FROM jobs WHERE status = 'queued' AND owner = ?", (owner,)
        ).fetchone()
        return int(row[0])

    def counts(self) -> dict[str, int]:
        """Jobs by status."""
        rows = self.db.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall()
        return {status: 0 for status in STATUSES} | {r[0]: int(r[1]) for r in rows}

    def claim(self) -> JobRecord | None:
        """Take the oldest queued job that may run now (its request included)."""
        now = time.time()
        row = self.db.execute(
            "UPDATE jobs SET status = 'running', started = ?, attempts = attempts + 1 "
            "WHERE id = (SELECT id FROM jobs WHERE status = 'queued' AND not_before <= ? "
            f"ORDER BY created LIMIT 1) AND status = 'queued' RETURNING {COLUMNS}, request",
            (now, now),
        ).fetchone()
        return None if row is None else JobRecord.from_row(row)

    def progress(
        self,
        job_id: str,
        step: int,
        steps: int,
        losses: dict[str, Any],
        preview: bytes | None = None,
    ) -> None:
        """A running job's step and losses, and its latest preview (PNG) when one came."""
        self.db.execute(
            "UPDATE jobs SET step = ?, steps = ?, losses = ?, preview = COALESCE(?, preview), "
            "has_preview = has_preview OR ? WHERE id = ? AND status = 'running'",
            (step, steps, json.dumps(losses), preview, preview is not None, job_id),
        )

    def preview(self, job_id: str) -> bytes | None:
        row = self.db.execute("SELECT preview FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else row[0]

    def requeue(self, job_id: str, not_before: float) -> None:
        """Put a running job back in the queue (the server was busy), to run after
        ``not_before``."""
        self.db.execute(
            "UPDATE jobs SET status = 'queued', not_before = ?, started = NULL "
            "WHERE id = ? AND status = 'running'",
            (not_before, job_id),
        )

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
        """End a job (its request is dropped; the record expires ``ttl_s`` from now)."""
        assert status in ENDED
        now = time.time()
        self.db.execute(
            "UPDATE jobs SET status = ?, finished = ?, expires = ?, result = ?, "
            "result_type = ?, summary = ?, error = ?, request = NULL, preview = NULL, "
            "has_preview = 0, step = COALESCE(?, step) WHERE id = ?",
            (
                status,
                now,
                now + self.ttl_s,
                result,
                result_type,
                json.dumps(summary) if summary is not None else None,
                json.dumps(error) if error is not None else None,
                (summary or {}).get("steps_run"),
                job_id,
            ),
        )

    def result(self, job_id: str) -> bytes | None:
        row = self.db.execute("SELECT result FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else row[0]

    def cancel(self, job_id: str) -> JobRecord | None:
        """Cancel: a queued job ends now; a running one is flagged for its runner."""
        now = time.time()
        self.db.execute(
            "UPDATE jobs SET status = 'cancelled', finished = ?, expires = ?, request = NULL "
            "WHERE id = ? AND status = 'queued'",
            (now, now + self.ttl_s, job_id),
        )
        self.db.execute(
            "UPDATE jobs SET cancel_requested = 1 WHERE id = ? AND status = 'running'", (job_id,)
        )
        return self.get(job_id)

    def cancel_requested(self, job_id: str) -> bool:
        row = self.db.execute(
            "SELECT cancel_requested FROM jobs WHERE id = ?", (job_id,)
        ).fetchone()
        return bool(row and row[0])

    def expire(self) -> int:
        """Delete the jobs past their expiry (ended ones ``ttl_s`` after they ended, queued
        ones ``ttl_s`` after they were submitted); how many."""
        cursor = self.db.execute(
            "DELETE FROM jobs WHERE expires < ? AND status != 'running'", (time.time(),)
        )
        return cursor.rowcount

    def fail_interrupted(self) -> list[str]:
        """At start: jobs a stopped service left running can never report; fail them with a
        reason (their ids)."""
        error = error_json(
            "interrupted", "the jobs service stopped while this job ran; submit it again"
        )
        rows = self.db.execute("SELECT id FROM jobs WHERE status = 'running'").fetchall()
        for (job_id,) in rows:
            self.finish(job_id, "failed", error=error)
        return [job_id for (job_id,) in rows]
