"""The paths into the handler besides a plain HTTP request, against the real TorchServe: the
management API's describe call, a client's ``describe`` header, and TorchServe's gRPC API
called with a real gRPC client built from TorchServe's own protos."""

from __future__ import annotations

import contextlib
import io
import json
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
import requests
from PIL import Image

from tests.conftest import CONTENT, STYLE
from tests.grpc_stubs import generate
from tests.live_server import run_probe, running_server

PHOTO = (CONTENT / "chelsea.png").read_bytes()
STARRY = (STYLE / "starry_night.jpg").read_bytes()


@pytest.fixture(scope="module")
def stubs(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("grpc"))


@pytest.fixture(scope="module")
def inference(server, stubs):
    with grpc.insecure_channel(server.grpc_inference) as channel:
        yield stubs.inference_grpc.InferenceAPIsServiceStub(channel)


def grpc_request(stubs, **fields):
    inputs = {"content": PHOTO, "style": STARRY, "size": b"48", "steps": b"2"}
    inputs.update({k: v if isinstance(v, bytes) else str(v).encode() for k, v in fields.items()})
    return stubs.inference.PredictionsRequest(model_name="style_transfer", input=inputs)


def post(server, headers=None, **fields):
    data = {"size": "48", "steps": "2", **fields}
    return requests.post(
        server.predict_url,
        files={"content": ("c.png", PHOTO), "style": ("s.jpg", STARRY)},
        data=data,
        headers=headers,
        timeout=120,
    )


def metadata(description: dict) -> dict:
    """The handler's part of a model description (TorchServe may give it parsed or as text)."""
    custom = description["customizedMetadata"]
    return json.loads(custom) if isinstance(custom, str) else custom


def test_a_describe_header_on_inference_requests_leaves_each_its_own_answer(server):
    """Any client can send ``describe: True``: every request of the batch still gets its own
    answer (not one description for the batch, which TorchServe turns into 503s)."""
    pid = server.worker_pids()
    with ThreadPoolExecutor(3) as pool:
        replies = list(
            pool.map(
                lambda steps: post(server, {"describe": "True"}, steps=steps), ["2", "3", "ten"]
            )
        )
    assert [r.status_code for r in replies] == [200, 200, 400]
    assert replies[0].content.startswith(b"\x89PNG") and replies[1].content.startswith(b"\x89PNG")
    assert replies[2].json()["field"] == "steps"
    assert server.worker_pids() == pid


def test_the_management_describe_call_still_gets_the_limits(server):
    reply = requests.get(f"{server.management}/models/style_transfer?customized=true", timeout=30)
    assert reply.status_code == 200
    custom = metadata(reply.json()[0])
    assert custom["limits"]["max_size"] == 256 and "size" in custom["parameters"]


def test_grpc_predictions_answer_like_http_and_refuse_a_stream(server, stubs, inference):
    pid = server.worker_pids()
    good = inference.Predictions(grpc_request(stubs), timeout=120)
    assert Image.open(io.BytesIO(good.prediction)).size == (48, 32)
    bad = inference.Predictions(grpc_request(stubs, steps="ten"), timeout=120)
    bad = json.loads(bad.prediction)
    assert bad["error"] == "invalid_parameter" and bad["field"] == "steps"
    # stream=true once killed the worker (the frontend closed the unary call at the first
    # progress line); it is refused, the worker lives on and HTTP keeps working.
    refused = inference.Predictions(grpc_request(stubs, stream="true"), timeout=120)
    assert json.loads(refused.prediction)["field"] == "stream"
    assert post(server).status_code == 200
    assert server.worker_pids() == pid


def test_grpc_stream_predictions_give_one_final_message(server, stubs, inference):
    messages = list(inference.StreamPredictions(grpc_request(stubs), timeout=120))
    assert len(messages) == 1 and messages[0].prediction.startswith(b"\x89PNG")
    assert post(server).status_code == 200


def test_grpc_describe_model_gets_the_limits(server, stubs):
    with grpc.insecure_channel(server.grpc_management) as channel:
        management = stubs.management_grpc.ManagementAPIsServiceStub(channel)
        reply = management.DescribeModel(
            stubs.management.DescribeModelRequest(model_name="style_transfer", customized=True),
            timeout=60,
        )
    custom = metadata(json.loads(reply.msg)[0])
    assert custom["limits"]["max_styles"] == 3


def test_a_long_field_name_is_echoed_only_as_a_short_prefix(server):
    """A 100 KB parameter name (form and JSON) beside a good request: the error names a short
    prefix of it, and no log line carries more than that."""
    name = "z" * 100_000
    marker = "long-name-test"

    def form() -> requests.Response:
        return post(server, {"X-Request-Id": marker}, **{name: "1"})

    def as_json() -> requests.Response:
        body = {"content": "aGk=", "style": "aGk=", "params": {name: 1}}
        return requests.post(server.predict_url, json=body, timeout=120)

    pid = server.worker_pids()
    with ThreadPoolExecutor(3) as pool:
        replies = [pool.submit(form), pool.submit(post, server), pool.submit(as_json)]
        replies = [r.result() for r in replies]
    assert [r.status_code for r in replies] == [400, 200, 400]
    for reply in (replies[0], replies[2]):
        assert len(reply.content) < 2000 and reply.json()["field"].startswith("zzz")
    assert server.worker_pids() == pid
    logs = "".join(p.read_text(errors="replace") for p in server.log_dir.glob("*.log"))
    assert marker in logs and "z" * 200 not in logs


@pytest.fixture
def throwaway_server(tmp_path_factory, weights_path):
    """A server of its own, for a test that leaves its worker dead."""
    yield from running_server(tmp_path_factory.mktemp("throwaway"), weights_path)


@pytest.mark.slow
def test_a_worker_the_frontend_loses_is_seen_by_the_probes(throwaway_server, stubs):
    """TorchServe 0.12 loses the worker for good when a ``StreamPredictions2`` client closes
    its side before the answer (the frontend's thread fails on the closed call; the worker
    process exits and is never restarted) while the management API keeps listing it READY.
    The probes look at the process: both fail, so the liveness probe restarts the container."""
    server = throwaway_server

    def probe(check: str) -> int:
        return run_probe(check, server.management).returncode

    assert probe("ready") == 0 and probe("live") == 0
    request = grpc_request(stubs)
    request.sequence_id = "one-shot"
    with grpc.insecure_channel(server.grpc_inference) as channel:
        stub = stubs.inference_grpc.InferenceAPIsServiceStub(channel)
        with contextlib.suppress(grpc.RpcError):
            list(stub.StreamPredictions2(iter([request]), timeout=60))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and probe("ready") == 0:
        time.sleep(1)
    workers = requests.get(f"{server.management}/models/style_transfer", timeout=10).json()
    print("listed after the loss:", [(w["pid"], w["status"]) for w in workers[0]["workers"]])
    assert probe("ready") == 1 and probe("live") == 1


def test_sagemaker_invocations_route_is_served(server):
    """TorchServe's ``/invocations?model_name=...`` passes its routing query on as an input."""
    reply = requests.post(
        f"{server.inference}/invocations?model_name=style_transfer",
        files={"content": ("c.png", PHOTO), "style": ("s.jpg", STARRY)},
        data={"size": "48", "steps": "2"},
        timeout=120,
    )
    assert reply.status_code == 200 and reply.content.startswith(b"\x89PNG")
