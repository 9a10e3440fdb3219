"""The async jobs API (nst_server/jobs) beside a real TorchServe: submit, follow, fetch,
cancel inside the worker, idempotent retries, the same 4xx as the synchronous API."""

from __future__ import annotations

import base64
import io
import re
import time
from pathlib import Path

import pytest
import requests
import yaml
from jsonschema import Draft202012Validator
from PIL import Image
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from docgen.openapi import CONTRACT
from tests.conftest import CONTENT, STYLE
from tests.live_server import metric_value

ASTRONAUT = (CONTENT / "astronaut.png").read_bytes()
STARRY = (STYLE / "starry_night.jpg").read_bytes()
FILES = {"content": ("content.png", ASTRONAUT), "style": ("style.jpg", STARRY)}


def job_schema() -> Draft202012Validator:
    """The contract's Job schema (docs/openapi.yaml)."""
    spec = yaml.safe_load(CONTRACT.read_text())
    registry = Registry().with_resource(
        "urn:contract", Resource.from_contents(spec, default_specification=DRAFT202012)
    )
    return Draft202012Validator({"$ref": "urn:contract#/components/schemas/Job"}, registry=registry)


def submit(server, headers=None, **fields) -> requests.Response:
    return requests.post(
        f"{server.jobs}/v1/jobs", files=FILES, data=fields, headers=headers, timeout=60
    )


def ended(job: dict) -> bool:
    return job["status"] in ("succeeded", "failed", "cancelled")


def follow(
    url: str, job_id: str, done=ended, timeout: float = 120.0, headers: dict | None = None
) -> dict:
    """Poll the jobs API at ``url`` (long-polling) until ``done(job)``; the job."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reply = requests.get(f"{url}/v1/jobs/{job_id}?wait=5", headers=headers, timeout=30)
        job = reply.json()
        if done(job):
            return job
    raise AssertionError(f"job {job_id} never got there: {job}")


def wait_until(server, job_id: str, done=ended, timeout: float = 120.0) -> dict:
    """:func:`follow` on the session server's jobs API."""
    return follow(server.jobs, job_id, done, timeout)


def test_a_submitted_job_runs_and_its_result_is_fetched(server):
    reply = submit(server, size="64", steps="6")
    assert reply.status_code == 202, reply.text
    job = reply.json()
    assert job["status"] in ("queued", "running")
    assert reply.headers["Location"] == f"/v1/jobs/{job['id']}"
    done = wait_until(server, job["id"], ended)
    assert done["status"] == "succeeded", done
    for answer in (job, done):
        job_schema().validate(answer)  # as the contract says
    assert done["progress"]["step"] == 6 and done["result"]["steps_run"] == 6
    assert done["started_at"] and done["finished_at"] >= done["started_at"]
    image = requests.get(f"{server.jobs}{done['result']['url']}", timeout=30)
    assert image.status_code == 200
    assert image.headers["Content-Type"] == "image/png" and image.headers["X-NST-Steps"] == "6"
    assert Image.open(io.BytesIO(image.content)).size == (64, 64)
    service = jobs_service_pid(server)  # it checked and relayed the job without torch
    assert resident_mb(service) < 200
    assert "libtorch" not in Path(f"/proc/{service}/maps").read_text()


def jobs_service_pid(server) -> int:
    """The jobs API process beside ``server`` (started with ``--address HOST:PORT``)."""
    address = server.jobs.removeprefix("http://")
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"nst_server.jobs" in args and address.encode() in args:
            return int(entry.name)
    raise AssertionError(f"no jobs service on {address}")


def resident_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status)[1]) / 1024


def test_a_json_submit_runs_too(server):
    body = {
        "content": base64.b64encode(ASTRONAUT).decode(),
        "style": [base64.b64encode(STARRY).decode()],
        "params": {"size": 48, "steps": 3, "format": "jpeg"},
    }
    reply = requests.post(f"{server.jobs}/v1/jobs", json=body, timeout=60)
    assert reply.status_code == 202, reply.text
    done = wait_until(server, reply.json()["id"], ended)
    assert done["status"] == "succeeded", done
    image = requests.get(f"{server.jobs}{done['result']['url']}", timeout=30)
    assert image.headers["Content-Type"] == "image/jpeg"
    assert Image.open(io.BytesIO(image.content)).size == (48, 48)


@pytest.mark.parametrize(
    "fields",
    [
        {"steps": "-1"},
        {"size": "100000"},
        {"style_loss": "nope"},
        {"colour": "red"},
        {"content_layers": "relu5_2"},  # deeper than the served weights (conv5_1)
    ],
)
def test_bad_input_gets_the_synchronous_apis_error_at_submit(server, fields):
    jobs = submit(server, **fields)
    direct = requests.post(server.predict_url, files=FILES, data=fields, timeout=60)
    assert jobs.status_code == direct.status_code and 400 <= jobs.status_code < 500
    assert jobs.json() == direct.json()


