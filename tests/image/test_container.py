"""The server image, built with podman and run as deploy/k8s/deployment.yaml runs it.

``make test-image`` (and CI) runs these; plain ``pytest`` leaves them out (marker ``image``).
The container runs as the Deployment's user, on a read-only root filesystem with the same
writable mounts, the config files and the key Secret mounted read-only, the same environment,
and its inference and metrics ports published on loopback. The tests run in file order: the
last stops the shared container with SIGTERM while a job runs.
"""

from __future__ import annotations

import dataclasses
import io
import json
import secrets
import threading
import time
from pathlib import Path

import pytest
import requests
import yaml
from PIL import Image

from tests.conftest import CONTENT, STYLE
from tests.image import podman
from tests.image.report import FIGURES
from tests.live_server import free_ports
from tests.nst_server.test_jobs import follow

pytestmark = pytest.mark.image

ROOT = Path(__file__).resolve().parents[2]
MAX_SIZE = 320  # the test's model-config override: proves the mounted file is applied
KEY = secrets.token_urlsafe(24)


@pytest.fixture(scope="module")
def image() -> str:
    FIGURES["build_s"] = podman.build(log=ROOT / "out/image-build.log")
    FIGURES["image_gb"] = podman.inspect_image()["Size"] / 1e9
    return podman.IMAGE


@pytest.fixture(scope="module")
def spec() -> podman.PodSpec:
    return podman.PodSpec.from_deployment()


def config_files(spec: podman.PodSpec) -> dict[str, dict[str, str]]:
    """The ConfigMap (deploy/kustomization.yaml's files) and the key Secret, as file texts."""
    override = yaml.safe_load((ROOT / "deploy/k8s/model-overrides.yaml").read_text())
    override["handler"].update(max_size=MAX_SIZE, defaults={"size": 128, "steps": 20})  # CPU
    return {
        "config": {
            "config.properties": (ROOT / "deploy/config.properties").read_text(),
            "model-overrides.yaml": yaml.safe_dump(override),
        },
        "api-keys": {"api-keys": f"{secrets.token_urlsafe(24)}\n{KEY}\n"},
    }


def start(spec: podman.PodSpec, tmp: Path, name: str) -> podman.Container:
    volumes = podman.prepare_volumes(spec, tmp, config_files(spec))
    ports = dict(zip(("http", "metrics", "histograms", "jobs"), free_ports(4)))
    # One container and no Redis here: the jobs API keeps its store in the state folder.
    alone = dataclasses.replace(
        spec, env={k: v for k, v in spec.env.items() if k != "NST_JOBS_STORE"}
    )
    return podman.run(f"nst-image-test-{name}-{secrets.token_hex(3)}", alone, volumes, ports)


def ready_within(image: str) -> float:
    """The HEALTHCHECK's start period: how long the image says it may take to get ready."""
    return podman.inspect_image(image)["Healthcheck"]["StartPeriod"] / 1e9


@pytest.fixture(scope="module")
def container(image, spec, tmp_path_factory):
    box = start(spec, tmp_path_factory.mktemp("pod"), "first")
    yield box
    box.remove()


def stylize(box: podman.Container, key: str | None = KEY, **fields) -> requests.Response:
    files = {
        "content": (CONTENT / "chelsea.png").read_bytes(),
        "style": (STYLE / "starry_night.jpg").read_bytes(),
    }
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    data = {"size": 96, "steps": 5, **fields}
    return requests.post(
        f"{box.url('http')}/predictions/style_transfer",
        files=files,
        data=data,
        headers=headers,
        timeout=300,
    )


def test_becomes_ready_within_its_healthcheck_start_period(image, container):
    limit = ready_within(image)
    FIGURES["ready_s"] = container.wait_healthy(timeout=limit)
    assert FIGURES["ready_s"] < limit


def test_a_request_returns_a_png_of_the_asked_size(container):
    reply = stylize(container, size=120, steps=5)
    assert reply.status_code == 200, reply.text
    assert reply.headers["Content-Type"] == "image/png"
    image = Image.open(io.BytesIO(reply.content))
    assert image.format == "PNG" and max(image.size) == 120
    # podman logs (kubectl logs): the job's JSON line, under the id the reply carries.
    request_id = reply.headers["x-request-id"]
    deadline = time.monotonic() + 20
    jobs = job_lines(container.logs(last=0), request_id)
    while not jobs and time.monotonic() < deadline:
        time.sleep(0.5)
        jobs = job_lines(container.logs(last=0), request_id)
    assert [(j["status"], j["size"]) for j in jobs] == [(200, 120)]


def job_lines(logs: str, request_id: str) -> list[dict]:
    """The whole lines of the container's output that are a job's JSON object."""
    found = []
    for text in logs.splitlines():
        if text.startswith('{"') and request_id in text:
            line = json.loads(text)
            if line.get("event") == "job" and line["request_id"] == request_id:
                found.append(line)
    return found


def test_an_async_job_runs_with_the_key_and_is_on_the_scraped_port(container):
    """The jobs API the image runs beside TorchServe: the same key, a job that runs and its
    image; its series on the port the pod annotation names."""
    jobs = container.url("jobs")
    files = {"content": (CONTENT / "chelsea.png").read_bytes()}
    files["style"] = (STYLE / "starry_night.jpg").read_bytes()
    refused = requests.post(f"{jobs}/v1/jobs", files=files, timeout=60)
    assert refused.status_code == 401 and refused.json()["error"] == "unauthorized"
    headers = {"Authorization": f"Bearer {KEY}"}
    reply = requests.post(
        f"{jobs}/v1/jobs", files=files, data={"size": 64, "steps": 3}, headers=headers, timeout=60
    )
    assert reply.status_code == 202, reply.text
    job = follow(jobs, reply.json()["id"], headers=headers)
    assert job["status"] == "succeeded", job
    image = requests.get(f"{jobs}/v1/jobs/{job['id']}/result", headers=headers, timeout=30)
    assert image.status_code == 200 and max(Image.open(io.BytesIO(image.content)).size) == 64
    scraped = requests.get(f"{container.url('histograms')}/metrics", timeout=10).text
    assert 'nst_jobs_ended_total{status="succeeded"}' in scraped


