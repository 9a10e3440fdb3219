"""Load above batchSize, a killed worker: the server keeps answering and loses nothing."""

from __future__ import annotations

import os
import signal
import threading
import time

import requests

from bench.load import run_load
from tests.conftest import CONTENT, STYLE


def test_short_load_run_answers_everything(server):
    pids = server.worker_pids()
    report = run_load(
        server.inference, server.management, clients=12, requests_each=2, size=32, steps=2
    )
    summary = report.summary()
    print(summary)
    assert summary["requests"] == 24
    assert summary["statuses"] == {200: 24}  # no 5xx; queue-full 503s were retried
    assert set(summary["first_try_statuses"]) <= {200, 503}
    assert report.peak_rss_mb < 3000
    assert server.worker_pids() == pids


def post_chelsea(server, timeout: float, **data: str) -> requests.Response:
    """chelsea x starry_night with ``data`` as the form's parameters."""
    return requests.post(
        server.predict_url,
        files={
            "content": (CONTENT / "chelsea.png").read_bytes(),
            "style": (STYLE / "starry_night.jpg").read_bytes(),
        },
        data=data,
        timeout=timeout,
    )


def test_killed_worker_fails_its_request_and_is_replaced(server):
    old = server.worker_pids()
    outcome = {}

    def long_request():
        started = time.monotonic()
        reply = post_chelsea(server, timeout=120, size="96", steps="300")
        outcome.update(status=reply.status_code, seconds=time.monotonic() - started)

    thread = threading.Thread(target=long_request)
    thread.start()
    time.sleep(4)  # the job is optimising
    os.kill(old[0], signal.SIGKILL)
    thread.join(90)
    assert not thread.is_alive(), "the in-flight request hung"
    assert outcome["status"] >= 500 and outcome["seconds"] < 60
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        reply = post_chelsea(server, timeout=60, size="32", steps="1")
        if reply.status_code == 200:
            break
        time.sleep(2)
    assert reply.status_code == 200
    assert server.worker_pids() != old  # a new worker process answered