def test_a_missing_image_is_refused_at_submit(server):
    reply = requests.post(f"{server.jobs}/v1/jobs", files={"content": FILES["content"]}, timeout=60)
    assert reply.status_code == 400 and reply.json()["field"] == "style"


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"--xyz\r\nnot a part", "multipart/form-data; boundary=xyz"),
        (b"{not json", "application/json"),
        (b"", "application/json"),
    ],
)
def test_a_body_that_cannot_be_read_is_a_400_json(server, body, content_type):
    reply = requests.post(
        f"{server.jobs}/v1/jobs", data=body, headers={"Content-Type": content_type}, timeout=30
    )
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"] in ("malformed_body", "missing_field")


def test_the_same_idempotency_key_gives_one_job(server):
    headers = {"Idempotency-Key": f"retry-{time.time()}"}
    first = submit(server, headers=headers, size="48", steps="2")
    again = submit(server, headers=headers, size="48", steps="2")
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    other = submit(server, headers=headers, size="48", steps="3")
    assert other.status_code == 422 and other.json()["error"] == "idempotency_key_reused"
    wait_until(server, first.json()["id"], ended)


def test_unknown_jobs_are_404_json(server):
    for method in ("get", "delete"):
        reply = requests.request(method, f"{server.jobs}/v1/jobs/0123abcd", timeout=10)
        assert reply.status_code == 404 and reply.json()["error"] == "not_found"
    reply = requests.get(f"{server.jobs}/v1/jobs/0123abcd/result", timeout=10)
    assert reply.status_code == 404


def test_a_cancelled_running_job_stops_in_the_worker_and_its_batch_mate_finishes(server):
    pids = server.worker_pids()
    long = submit(server, size="96", steps="400").json()
    mate = submit(server, size="96", steps="25").json()
    running = wait_until(server, long["id"], lambda j: j["progress"]["step"] > 0 or ended(j))
    assert running["status"] == "running", running
    early = requests.get(f"{server.jobs}/v1/jobs/{long['id']}/result", timeout=10)
    assert early.status_code == 409 and early.json()["error"] == "no_result"
    asked = time.monotonic()
    reply = requests.delete(f"{server.jobs}/v1/jobs/{long['id']}", timeout=10)
    assert reply.status_code in (200, 202)
    job_schema().validate(reply.json())
    stopped = wait_until(server, long["id"], ended, timeout=60)
    job_schema().validate(stopped)
    assert time.monotonic() - asked < 20
    assert stopped["status"] == "cancelled", stopped
    assert 0 < stopped["result"]["steps_run"] < 400
    image = requests.get(f"{server.jobs}/v1/jobs/{long['id']}/result", timeout=10)
    assert image.status_code == 200 and image.headers["X-NST-Stopped"] == "cancelled"
    other = wait_until(server, mate["id"], ended)
    assert other["status"] == "succeeded" and other["result"]["steps_run"] == 25
    assert server.worker_pids() == pids  # the worker lived on
    assert not list(server.state_dir.glob("cancel-*"))  # markers are cleared


def test_the_queue_is_on_the_services_metrics(server):
    done = wait_until(server, submit(server, size="48", steps="2").json()["id"], ended)
    assert done["status"] == "succeeded"
    text = requests.get(f"{server.jobs}/metrics", timeout=10).text
    assert metric_value(text, "nst_jobs_ended_total") >= 1
    assert 'nst_jobs{status="queued"}' in text
    waits = re.search(r"^nst_job_queue_wait_seconds_count ([0-9.e+]+)$", text, re.M)
    assert waits is not None and float(waits.group(1)) >= 1


def test_the_python_client_submits_waits_and_fetches(server):
    from nst_client import Client, InvalidRequest

    client = Client(server.inference, jobs_url=server.jobs)
    key = f"client-{time.time()}"
    job = client.submit(ASTRONAUT, STARRY, size=48, steps=3, idempotency_key=key)
    assert client.submit(ASTRONAUT, STARRY, size=48, steps=3, idempotency_key=key).id == job.id
    result = job.result()
    assert job.status == "succeeded"
    assert result.steps_run == 3 and result.image.size == (48, 48) and result.stopped is None
    with pytest.raises(InvalidRequest) as refused:
        client.submit(ASTRONAUT, STARRY, steps=-2)
    assert refused.value.field == "steps"
