"""Cancel markers: the file a jobs service writes and the worker checks between steps, and
the markers no runner is left to clear."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time

from handler.cancel import CancelWatch, clear_stale, marker, request_cancel
from nst import LossTerms, Progress
from nst_server.jobs.service import maintain
from nst_server.jobs.store import SQLiteStore


def progress(job: int) -> Progress:
    return Progress(job, 1, 10, LossTerms(0.1, 0.2, 0.0, 0.3), None)


def test_a_marker_stops_only_its_job(tmp_path):
    watch = CancelWatch.for_jobs({0: "job-a", 1: "job-b", 2: None}, str(tmp_path))
    assert watch is not None and not watch(progress(0)) and not watch(progress(1))
    request_cancel(tmp_path, "job-b")
    assert watch(progress(1)) and not watch(progress(0)) and not watch(progress(2))


def test_ids_that_cannot_name_a_file_get_no_marker(tmp_path):
    for job_id in ("../escape", "a/b", "", "x" * 65, "spaces here"):
        assert marker(tmp_path, job_id) is None
        request_cancel(tmp_path, job_id)
    assert list(tmp_path.iterdir()) == []
    assert CancelWatch.for_jobs({0: "../escape"}, str(tmp_path)) is None


def test_markers_older_than_a_record_lives_are_removed(tmp_path):
    request_cancel(tmp_path, "old")
    request_cancel(tmp_path, "fresh")
    (tmp_path / "busy-123").write_text("")  # another kind of marker: never touched
    long_ago = time.time() - 7200
    os.utime(marker(tmp_path, "old"), (long_ago, long_ago))
    os.utime(tmp_path / "busy-123", (long_ago, long_ago))
    assert clear_stale(tmp_path, 3600) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy-123", "cancel-fresh"]


def test_the_jobs_service_clears_stale_markers_as_it_maintains_its_store(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    request_cancel(state, "left-by-a-dead-replica")
    long_ago = time.time() - 2 * 3600
    os.utime(marker(state, "left-by-a-dead-replica"), (long_ago, long_ago))
    request_cancel(state, "running-now")
    store = SQLiteStore(tmp_path / "jobs.sqlite3", ttl_s=3600)

    async def a_moment_of_maintenance():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(maintain(store, state, every_s=0.05), timeout=0.5)

    asyncio.run(a_moment_of_maintenance())
    assert [p.name for p in state.iterdir()] == ["cancel-running-now"]
