"""The jobs API's queue without runners (nst-jobs --runners 0, nothing ever starts): keys
and who sees which job, the per-key limit, queue positions, cancelling a queued job."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import requests

from tests.live_server import free_ports
from tests.nst_server.test_jobs import FILES


@pytest.fixture(scope="module")
def queue(tmp_path_factory):
    """A jobs service that queues but never runs, with two API keys; its URL."""
    base = tmp_path_factory.mktemp("queue")
    keys = base / "api-keys"
    keys.write_text("alice-key\nbob-key\n")
    port, dead = free_ports(2)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "nst_server.jobs",
            *("--address", f"127.0.0.1:{port}", "--inference", f"http://127.0.0.1:{dead}"),
            *("--store", str(base / "jobs.sqlite3"), "--state-dir", str(base)),
            *("--runners", "0", "--max-queued", "2"),
        ],
        env={**os.environ, "NST_API_KEYS_FILE": str(keys)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            requests.get(f"{url}/ping", timeout=2)
            break
        except requests.ConnectionError:
            time.sleep(0.2)
    yield url
    process.terminate()
    process.wait(10)


ALICE = {"Authorization": "Bearer alice-key"}
BOB = {"Authorization": "Bearer bob-key"}


def submit(url: str, headers: dict[str, str]) -> requests.Response:
    return requests.post(
        f"{url}/v1/jobs", files=FILES, data={"size": "48"}, headers=headers, timeout=60
    )


def test_keys_queue_limits_positions_and_cancel(queue):
    refused = submit(queue, {})
    assert refused.status_code == 401 and refused.json()["error"] == "unauthorized"
    wrong = submit(queue, {"Authorization": "Bearer nobody"})
    assert wrong.status_code == 401

    first, second = submit(queue, ALICE).json(), submit(queue, ALICE).json()
    assert (first["queue_position"], second["queue_position"]) == (0, 1)
    full = submit(queue, ALICE)
    assert full.status_code == 429 and full.json()["error"] == "too_many_jobs"
    assert "Retry-After" in full.headers
    theirs = submit(queue, BOB)  # the limit is per key
    assert theirs.status_code == 202 and theirs.json()["queue_position"] == 2

    # a job is visible only to the key that submitted it
    url = f"{queue}/v1/jobs/{first['id']}"
    assert requests.get(url, headers=BOB, timeout=10).status_code == 404
    assert requests.delete(url, headers=BOB, timeout=10).status_code == 404
    assert requests.get(url, timeout=10).status_code == 401
    assert requests.get(url, headers=ALICE, timeout=10).json()["status"] == "queued"

    cancelled = requests.delete(url, headers=ALICE, timeout=10)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    result = requests.get(f"{url}/result", headers=ALICE, timeout=10)
    assert result.status_code == 409 and result.json()["error"] == "no_result"
    later = requests.get(f"{queue}/v1/jobs/{second['id']}", headers=ALICE, timeout=10).json()
    assert later["queue_position"] == 0  # the cancelled job left the queue
    assert submit(queue, ALICE).status_code == 202  # room again under the limit
