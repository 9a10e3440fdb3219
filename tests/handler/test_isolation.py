"""Isolation inside one batch, in-process (a real ``ts.context.Context``, the real engine and
weights, no server): whatever one request does or whatever fails while serving it, every
other request of the batch gets its own correct reply. Device faults are injected, so the
GPU paths (out of memory, a poisoned CUDA context) are exercised on the CPU."""

from __future__ import annotations

import base64
import io
import json

import pytest
import torch
from PIL import Image
from ts.context import Context, RequestProcessor

import handler.faults
import handler.style_transfer_handler as module
from handler.style_transfer_handler import StyleTransferHandler
from tests.conftest import CONTENT, STYLE

PHOTO = (CONTENT / "chelsea.png").read_bytes()
STARRY = (STYLE / "starry_night.jpg").read_bytes()
HTTP_HEADERS = {"Host": "localhost", "Content-Length": "1"}  # what every HTTP request has
CONFIG = {
    "batchSize": 8,
    "responseTimeout": 120,
    "handler": {
        "max_size": 128,
        "max_steps": 50,
        "max_styles": 3,
        "deadline_margin_s": 30,
        "defaults": {"size": 32, "steps": 2},
    },
}


@pytest.fixture(scope="module")
def worker(weights_path):
    handler = StyleTransferHandler()
    handler.initialize(make_context(weights_path, 0))
    return handler


def make_context(weights_path, count: int, metrics=None, headers=None) -> Context:
    context = Context(
        "style_transfer",
        str(weights_path.parent),
        {"model": {"serializedFile": weights_path.name}},
        count,
        None,
        "0.12.0",
        metrics=metrics,
        model_yaml_config=CONFIG,
    )
    context.request_processor = [
        RequestProcessor({**HTTP_HEADERS, **(headers or {}).get(i, {})}) for i in range(count)
    ]
    context.request_ids = {i: f"req-{i}" for i in range(count)}
    return context


def multipart(content=PHOTO, style=STARRY, **fields) -> dict:
    request = {"content": bytearray(content), "style": bytearray(style)}
    request.update({k: bytearray(str(v).encode()) for k, v in fields.items()})
    return request


def run(worker, weights_path, requests: list[dict], metrics=None):
    context = make_context(weights_path, len(requests), metrics)
    bodies = worker.handle(requests, context)
    assert len(bodies) == len(requests)
    statuses = [p.get_response_status_code() for p in context.request_processor]
    return statuses, bodies, context


def ok_image(body: bytes, size=(32, 21)) -> bool:
    return Image.open(io.BytesIO(body)).size == size


def test_good_and_bad_requests_in_one_batch(worker, weights_path):
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\nshowpage\n"
    requests = [
        multipart(seed=1),
        multipart(content=eps),
        {
            "body": {
                "content": base64.b64encode(PHOTO).decode(),
                "style": base64.b64encode(STARRY).decode(),
                "params": {"style_layers": [["relu1_1"]]},
            }
        },
        multipart(style_weights="1e308,1e308", seed=2, style_2=STARRY),
        multipart(seed=3),
    ]
    requests[3]["style_2"] = bytearray(STARRY)
    statuses, bodies, _ = run(worker, weights_path, requests)
    assert statuses == [200, 400, 400, 400, 200]
    assert ok_image(bodies[0]) and ok_image(bodies[4])
    errors = [json.loads(b) for b in bodies[1:4]]
    assert [e["field"] for e in errors] == ["content", "style_layers", "style_weights"]


def test_every_reply_is_observed_in_the_histograms_by_outcome_and_size(worker, weights_path):
    value = worker.histograms.registry.get_sample_value

    def count(name: str, outcome: str, size_class: str) -> float:
        return value(name, {"outcome": outcome, "size_class": size_class}) or 0.0

    before = [
        count("nst_job_seconds_count", "ok", "256"),
        count("nst_job_seconds_count", "invalid", "none"),
        count("nst_job_steps_count", "ok", "256"),
        value("nst_batch_fill_ratio_count") or 0.0,
    ]
    statuses, _, _ = run(worker, weights_path, [multipart(seed=4), multipart(content=b"no")])
    assert statuses == [200, 400]
    after = [
        count("nst_job_seconds_count", "ok", "256"),
        count("nst_job_seconds_count", "invalid", "none"),
        count("nst_job_steps_count", "ok", "256"),
        value("nst_batch_fill_ratio_count"),
    ]
    assert [a - b for a, b in zip(after, before)] == [1, 1, 1, 1]


