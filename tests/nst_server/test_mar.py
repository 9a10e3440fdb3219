"""nst-build-mar's first run on a machine without weights."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from nst.weights import LOCAL_WEIGHTS


@pytest.mark.skipif(LOCAL_WEIGHTS.exists(), reason=f"{LOCAL_WEIGHTS} exists (make weights ran)")
def test_no_weights_and_no_network_is_one_clear_line(tmp_path):
    with socket.socket() as s:  # a loopback port nobody listens on stands for "no network"
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "NST_WEIGHTS"}
    env |= {
        "NST_DEV_WEIGHTS": str(tmp_path / "absent.safetensors"),
        "NST_WEIGHTS_URL": f"http://127.0.0.1:{port}/vgg19-dcbb9e9d.pth",
    }
    done = subprocess.run(
        [sys.executable, "-m", "nst_server.mar", "--out", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "could not download" in lines[0] and "NST_WEIGHTS" in lines[0]
    assert not list(tmp_path.glob("*.mar"))
