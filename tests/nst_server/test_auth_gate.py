"""The Ingress's key check (scripts/auth_gate.py), as a real HTTP server on loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.live_server import free_ports

ROOT = Path(__file__).resolve().parents[2]


def test_gate_admits_current_keys_only_and_stops_on_sigterm(tmp_path):
    keys = tmp_path / "api-keys"
    keys.write_text("first-key\n")
    (port,) = free_ports(1)
    gate = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "scripts/auth_gate.py"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--keys",
            str(keys),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}/check"
    try:
        for _ in range(100):
            try:
                requests.get(url, timeout=2)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        missing = requests.get(url, timeout=5)
        assert missing.status_code == 401 and missing.headers["WWW-Authenticate"] == "Bearer"
        assert (
            requests.get(url, headers={"Authorization": "Bearer wrong"}, timeout=5).status_code
            == 401
        )
        assert (
            requests.get(url, headers={"Authorization": "Bearer first-key"}, timeout=5).status_code
            == 204
        )
        keys.write_text("rotated-key\n")  # a Secret update
        os.utime(keys, (time.time() + 5, time.time() + 5))
        assert (
            requests.get(url, headers={"Authorization": "Bearer first-key"}, timeout=5).status_code
            == 401
        )
        assert (
            requests.get(
                url, headers={"Authorization": "Bearer rotated-key"}, timeout=5
            ).status_code
            == 204
        )
    finally:
        gate.send_signal(signal.SIGTERM)
        assert gate.wait(timeout=10) == 0