def test_a_failing_job_fails_alone_and_says_nothing_of_the_exception(
    worker, weights_path, monkeypatch
):
    real = worker.stylizer.stylize_batch

    def flaky(jobs, **kw):
        if any(job.params.seed == 13 for job in jobs):
            raise ValueError("secret internals /etc/passwd")
        return real(jobs, **kw)

    monkeypatch.setattr(worker.stylizer, "stylize_batch", flaky)
    statuses, bodies, _ = run(
        worker, weights_path, [multipart(seed=1), multipart(seed=13), multipart(seed=2)]
    )
    assert statuses == [200, 500, 200]
    error = json.loads(bodies[1])
    assert error["error"] == "internal_error" and len(error["error_id"]) == 12
    assert "secret" not in bodies[1].decode() and "ValueError" not in bodies[1].decode()


def test_encoding_and_metrics_failures_stay_with_their_request(worker, weights_path, monkeypatch):
    real = module.image_body

    def encode(result, params):
        if params.seed == 7:
            raise OSError("encoder exploded")
        return real(result, params)

    class BrokenMetrics:
        def add_metric(self, *args, **kwargs):
            raise RuntimeError("metrics backend down")

    monkeypatch.setattr(module, "image_body", encode)
    statuses, bodies, _ = run(
        worker, weights_path, [multipart(seed=7), multipart(seed=8)], metrics=BrokenMetrics()
    )
    assert statuses == [500, 200] and ok_image(bodies[1])


def test_out_of_memory_retries_one_job_at_a_time(worker, weights_path, monkeypatch):
    real, calls = worker.stylizer.stylize_batch, []

    def small_device(jobs, **kw):
        calls.append(len(jobs))
        if len(jobs) > 1 or jobs[0].params.size > 48:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(jobs, **kw)

    monkeypatch.setattr(worker.stylizer, "stylize_batch", small_device)
    statuses, bodies, _ = run(worker, weights_path, [multipart(seed=1), multipart(seed=2)])
    assert statuses == [200, 200] and calls == [2, 1, 1]
    statuses, bodies, _ = run(worker, weights_path, [multipart(size=64)])
    assert statuses == [413]
    error = json.loads(bodies[0])
    assert error["error"] == "out_of_memory" and "smaller size" in error["message"]


def test_a_poisoned_device_answers_the_batch_then_ends_the_worker(
    worker, weights_path, monkeypatch
):
    exits = []

    def poisoned(jobs, **kw):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr(worker.stylizer, "stylize_batch", poisoned)
    monkeypatch.setattr(module, "exit_worker_soon", lambda: exits.append(True))
    monkeypatch.setattr(worker, "poisoned", False)  # restored for the module's other tests
    statuses, bodies, _ = run(worker, weights_path, [multipart(seed=1), multipart(seed=2)])
    assert statuses == [500, 500] and exits == [True]
    assert {json.loads(b)["error"] for b in bodies} == {"device_error"}
    # A batch that reaches the worker before it exits is told to retry, not lost with it.
    statuses, bodies, context = run(worker, weights_path, [multipart(), multipart(steps="x")])
    assert statuses == [503, 503] and exits == [True]
    assert {json.loads(b)["error"] for b in bodies} == {"worker_restarting"}
    assert context.request_processor[0].get_response_headers()["Retry-After"] == "5"
    assert handler.faults.is_fatal_device_error(
        RuntimeError("CUDA error: device-side assert triggered")
    )
    assert not handler.faults.is_fatal_device_error(torch.OutOfMemoryError("out of memory"))


