"""The Ingress's key check (scripts/auth_gate.py), as a real HTTP server on loopback."""

from __future__ import annotations

import os
import signal
import time

import requests

from tests.live_server import start_gate


def test_gate_admits_current_keys_only_and_stops_on_sigterm(tmp_path):
    keys = tmp_path / "api-keys"
    keys.write_text("first-key\n")
    gate, base = start_gate(keys)
    url = f"{base}/check"
    try:
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
