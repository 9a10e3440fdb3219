"""The container's start path, run outside a container (fast, and on machines without podman):
scripts/entrypoint.sh with the image's environment (Dockerfile ENV) and, for Kubernetes, the
Deployment's env and ConfigMap files, their paths moved into a temporary directory and every
port onto free loopback ports. tests/image/ runs the same script inside the built image."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import yaml

import nst_server.mar as build_mar
from tests.conftest import CONTENT, STYLE
from tests.deploy import dockerfile
from tests.live_server import accepted_requests, free_ports

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def deployment_container() -> dict:
    deployment = yaml.safe_load((ROOT / "deploy/k8s/deployment.yaml").read_text())
    return deployment["spec"]["template"]["spec"]["containers"][0]


@dataclass
class Container:
    process: subprocess.Popen
    env: dict[str, str]
    inference: str
    management: str

    def probe(self, check: str) -> int:
        return subprocess.run(
            [sys.executable, str(ROOT / "scripts/healthcheck.py"), check],
            env=self.env,
            cwd=self.env["NST_STATE_DIR"],
            capture_output=True,
            timeout=60,
        ).returncode


def image_environment(tmp: Path, weights: Path, store: Path) -> dict[str, str]:
    """The Dockerfile's ENV with /opt/nst and /home/model-server moved under ``tmp``."""
    moves = {
        "/opt/nst/model-store": str(store),
        "/opt/nst/weights": str(weights.parent),
        "/opt/nst": str(ROOT),
        "/home/model-server": str(tmp / "home"),
    }
    env = {}
    for key, value in dockerfile.env().items():
        for old, new in moves.items():
            value = value.replace(old, new)
        env[key] = value
    env["NST_WEIGHTS"] = str(weights)
    env["PATH"] = f"{VENV_BIN}:{os.environ['PATH']}"  # the image's venv
    for folder in ("NST_STATE_DIR", "LOG_LOCATION"):
        Path(env[folder]).mkdir(parents=True, exist_ok=True)
    # deploy/config.properties names in-container paths and ports: move them (TS_* variables,
    # as enable_envvars_config=true allows) onto this machine's free loopback ports.
    names = ("inference", "management", "metrics")
    ports = free_ports(9)
    for name, port in zip(names, ports):
        env[f"TS_{name.upper()}_ADDRESS"] = f"http://127.0.0.1:{port}"
    env["TS_GRPC_INFERENCE_PORT"], env["TS_GRPC_MANAGEMENT_PORT"] = map(str, ports[3:5])
    env["TS_INITIAL_WORKER_PORT"] = str(ports[5])
    # The key proxy takes the public port; TorchServe's inference API sits behind it.
    env["NST_KEY_PROXY_ADDRESS"] = f"127.0.0.1:{ports[6]}"
    env["NST_TORCHSERVE_ADDRESS"] = f"http://127.0.0.1:{ports[7]}"
    env["TS_METRICS_CONFIG"] = str(ROOT / "nst_server/resources/metrics.yaml")
    env["NST_METRICS_ADDRESS"] = f"127.0.0.1:{ports[8]}"  # the one port Prometheus scrapes
    return {**os.environ, **env}


def start(env: dict[str, str], log: Path) -> Container:
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["sh", str(ROOT / "scripts/entrypoint.sh")],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    public = f"http://{env['NST_KEY_PROXY_ADDRESS']}"
    container = Container(process, env, public, env["TS_MANAGEMENT_ADDRESS"])
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"entrypoint exited {process.returncode}:\n{log.read_text()[-3000:]}")
        if container.probe("ready") == 0:
            return container
        time.sleep(2)
    stop(container)
    pytest.fail(f"not ready in 240 s:\n{log.read_text()[-3000:]}")


def job_line_on_stdout(console: Path, request_id: str, timeout: float = 15) -> dict:
    """The job's JSON line in the entrypoint's output (the container's stdout), as a log
    collector reads it: a whole line that is one JSON object."""
    deadline = time.monotonic() + timeout
    while True:
        for text in console.read_text(errors="replace").splitlines():
            if text.startswith("{") and request_id in text:
                line = json.loads(text)
                if line.get("event") == "job" and line["request_id"] == request_id:
                    return line
        assert time.monotonic() < deadline, f"no job line for {request_id} on stdout"
        time.sleep(0.5)