def test_bad_requests_get_their_4xx_with_the_field(container):
    not_image = requests.post(
        f"{container.url('http')}/predictions/style_transfer",
        files={"content": b"not an image", "style": (STYLE / "starry_night.jpg").read_bytes()},
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=60,
    )
    assert not_image.status_code == 400
    assert not_image.json()["field"] == "content"
    too_big = stylize(container, size=MAX_SIZE + 16)  # the mounted override's limit
    assert too_big.status_code == 400 and too_big.json()["field"] == "size"
    assert str(MAX_SIZE) in too_big.json()["message"]


def test_only_requests_with_a_key_from_the_secret_are_served(container):
    assert stylize(container, key=None).status_code == 401
    wrong = stylize(container, key="not-" + KEY)
    assert wrong.status_code == 401 and wrong.json()["error"] == "unauthorized"
    assert stylize(container).status_code == 200


def test_metrics_show_the_custom_metrics(container):
    declared = yaml.safe_load((ROOT / "nst_server/resources/metrics.yaml").read_text())[
        "model_metrics"
    ]
    names = [m["name"] for kind in declared.values() for m in kind]
    text = requests.get(f"{container.url('metrics')}/metrics", timeout=30).text
    assert names and all(f"# TYPE {name} " in text for name in names), text[-2000:]
    served = [line for line in text.splitlines() if line.startswith("nst_jobs_total{")]
    assert served and any('outcome="ok"' in line for line in served)
    # The port the pod's prometheus.io/port names serves every series, TorchServe's included.
    annotated = requests.get(f"{container.url('histograms')}/metrics", timeout=30).text
    assert "# TYPE nst_job_seconds histogram" in annotated
    assert 'nst_job_seconds_count{outcome="ok",size_class="256"}' in annotated
    assert all(f"# TYPE {name} " in annotated for name in names)
    assert "ts_inference_requests_total" in annotated and "nst_torchserve_metrics_up 1" in annotated


def test_the_mounted_model_config_override_is_what_torchserve_runs(container):
    override = yaml.safe_load((ROOT / "deploy/k8s/model-overrides.yaml").read_text())
    management = "http://127.0.0.1:8081/models/style_transfer"  # loopback inside only
    probe = f"import urllib.request; print(urllib.request.urlopen({management!r}).read().decode())"
    described = container.exec("python", "-c", probe)
    assert described.returncode == 0, described.stderr
    model = yaml.safe_load(described.stdout)[0]
    assert model["batchSize"] == override["batchSize"]
    assert model["maxBatchDelay"] == override["maxBatchDelay"]


def test_every_process_runs_as_the_images_user(image, spec, container):
    image_uid = int(podman.inspect_image(image)["User"].split(":")[0])
    assert image_uid == spec.user  # the Deployment's runAsUser is the image's own user
    users = container.process_users()
    assert len(users) >= 3 and set(users) == {str(image_uid)}  # shell, java, worker


def test_nothing_is_written_outside_the_writable_mounts(spec, container):
    points = [path for path, _ in spec.mounts.values()]
    made_for_mounts = {parent for p in points for parent in [p, *map(str, Path(p).parents)]}
    unexpected = [path for path in container.changed_paths() if path not in made_for_mounts]
    assert unexpected == []  # only the mount points themselves (made by the runtime)
    logs = container.volumes["logs"]
    assert (logs / "model_log.log").is_file()  # the logs went to their mount


def test_sigterm_during_a_job_answers_it_then_exits_0(spec, container):
    replies: list[requests.Response] = []
    job = threading.Thread(target=lambda: replies.append(stylize(container, size=200, steps=60)))
    job.start()
    state = container.volumes["state"]
    deadline = time.monotonic() + 60
    while not list(state.glob("busy-*")) and time.monotonic() < deadline:
        time.sleep(0.2)  # the handler marks its worker busy once the batch starts
    assert list(state.glob("busy-*")), "the job never started"
    seconds, status = container.stop()
    job.join(timeout=60)
    FIGURES["stop_s"] = seconds
    assert replies and replies[0].status_code == 200, replies and replies[0].text
    assert Image.open(io.BytesIO(replies[0].content)).size[0] == 200
    assert status == 0
    assert seconds < spec.grace_s / 2, f"stopped after {seconds:.0f} s"
    assert "entrypoint: stopped" in container.logs()


def test_the_stopped_container_starts_again_with_its_volumes(image, container):
    """A container restart in the same pod: the emptyDirs keep the last run's files."""
    container.restart()
    FIGURES["restart_ready_s"] = container.wait_healthy(timeout=ready_within(image))
    reply = stylize(container)
    assert reply.status_code == 200, reply.text


def test_a_new_container_from_the_same_image_serves_again(image, spec, tmp_path):
    box = start(spec, tmp_path, "again")
    try:
        FIGURES["new_container_ready_s"] = box.wait_healthy(timeout=ready_within(image))
        reply = stylize(box)
        assert reply.status_code == 200, reply.text
    finally:
        box.remove()
