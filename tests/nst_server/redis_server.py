"""A real redis-server (Debian's package) on a free loopback port, for the jobs store tests."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.live_server import free_ports


def running_redis(folder: Path) -> Iterator[str]:
    """Start a redis-server keeping nothing on disk; yield its URL; stop it."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is needed: make tools installs it")
    (port,) = free_ports(1)
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(folder),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        for _ in range(100):
            try:
                redis.Redis.from_url(url).ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(10)