def stop(container: Container) -> int:
    """SIGTERM the entrypoint only (PID 1 in a container, as Docker and Kubernetes signal
    it); its exit status. Whatever is left afterwards is killed."""
    container.process.send_signal(signal.SIGTERM)
    try:
        return container.process.wait(timeout=120)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(container.process.pid, signal.SIGKILL)


def stylize(
    container: Container, headers: dict[str, str] | None = None, size: str = "64", steps: str = "3"
) -> requests.Response:
    with open(CONTENT / "astronaut.png", "rb") as c, open(STYLE / "starry_night.jpg", "rb") as s:
        return requests.post(
            f"{container.inference}/predictions/style_transfer",
            files={"content": c, "style": s},
            data={"size": size, "steps": steps},
            headers=headers,
            timeout=120,
        )


def grpc_answer(tmp_path: Path, env: dict[str, str]) -> dict:
    """A gRPC Predictions call with a real client (no key can travel with it)."""
    import grpc

    from tests.grpc_stubs import generate

    stubs = generate(tmp_path / "grpc")
    inputs = {
        "content": (CONTENT / "astronaut.png").read_bytes(),
        "style": (STYLE / "starry_night.jpg").read_bytes(),
        "size": b"48",
        "steps": b"2",
    }
    request = stubs.inference.PredictionsRequest(model_name="style_transfer", input=inputs)
    with grpc.insecure_channel(f"127.0.0.1:{env['TS_GRPC_INFERENCE_PORT']}") as channel:
        stub = stubs.inference_grpc.InferenceAPIsServiceStub(channel)
        return json.loads(stub.Predictions(request, timeout=120).prediction)


@pytest.fixture(scope="module")
def image_store(tmp_path_factory, weights_path) -> Path:
    """The .mar as the Dockerfile builds it: repo model-config.yaml, the weights."""
    store = tmp_path_factory.mktemp("image") / "model-store"
    build_mar.build(weights_path, ROOT / "nst_server/resources/model-config.yaml", store)
    return store


TS_KEY_EXPIRY_MIN = 1  # TorchServe's token expiry (default 60 min), shortened


@pytest.mark.slow
def test_image_defaults_generate_a_key_that_outlives_torchserve_expiry_and_stop_cleanly(
    tmp_path, weights_path, image_store
):
    """The image's environment: a key is generated into the state directory, still works
    after TorchServe's token expiry, and SIGTERM during a job answers the job, then exits 0
    within seconds (the Deployment's grace period is 330 s)."""
    env = image_environment(tmp_path, weights_path, image_store)
    env["TS_TOKEN_EXPIRATION_MIN"] = env["TS_TOKEN_EXPIRATION_TIME_MIN"] = str(TS_KEY_EXPIRY_MIN)
    started = time.monotonic()
    container = start(env, tmp_path / "console.log")
    state = Path(env["NST_STATE_DIR"])
    try:
        key_file = Path(env["NST_API_KEYS_FILE"])
        assert key_file.parent == state and key_file.stat().st_mode & 0o077 == 0
        key = key_file.read_text().strip()
        auth = {"Authorization": f"Bearer {key}"}
        assert not (ROOT / "key_file.json").exists() and not (state / "key_file.json").exists()
        assert stylize(container).status_code == 401  # no key
        assert stylize(container, auth).status_code == 200
        time.sleep(max(0.0, started + 60 * TS_KEY_EXPIRY_MIN + 5 - time.monotonic()))
        reply = stylize(container, auth)  # past TorchServe's expiry: the key still works
        assert reply.status_code == 200 and reply.headers["Content-Type"] == "image/png"

        outcome: dict = {}
        job = threading.Thread(
            target=lambda: outcome.update(reply=stylize(container, auth, size="96", steps="60"))
        )
        job.start()
        deadline = time.monotonic() + 30
        while not list(state.glob("busy-*")) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert list(state.glob("busy-*")), "the job never started"
        signalled = time.monotonic()
        status = stop(container)
        stopped_s = time.monotonic() - signalled
        job.join(30)
        print(f"SIGTERM during a job: exit {status} after {stopped_s:.1f} s")
        assert status == 0
        assert outcome["reply"].status_code == 200  # answered before the server went away
        assert int(outcome["reply"].headers["X-NST-Steps"]) == 60
        assert stopped_s < 120
    finally:
        if container.process.poll() is None:
            stop(container)
    assert container.probe("live") == 1  # stopped: nothing answers


