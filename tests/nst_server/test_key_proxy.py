"""The key-checking front door (nst-auth-gate --upstream) before the session's real
TorchServe: keyless requests never reach its queue, keyed ones pass, streams included."""

from __future__ import annotations

import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.conftest import CONTENT, STYLE
from tests.live_server import accepted_requests, start_gate

PHOTO = (CONTENT / "chelsea.png").read_bytes()
STARRY = (STYLE / "starry_night.jpg").read_bytes()
KEY = "proxy-test-key"


@pytest.fixture(scope="module")
def proxy(server, tmp_path_factory):
    keys = tmp_path_factory.mktemp("proxy") / "api-keys"
    keys.write_text(f"# the test's key\n{KEY}\n")
    process, url = start_gate(
        keys, "--upstream", server.inference, "--management", server.management
    )
    yield url
    process.terminate()
    assert process.wait(timeout=10) == 0


def post(url: str, headers=None, **fields) -> requests.Response:
    return requests.post(
        f"{url}/predictions/style_transfer",
        files={"content": ("c.png", PHOTO), "style": ("s.jpg", STARRY)},
        data={"size": "48", "steps": "2", **fields},
        headers=headers,
        timeout=120,
    )


AUTH = {"Authorization": f"Bearer {KEY}"}


def test_keyless_uploads_never_reach_torchserve_and_keyed_ones_are_served(server, proxy):
    before = accepted_requests(server.metrics_text())
    with ThreadPoolExecutor(13) as pool:
        keyless = [pool.submit(post, proxy) for _ in range(12)]
        keyed = pool.submit(post, proxy, AUTH)
        statuses = [f.result().status_code for f in keyless]
        answer = keyed.result()
    assert statuses == [401] * 12
    assert answer.status_code == 200 and answer.content.startswith(b"\x89PNG")
    assert answer.headers["X-NST-Steps"] == "2"
    assert accepted_requests(server.metrics_text()) - before == 1  # only the keyed request got in
    wrong = post(proxy, {"Authorization": "Bearer # the test's key"})
    assert wrong.status_code == 401 and wrong.json()["field"] == "authorization"
    assert wrong.headers["WWW-Authenticate"] == "Bearer"
    assert requests.get(f"{proxy}/ping", timeout=10).status_code == 200  # no key needed


def test_a_keyless_large_body_is_refused_before_it_is_sent(proxy):
    """curl's ``Expect: 100-continue`` for a 30 MB upload: 401 at once, no 100 Continue, and
    the connection is closed without waiting for the body."""
    host, port = proxy.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /predictions/style_transfer HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\n"
            b"Content-Length: 30000000\r\nExpect: 100-continue\r\n\r\n"
        )
        started = time.monotonic()
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 401") and b"100 Continue" not in reply
    assert time.monotonic() - started < 5


def test_a_stream_passes_line_by_line(proxy):
    with requests.post(
        f"{proxy}/predictions/style_transfer",
        files={"content": ("c.png", PHOTO), "style": ("s.jpg", STARRY)},
        data={"size": "48", "steps": "6", "stream": "true", "preview_every": "1"},
        headers=AUTH,
        stream=True,
        timeout=120,
    ) as reply:
        assert reply.status_code == 200
        assert reply.headers["Content-Type"].startswith("application/x-ndjson")
        lines = [json.loads(line) for line in reply.iter_lines() if line]
    assert lines[0]["type"] == "progress" and lines[-1]["type"] == "result"


def test_kserve_metadata_and_readiness_answer_on_the_inference_port(proxy):
    """What TorchServe keeps on its loopback management API, on the public port: the OIP
    metadata with the limits, defaults and capacity a client sizes its requests by."""
    import tritonclient.http as triton

    from tests.live_server import TEST_MODEL_CONFIG

    limits = TEST_MODEL_CONFIG["handler"]
    client = triton.InferenceServerClient(proxy.removeprefix("http://"))
    meta = client.get_model_metadata("style_transfer", headers=AUTH)
    assert [i["name"] for i in meta["inputs"]] == ["content", "style", "mask", "init_image"]
    assert meta["outputs"] == [{"name": "image", "shape": [1], "datatype": "BYTES"}]
    assert meta["limits"]["max_size"] == limits["max_size"]
    assert meta["parameters"]["size"]["default"] == limits["defaults"]["size"]
    assert meta["capacity"] == {"batch_size": TEST_MODEL_CONFIG["batchSize"], "workers": 1}
    assert client.is_model_ready("style_transfer", headers=AUTH)
    assert client.is_server_live() and client.is_server_ready()  # probes: no key
    v1 = requests.get(f"{proxy}/v1/models/style_transfer", headers=AUTH, timeout=30)
    assert v1.json() == {"name": "style_transfer", "ready": True}
    keyless = requests.get(f"{proxy}/v2/models/style_transfer", timeout=30)
    assert keyless.status_code == 401
    # nst-client's folder mode sizes its requests in flight by it, without the management API
    from nst_client.cli import server_capacity

    assert server_capacity(proxy, None, KEY) == TEST_MODEL_CONFIG["batchSize"]
    other = requests.get(f"{proxy}/v2/models/another", headers=AUTH, timeout=30)
    assert other.status_code == 404 and other.json()["error"] == "unknown_model"
