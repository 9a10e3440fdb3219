"""The jobs stores, SQLite and a real Redis: one claim per job, cancel, idempotency,
expiry, restarts and replicas that die."""

from __future__ import annotations

import time

import pytest

from nst_server.jobs.redis_store import RedisStore
from nst_server.jobs.store import SQLiteStore
from tests.nst_server.redis_server import running_redis


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    yield from running_redis(tmp_path_factory.mktemp("redis"))


@pytest.fixture(params=["sqlite", "redis"])
def open_store(request, tmp_path):
    """Opens stores of one kind that see the same jobs (a fresh namespace per test)."""
    if request.param == "sqlite":
        return lambda ttl_s=60.0, lease_s=30.0: SQLiteStore(tmp_path / "jobs.sqlite3", ttl_s)
    url, prefix = request.getfixturevalue("redis_url"), f"test-{time.monotonic_ns()}:"
    return lambda ttl_s=60.0, lease_s=30.0: RedisStore(url, ttl_s, lease_s, prefix)


def test_a_job_is_claimed_once_and_in_order(open_store):
    store = open_store()
    first, _ = store.submit("a", b"one", "h1", None)
    time.sleep(0.01)
    second, _ = store.submit("a", b"two", "h2", None)
    other = open_store()  # a second connection
    claims = [store.claim(), other.claim(), store.claim()]
    assert [c.id if c else None for c in claims] == [first.id, second.id, None]
    assert claims[0] is not None and claims[0].request == b"one" and claims[0].attempts == 1


def test_a_cancelled_queued_job_never_runs(open_store):
    store = open_store()
    job, _ = store.submit("a", b"x", "h", None)
    assert store.queue_position(job) == 0
    cancelled = store.cancel(job.id)
    assert cancelled is not None and cancelled.status == "cancelled"
    assert store.claim() is None


def test_cancelling_a_running_job_flags_it_for_its_runner(open_store):
    store = open_store()
    job, _ = store.submit("a", b"x", "h", None)
    assert store.claim() is not None
    assert not store.cancel_requested(job.id)
    flagged = store.cancel(job.id)
    assert flagged is not None and flagged.status == "running" and flagged.cancel_requested
    assert store.cancel_requested(job.id)


def test_an_idempotency_key_returns_the_first_job_of_its_owner(open_store):
    store = open_store()
    first, created = store.submit("a", b"x", "h", "key-1")
    again, created_again = store.submit("a", b"x", "h", "key-1")
    theirs, theirs_created = store.submit("b", b"x", "h", "key-1")  # another key's namespace
    assert created and not created_again and theirs_created
    assert again.id == first.id != theirs.id


def test_ended_jobs_expire_and_running_ones_do_not(open_store):
    store = open_store(ttl_s=0.05)
    done, _ = store.submit("a", b"x", "h", None)
    assert store.claim() is not None
    store.finish(done.id, "succeeded", result=b"png", result_type="image/png", summary={})
    running, _ = store.submit("a", b"y", "h2", None)
    assert store.claim() is not None
    time.sleep(0.1)
    assert store.expire() == 1
    assert store.get(done.id) is None and store.get(running.id) is not None


def test_jobs_survive_a_restart_and_interrupted_runs_fail_with_a_reason(tmp_path):
    path = tmp_path / "jobs.sqlite3"
    store = SQLiteStore(path, ttl_s=60)
    queued, _ = store.submit("a", b"x", "h", None)
    interrupted, _ = store.submit("a", b"y", "h2", None)
    store.db.execute("UPDATE jobs SET status = 'running' WHERE id = ?", (interrupted.id,))
    store.close()
    restarted = SQLiteStore(path, ttl_s=60)
    assert restarted.fail_interrupted() == [interrupted.id]
    after = restarted.get(interrupted.id)
    assert after is not None and after.status == "failed"
    assert after.error is not None and after.error["error"] == "interrupted"
    still = restarted.get(queued.id)
    assert still is not None and still.status == "queued"


def test_queue_counts_and_positions(open_store):
    store = open_store()
    jobs = []
    for n in range(3):
        jobs.append(store.submit("a" if n < 2 else "b", b"x", f"h{n}", None)[0])
        time.sleep(0.01)
    assert [store.queue_position(j) for j in jobs] == [0, 1, 2]
    assert store.queued_count("a") == 2 and store.queued_count("b") == 1
    claimed = store.claim()
    assert claimed is not None
    store.finish(claimed.id, "succeeded", result=b"png", result_type="image/png", summary={})
    counts = store.counts()
    assert counts["queued"] == 2 and counts["running"] == 0 and counts["succeeded"] == 1
    assert store.queue_position(jobs[2]) == 1 and store.result(claimed.id) == b"png"


def test_a_replica_that_stops_renewing_its_lease_loses_its_job(redis_url):
    """Redis: a running job whose runner died is failed by any other replica."""
    prefix = f"lease-{time.monotonic_ns()}:"
    alive = RedisStore(redis_url, 60.0, lease_s=0.3, prefix=prefix)
    dead = RedisStore(redis_url, 60.0, lease_s=0.3, prefix=prefix)
    kept, _ = alive.submit("a", b"x", "h", None)
    time.sleep(0.01)
    lost, _ = dead.submit("a", b"y", "h2", None)
    assert alive.claim().id == kept.id and dead.claim().id == lost.id  # type: ignore[union-attr]
    for _ in range(4):
        time.sleep(0.1)
        alive.heartbeat(kept.id)  # only this runner lives on
    assert alive.reap() == [lost.id]
    failed = alive.get(lost.id)
    assert (
        failed is not None and failed.status == "failed" and failed.error["error"] == "interrupted"
    )
    running = alive.get(kept.id)
    assert running is not None and running.status == "running"