@pytest.mark.slow
def test_kubernetes_environment_applies_the_configmap_and_the_secret_keys(
    tmp_path, weights_path, image_store
):
    """The Deployment's env, ConfigMap (config.properties, model-overrides.yaml) and Secret."""
    env = image_environment(tmp_path, weights_path, image_store)
    mounts = {"/etc/nst/config": tmp_path / "config", "/etc/nst/api-keys": tmp_path / "keys"}
    for folder in mounts.values():
        folder.mkdir()
    shutil.copy(ROOT / "deploy/config.properties", mounts["/etc/nst/config"])
    shutil.copy(ROOT / "deploy/k8s/model-overrides.yaml", mounts["/etc/nst/config"])
    (mounts["/etc/nst/api-keys"] / "api-keys").write_text("old-key\nsecret-test-key\n")
    for var in deployment_container()["env"]:
        value = var["value"]
        for mount, folder in mounts.items():
            value = value.replace(mount, str(folder))
        env[var["name"]] = value

    container = start(env, tmp_path / "console.log")
    try:
        rebuilt = Path(env["NST_STATE_DIR"]) / "model-store/style_transfer.mar"
        overrides = yaml.safe_load((ROOT / "deploy/k8s/model-overrides.yaml").read_text())
        assert build_mar.packed_config(rebuilt)["maxBatchDelay"] == overrides["maxBatchDelay"]
        described = requests.get(f"{container.management}/models/style_transfer", timeout=10)
        assert described.json()[0]["maxBatchDelay"] == overrides["maxBatchDelay"]
        assert not (Path(env["NST_STATE_DIR"]) / "key_file.json").exists()

        missing = stylize(container)
        assert missing.status_code == 401 and missing.json()["field"] == "authorization"
        assert missing.headers["WWW-Authenticate"] == "Bearer"
        wrong = stylize(container, {"Authorization": "Bearer not-a-key"})
        assert wrong.status_code == 401 and "not valid" in wrong.json()["message"]
        good = stylize(
            container, {"Authorization": "Bearer secret-test-key", "X-Request-Id": "mine-1"}
        )
        assert good.status_code == 200 and good.content.startswith(b"\x89PNG")
        # kubectl logs: the job's JSON line on stdout, under the id the reply carries.
        job = job_line_on_stdout(tmp_path / "console.log", good.headers["x-request-id"])
        assert job["client_request_id"] == "mine-1" and job["status"] == 200
        # The annotated metrics port: the workers' histograms and TorchServe's own series.
        scraped = requests.get(f"http://{env['NST_METRICS_ADDRESS']}/metrics", timeout=10).text
        assert "nst_job_seconds_count" in scraped and "ts_inference_requests_total" in scraped
        # The key proxy answered the keyless ones: TorchServe's queue saw only the keyed one.
        metrics = requests.get(f"{env['TS_METRICS_ADDRESS']}/metrics", timeout=10).text
        assert accepted_requests(metrics) == 1
        # The describe call asks for the key too; gRPC cannot carry one and is refused.
        url = f"{container.management}/models/style_transfer?customized=true"
        described = requests.get(url, headers={"Authorization": "Bearer secret-test-key"})
        assert described.json()[0]["customizedMetadata"]["limits"]["max_styles"] >= 1
        keyless = requests.get(url, timeout=30).json()[0]["customizedMetadata"]
        assert keyless["error"] == "unauthorized"
        assert grpc_answer(tmp_path, env)["error"] == "unauthorized"
        # deploy/log4j2.xml is in effect: INFO, not TorchServe's DEBUG, in the log folder.
        logs = Path(env["LOG_LOCATION"])
        ts_log = (logs / "ts_log.log").read_text()
        assert "[INFO ]" in ts_log and "[DEBUG]" not in ts_log
        assert "[DEBUG]" not in (logs / "model_log.log").read_text()
    finally:
        stop(container)
