"""KServe's v1 and v2 (Open Inference Protocol) bodies on TorchServe's KServe routes, against
the real server: v1 with plain JSON as KServe documents it, v2 with Triton's HTTP client from
PyPI (the standard OIP client), in JSON and in its binary tensor format."""

from __future__ import annotations

import base64
import io
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests
import tritonclient.http as triton
from PIL import Image
from tritonclient.utils import InferenceServerException

from tests.conftest import CONTENT, STYLE

PHOTO = (CONTENT / "chelsea.png").read_bytes()
STARRY = (STYLE / "starry_night.jpg").read_bytes()
MODEL = "style_transfer"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def v1(server, body, timeout: float = 120) -> requests.Response:
    return requests.post(
        f"{server.inference}/v1/models/{MODEL}:predict", json=body, timeout=timeout
    )


def png_size(text: str) -> tuple[int, int]:
    return Image.open(io.BytesIO(base64.b64decode(text))).size


def test_v1_instances_are_jobs_of_their_own(server):
    """Two good instances (KServe's {"b64": ...} and plain strings, one with two styles) and
    a bad one: the bad one gets its own error, the others their images."""
    body = {
        "instances": [
            {
                "content": {"b64": b64(PHOTO)},
                "style": {"b64": b64(STARRY)},
                "params": {"size": 40, "steps": 2},
            },
            {"content": b64(PHOTO), "style": "not base64 @@", "params": {"size": 40, "steps": 2}},
            {
                "content": b64(PHOTO),
                "style": [b64(STARRY), b64(STARRY)],
                "params": {"size": 48, "steps": 2},
            },
        ]
    }
    reply = v1(server, body)
    assert reply.status_code == 200, reply.text
    first, bad, third = reply.json()["predictions"]
    assert max(png_size(first["image"]["b64"])) == 40 and first["steps"] == 2
    assert bad["status"] == 400 and bad["code"] == "invalid_base64" and bad["field"] == "style"
    assert max(png_size(third["image"]["b64"])) == 48


def test_v1_all_bad_or_malformed_is_a_4xx_json_error(server):
    reply = v1(server, {"instances": [{"content": b64(PHOTO)}]})
    assert reply.status_code == 400
    assert reply.json()["predictions"][0]["field"] == "style"
    empty = v1(server, {"instances": []})
    assert empty.status_code == 400 and "instances" in empty.json()["error"]


def client(server) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(
        server.inference.removeprefix("http://"), network_timeout=120
    )


def tensor(name: str, images: list[bytes], binary: bool) -> triton.InferInput:
    data = triton.InferInput(name, [len(images)], "BYTES")
    data.set_data_from_numpy(np.array([b64(i).encode() for i in images], dtype=object), binary)
    return data


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_v2_with_tritons_client(server, binary):
    inputs = [tensor("content", [PHOTO], binary), tensor("style", [STARRY, STARRY], binary)]
    result = client(server).infer(
        MODEL, inputs, parameters={"size": 40, "steps": 2, "seed": 3}, request_id="oip-1"
    )
    (image,) = result.as_numpy("image")
    assert max(Image.open(io.BytesIO(base64.b64decode(image))).size) == 40
    answer = result.get_response()
    assert answer["id"] == "oip-1" and answer["parameters"]["steps_run"] == 2
    assert answer["outputs"][0]["shape"] == [1]


def test_v2_bad_inputs_are_4xx_oip_errors(server):
    with pytest.raises(InferenceServerException) as caught:
        client(server).infer(MODEL, [tensor("content", [PHOTO], False)], parameters={"size": 40})
    assert caught.value.status() == "400" and "style" in caught.value.message()
    reply = requests.post(
        f"{server.inference}/v2/models/{MODEL}/infer",
        json={"inputs": [{"name": "photo", "datatype": "BYTES", "shape": [1], "data": ["x"]}]},
        timeout=60,
    )
    assert reply.status_code == 400 and "unknown input 'photo'" in reply.json()["error"]


def test_kserve_and_native_requests_share_a_batch(server):
    """A v1 body, a v2 body and a JSON API body in one batch: each gets its own answer."""
    v2_body = {
        "inputs": [
            {"name": "content", "datatype": "BYTES", "shape": [1], "data": [b64(PHOTO)]},
            {"name": "style", "datatype": "BYTES", "shape": [1], "data": [b64(STARRY)]},
        ],
        "parameters": {"size": 32, "steps": 1},
    }
    calls = [
        lambda: v1(
            server,
            {
                "instances": [
                    {
                        "content": b64(PHOTO),
                        "style": b64(STARRY),
                        "params": {"size": 32, "steps": 1},
                    }
                ]
            },
        ),
        lambda: requests.post(
            f"{server.inference}/v2/models/{MODEL}/infer", json=v2_body, timeout=120
        ),
        lambda: requests.post(
            server.predict_url,
            json={"content": b64(PHOTO), "style": b64(STARRY), "params": {"size": 32, "steps": 1}},
            timeout=120,
        ),
    ]
    with ThreadPoolExecutor(3) as pool:
        replies = list(pool.map(lambda call: call(), calls))
    assert [r.status_code for r in replies] == [200, 200, 200], [r.text[:200] for r in replies]
    assert "predictions" in replies[0].json() and "outputs" in replies[1].json()
    assert replies[2].headers["Content-Type"] == "image/png"