def test_an_error_after_the_stream_started_is_a_last_ndjson_line(worker, weights_path, monkeypatch):
    sent = []
    monkeypatch.setattr(
        module, "torchserve_sender", lambda context: lambda i, chunk: sent.append((i, chunk))
    )
    real = module.final_line

    def broken(result, params):
        raise OSError("encoder exploded")

    monkeypatch.setattr(module, "final_line", broken)
    statuses, bodies, context = run(
        worker, weights_path, [multipart(stream="true", steps=3), multipart(seed=4)]
    )
    monkeypatch.setattr(module, "final_line", real)
    assert sent and all(i == 0 for i, _ in sent)
    assert statuses == [200, 200] and ok_image(bodies[1])
    assert bodies[0].endswith(b"\n")
    last = json.loads(bodies[0])
    assert last["type"] == "error" and last["error"] == "internal_error"
    assert context.get_response_content_type(0) == "application/x-ndjson"


def test_a_job_with_no_time_to_start_gets_503_with_retry_after(worker, weights_path, monkeypatch):
    monkeypatch.setattr(worker.settings.__class__, "deadline_budget_s", lambda self: 0.0)
    statuses, bodies, context = run(worker, weights_path, [multipart(steps=50)])
    assert statuses == [503]
    assert json.loads(bodies[0])["error"] == "deadline_exceeded"
    assert int(context.request_processor[0].get_response_headers()["Retry-After"]) >= 1


def test_both_request_ids_are_logged(worker, weights_path, caplog):
    context = make_context(weights_path, 1, headers={0: {"X-Request-Id": "abc-123"}})
    with caplog.at_level("INFO", logger="handler.replies"):
        worker.handle([multipart()], context)
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "handler.replies"]
    assert lines[-1]["request_id"] == "req-0" and lines[-1]["client_request_id"] == "abc-123"
    assert lines[-1]["outcome"] == "ok"


def test_sizes_are_grouped_and_each_request_gets_its_own_size(worker, weights_path):
    requests = [multipart(size=32, seed=1), multipart(size=48, seed=2), multipart(size=32)]
    statuses, bodies, _ = run(worker, weights_path, requests)
    assert statuses == [200, 200, 200]
    assert [Image.open(io.BytesIO(b)).size for b in bodies] == [(32, 21), (48, 32), (32, 21)]


def test_the_styles_limit_is_one_rule_before_decoding(worker, weights_path):
    too_many = multipart(style_2=STARRY, style_3=STARRY, style_4=b"not even an image")
    statuses, bodies, _ = run(worker, weights_path, [too_many, multipart()])
    error = json.loads(bodies[0])
    assert statuses == [400, 200]
    assert error == {
        "error": "limit_exceeded",
        "message": "give 1 to 3 style images, got 4",
        "field": "style",
    }


def test_a_request_without_a_valid_key_gets_401_and_the_others_are_served(
    weights_path, tmp_path, monkeypatch
):
    keys = tmp_path / "api-keys"
    keys.write_text("good-key\n")
    monkeypatch.setenv("NST_API_KEYS_FILE", str(keys))
    handler = StyleTransferHandler()
    handler.initialize(make_context(weights_path, 0))
    headers = {0: {"authorization": "Bearer wrong"}, 1: {"authorization": "Bearer good-key"}}
    context = make_context(weights_path, 3, headers=headers)
    bodies = handler.handle([multipart(), multipart(), multipart()], context)
    statuses = [p.get_response_status_code() for p in context.request_processor]
    assert statuses == [401, 200, 401]
    assert json.loads(bodies[0])["error"] == "unauthorized"
    assert json.loads(bodies[2])["field"] == "authorization"
    assert ok_image(bodies[1])


@pytest.fixture
def keyed_worker(weights_path, tmp_path, monkeypatch):
    keys = tmp_path / "api-keys"
    keys.write_text("good-key\n")
    monkeypatch.setenv("NST_API_KEYS_FILE", str(keys))
    handler = StyleTransferHandler()
    handler.initialize(make_context(weights_path, 0))
    return handler


