"""Several jobs services sharing one real Redis (Debian's redis-server) in front of one real
TorchServe: any replica answers for any job, each job runs once, and a replica killed in the
middle of a job leaves it failed with a reason, never running for ever."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import requests
import yaml

from nst_server.jobs.redis_store import RedisStore
from tests.live_server import TEST_MODEL_CONFIG, free_ports
from tests.nst_server.redis_server import running_redis
from tests.nst_server.test_jobs import FILES, ended, follow

LEASE_S = 3


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory) -> Iterator[str]:
    yield from running_redis(tmp_path_factory.mktemp("redis"))


@pytest.fixture
def replicas(server, redis_url, tmp_path):
    """Starts jobs services on the shared store; each is stopped after the test."""
    config = tmp_path / "model-config.yaml"
    config.write_text(yaml.safe_dump(TEST_MODEL_CONFIG))
    started: list[subprocess.Popen] = []

    def start() -> tuple[subprocess.Popen, str]:
        (port,) = free_ports(1)
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "nst_server.jobs",
                *("--address", f"127.0.0.1:{port}", "--inference", server.inference),
                *("--store", redis_url, "--lease", str(LEASE_S)),
                *("--state-dir", str(server.state_dir), "--model-config", str(config)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        started.append(process)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{url}/ping", timeout=2).status_code == 200:
                    return process, url
            except requests.ConnectionError:
                time.sleep(0.2)
        raise AssertionError("a jobs service did not start")

    yield start
    for process in started:
        process.kill()
        process.wait(10)


def test_any_replica_answers_for_any_job_and_each_job_runs_once(replicas, redis_url):
    (_, first), (_, second) = replicas(), replicas()
    ids = []
    for n in range(4):
        url = (first, second)[n % 2]
        reply = requests.post(
            f"{url}/v1/jobs", files=FILES, data={"size": "48", "steps": "3"}, timeout=60
        )
        assert reply.status_code == 202, reply.text
        ids.append(reply.json()["id"])
    store = RedisStore(redis_url, ttl_s=60)
    for n, job_id in enumerate(ids):
        other = (second, first)[n % 2]
        job = follow(other, job_id, ended)
        assert job["status"] == "succeeded", job
        image = requests.get(f"{other}/v1/jobs/{job_id}/result", timeout=10)
        assert image.status_code == 200 and image.content[:8] == b"\x89PNG\r\n\x1a\n"
        record = store.get(job_id)
        assert record is not None and record.attempts == 1  # taken by one runner, once


def test_a_replica_killed_mid_job_leaves_the_job_failed_and_the_worker_free(replicas, server):
    doomed, first = replicas()
    reply = requests.post(
        f"{first}/v1/jobs", files=FILES, data={"size": "96", "steps": "400"}, timeout=60
    )
    job_id = reply.json()["id"]
    running = follow(first, job_id, lambda j: j["progress"]["step"] > 0 or ended(j))
    assert running["status"] == "running", running
    _, second = replicas()
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(10)
    killed = time.monotonic()
    failed = follow(second, job_id, ended, timeout=60)
    assert failed["status"] == "failed" and failed["error"]["error"] == "interrupted", failed
    assert time.monotonic() - killed < LEASE_S + 15
    # the surviving replica asked this pod's worker to drop the orphan: new work runs now
    quick = requests.post(
        f"{second}/v1/jobs", files=FILES, data={"size": "48", "steps": "2"}, timeout=60
    ).json()
    done = follow(second, quick["id"], ended, timeout=60)
    assert done["status"] == "succeeded", done
