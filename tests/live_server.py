"""A real TorchServe for the handler and deploy tests, on free loopback ports, in tmp dirs.

The ``server`` fixture is registered in tests/conftest.py, so every test folder can use it.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import yaml

from handler.histograms import ADDRESS_ENV
from nst_server import RESOURCES, control
from nst_server import jobs as jobs_service
from nst_server import mar as build_mar
from nst_server import web as web_page

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
DEV_WEIGHTS = SHARED / "weights/vgg19-caffe-imagenet-conv5_1.safetensors"

# Small limits so the tests are quick on 2 cores; a short responseTimeout and a large margin
# give the handler a 12 s budget per batch, which the deadline test relies on.
TEST_MODEL_CONFIG = {
    "minWorkers": 1,
    "maxWorkers": 1,
    "batchSize": 4,
    "maxBatchDelay": 1500,
    "responseTimeout": 45,
    "handler": {
        "max_size": 256,
        "max_steps": 400,
        "max_input_pixels": 5_000_000,
        "max_styles": 3,
        "deadline_margin_s": 33,
        "max_work_pixels": 400_000,
        "stream_interval_s": 0.3,
        "preview_interval_s": 1.0,
        "preview_max_side": 48,
        "style_cache_mb": 64,
        "defaults": {"size": 64, "steps": 5},
    },
}


@dataclass
class Server:
    inference: str
    management: str
    metrics: str
    histograms: str  # the workers' histograms (handler/histograms.py)
    web: str  # the try-it page (nst_server/web.py), allowed by TorchServe's CORS
    log_dir: Path
    state_dir: Path  # NST_STATE_DIR: the handler's busy markers
    grpc_inference: str = ""  # host:port of TorchServe's gRPC inference API
    grpc_management: str = ""
    jobs: str = ""  # the async jobs API (nst_server/jobs), beside this TorchServe

    @property
    def predict_url(self) -> str:
        return f"{self.inference}/predictions/style_transfer"

    def worker_pids(self) -> list[int]:
        reply = requests.get(f"{self.management}/models/style_transfer", timeout=10)
        return [w["pid"] for m in reply.json() for w in m["workers"]]

    def metrics_text(self) -> str:
        return requests.get(f"{self.metrics}/metrics", timeout=10).text

    def histograms_text(self) -> str:
        return requests.get(f"{self.histograms}/metrics", timeout=10).text


def metric_value(text: str, name: str) -> float:
    """The sum of a series' samples over its labels in Prometheus text (0 when absent)."""
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{")
    )


def run_probe(check: str, management: str, *extra: str) -> subprocess.CompletedProcess:
    """scripts/healthcheck.py ``check`` against the management API at ``management``."""
    env = {**os.environ, "TS_MANAGEMENT_ADDRESS": management}
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts/healthcheck.py"), check, *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def accepted_requests(metrics_text: str) -> float:
    """TorchServe's own count of the inference requests it accepted (its metrics page)."""
    found = re.findall(r"^ts_inference_requests_total\{.*\} ([0-9.e+]+)$", metrics_text, re.M)
    return sum(float(v) for v in found)


def start_gate(keys: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    """scripts/auth_gate.py on a free loopback port with ``keys`` (``extra``: more options,
    such as ``--upstream``), once it answers; the process and its base URL."""
    (port,) = free_ports(1)
    process = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "scripts/auth_gate.py"),
            *("--host", "127.0.0.1", "--port", str(port), "--keys", str(keys)),
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            requests.get(f"{url}/ping", timeout=2)
            break
        except requests.ConnectionError:
            time.sleep(0.1)
    return process, url


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def write_loopback_config(path: Path, settings: list[str]) -> dict[str, int]:
    """Write a config.properties with every port free on 127.0.0.1, plus ``settings``."""
    names = ("inference", "management", "metrics", "grpc_inference", "grpc_management", "worker")
    ports = dict(zip(names, free_ports(len(names))))
    lines = [
        f"{n}_address=http://127.0.0.1:{ports[n]}" for n in ("inference", "management", "metrics")
    ]
    lines += [
        f"grpc_inference_port={ports['grpc_inference']}",
        f"grpc_management_port={ports['grpc_management']}",
        f"initial_worker_port={ports['worker']}",
    ]
    path.write_text("\n".join(lines + settings) + "\n")
    return ports


@pytest.fixture(scope="session")
def server(tmp_path_factory, weights_path) -> Iterator[Server]:
    """The session's server, shared by every test that does not break it."""
    yield from running_server(tmp_path_factory.mktemp("torchserve"), weights_path)


def running_server(base: Path, weights_path: Path) -> Iterator[Server]:
    """Start a TorchServe with :data:`TEST_MODEL_CONFIG` in ``base``; stop it afterwards."""
    from tests.conftest import CONTENT, STYLE

    if not CONTENT.is_dir() or not STYLE.is_dir():
        pytest.skip("shared images missing")
    model_config = base / "model-config.yaml"
    model_config.write_text(yaml.safe_dump(TEST_MODEL_CONFIG))
    store = base / "model_store"
    build_mar.build(weights_path, model_config, store)
    config = base / "config.properties"
    ports = write_loopback_config(
        config,
        [
            f"model_store={store}",
            "metrics_mode=prometheus",
            f"metrics_config={RESOURCES / 'metrics.yaml'}",
            "disable_token_authorization=true",
            "enable_model_api=false",
            "max_request_size=8000000",
            "max_response_size=33554432",
            "default_workers_per_model=1",
            "job_queue_size=6",
            "enable_envvars_config=true",  # the page's CORS origin comes as TS_CORS_*
        ],
    )
    inference, management, metrics = ports["inference"], ports["management"], ports["metrics"]
    run_dir, log_dir, state_dir = base / "run", base / "logs", base / "state"
    state_dir.mkdir()
    histograms, web, jobs = (f"127.0.0.1:{port}" for port in free_ports(3))
    env = {
        "NST_STATE_DIR": str(state_dir),
        ADDRESS_ENV: histograms,
        web_page.ADDRESS_ENV: web,
        jobs_service.ADDRESS_ENV: jobs,
    }
    control.start(config, run_dir, log_dir, store, timeout=240, extra_env=env)
    try:
        yield Server(
            f"http://127.0.0.1:{inference}",
            f"http://127.0.0.1:{management}",
            f"http://127.0.0.1:{metrics}",
            f"http://{histograms}",
            f"http://{web}/",
            log_dir,
            state_dir,
            f"127.0.0.1:{ports['grpc_inference']}",
            f"127.0.0.1:{ports['grpc_management']}",
            f"http://{jobs}",
        )
    finally:
        control.stop(run_dir)
