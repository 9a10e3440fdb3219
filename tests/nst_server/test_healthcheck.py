"""scripts/healthcheck.py against the session's real TorchServe: ready, live, drain."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

import requests

import nst_server.healthcheck as healthcheck
from handler.activity import busy, busy_pids
from tests.conftest import CONTENT, STYLE
from tests.live_server import free_ports, run_probe


def test_probes_pass_on_a_ready_server_and_fail_on_a_closed_port(server):
    assert run_probe("ready", server.management).returncode == 0
    assert run_probe("live", server.management).returncode == 0
    closed = f"http://127.0.0.1:{free_ports(1)[0]}"
    for check in ("ready", "live"):
        result = run_probe(check, closed, "--timeout", "2")
        assert result.returncode == 1 and result.stdout.strip() == f"{check}: no"


def test_probes_fail_while_the_only_worker_cannot_serve_though_listed_ready(server):
    """A worker that died or hangs stays READY in the management API: the probes look at
    its process. Stopped (SIGSTOP), both fail; resumed, both pass again."""
    (pid,) = server.worker_pids()
    os.kill(pid, signal.SIGSTOP)
    try:
        statuses = [
            w["status"]
            for m in requests.get(f"{server.management}/models/style_transfer", timeout=10).json()
            for w in m["workers"]
        ]
        assert statuses == ["READY"]  # what TorchServe says
        assert run_probe("ready", server.management).returncode == 1
        assert run_probe("live", server.management).returncode == 1
    finally:
        os.kill(pid, signal.SIGCONT)
    assert run_probe("ready", server.management).returncode == 0
    assert run_probe("live", server.management).returncode == 0
    assert server.worker_pids() == [pid]


def test_ready_needs_the_model_not_just_a_running_frontend(server):
    """/ping answers Healthy with no model loaded; the probe asks for this model's worker."""
    assert healthcheck.is_live(server.management, None, 5)
    original = healthcheck.MODEL_NAME
    healthcheck.MODEL_NAME = "no_such_model"
    try:
        assert not healthcheck.is_ready(server.management, None, 5)
    finally:
        healthcheck.MODEL_NAME = original


def test_drain_waits_for_the_running_job_to_be_answered(server):
    replies = []

    def post():
        with open(CONTENT / "astronaut.png", "rb") as c, open(STYLE / "the_scream.jpg", "rb") as s:
            replies.append(
                requests.post(
                    server.predict_url,
                    files={"content": c, "style": s},
                    data={"size": "96", "steps": "25"},
                    timeout=120,
                )
            )

    client = threading.Thread(target=post)
    client.start()
    deadline = time.monotonic() + 30
    while not busy_pids(server.state_dir) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert busy_pids(server.state_dir), "the handler marks itself busy while optimising"
    started = time.monotonic()
    assert healthcheck.drain(server.management, None, 120, str(server.state_dir), poll_s=0.2)
    waited = time.monotonic() - started
    client.join(timeout=10)
    assert replies and replies[0].status_code == 200
    assert waited > 1.0, "drain returned while the job was still running"
    assert not busy_pids(server.state_dir)


def test_busy_marker_of_a_dead_process_is_ignored(tmp_path):
    child = subprocess.Popen(["true"])
    child.wait()
    (tmp_path / f"busy-{child.pid}").write_text("")
    assert busy_pids(tmp_path) == []
    with busy(str(tmp_path)):
        assert busy_pids(tmp_path) == [os.getpid()]
    assert busy_pids(tmp_path) == []