def as_grpc(context: Context, *indices: int) -> Context:
    """Requests ``indices`` as TorchServe's gRPC API hands them over: no HTTP header."""
    for i in indices:
        context.request_processor[i] = RequestProcessor({})
    return context


def test_grpc_requests_are_refused_where_keys_are_checked(keyed_worker, weights_path):
    good = {0: {"authorization": "Bearer good-key"}}
    context = as_grpc(make_context(weights_path, 2, headers=good), 1)
    bodies = keyed_worker.handle([multipart(), multipart()], context)
    statuses = [p.get_response_status_code() for p in context.request_processor]
    assert statuses == [200, 401]
    assert "gRPC" in json.loads(bodies[1])["message"]
    assert context.request_processor[1].get_response_headers()["ts_stream_next"] == "false"
    assert "ts_stream_next" not in context.request_processor[0].get_response_headers()


def test_the_describe_call_is_one_reply_behind_the_key_check(keyed_worker, weights_path):
    describe = {0: {"describe": "True"}}
    context = make_context(weights_path, 1, headers=describe)
    (body,) = keyed_worker.handle([{}], context)
    assert context.request_processor[0].get_response_status_code() == 401
    assert json.loads(body)["error"] == "unauthorized"
    keyed = {0: {"describe": "True", "authorization": "Bearer good-key"}}
    (body,) = keyed_worker.handle([{}], make_context(weights_path, 1, headers=keyed))
    assert json.loads(body)["limits"]["max_size"] == 128
    # The same header on inference requests: each is answered as inference.
    headers = {i: {**keyed[0]} for i in range(2)}
    context = make_context(weights_path, 2, headers=headers)
    bodies = keyed_worker.handle([multipart(), multipart(steps="x")], context)
    statuses = [p.get_response_status_code() for p in context.request_processor]
    assert statuses == [200, 400] and ok_image(bodies[0])


def test_a_batch_failing_outside_any_request_still_answers_each(worker, weights_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("state folder unwritable")

    monkeypatch.setattr(module, "busy", broken)
    statuses, bodies, _ = run(worker, weights_path, [multipart(), multipart(), multipart()])
    assert statuses == [500, 500, 500]
    assert all("error_id" in json.loads(b) for b in bodies)


def mask_png(size=(32, 21), left=(255, 255, 255), right=(255, 0, 0)) -> bytes:
    image = Image.new("RGB", size, left)
    image.paste(right, (size[0] // 2, 0, size[0], size[1]))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_masked_and_plain_requests_share_a_batch_and_bad_masks_fail_alone(worker, weights_path):
    scream = (STYLE / "the_scream.jpg").read_bytes()
    two_styles = multipart(seed=1, style_loss="mean_cov")
    two_styles.update(style_2=bytearray(scream), mask=bytearray(mask_png()))
    as_json = {
        "body": {
            "content": base64.b64encode(PHOTO).decode(),
            "style": [base64.b64encode(STARRY).decode(), base64.b64encode(scream).decode()],
            "mask": base64.b64encode(mask_png(size=(64, 42))).decode(),
            "params": {"style_loss": "sliced_wasserstein", "preset": "fast", "steps": 2},
        }
    }
    wrong_shape = multipart(seed=2)
    wrong_shape["mask"] = bytearray(mask_png(size=(40, 40)))
    third_style_colour = multipart(seed=3)
    third_style_colour["mask"] = bytearray(mask_png(right=(0, 255, 0)))
    not_an_image = multipart(seed=4)
    not_an_image["mask"] = bytearray(b"not an image")
    requests = [two_styles, wrong_shape, as_json, multipart(seed=5), third_style_colour,
                not_an_image]  # fmt: skip
    statuses, bodies, _ = run(worker, weights_path, requests)
    assert statuses == [200, 400, 200, 200, 400, 400]
    assert ok_image(bodies[0]) and ok_image(bodies[2]) and ok_image(bodies[3])
    errors = [json.loads(bodies[i]) for i in (1, 4, 5)]
    assert [e["field"] for e in errors] == ["mask"] * 3
    assert "shape" in errors[0]["message"] and "style 3" in errors[1]["message"]
