"""The product as users call it: HTTP against a real TorchServe with the real weights."""

from __future__ import annotations

import base64
import io
import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from PIL import Image

from tests.conftest import CONTENT, STYLE
from tests.live_server import TEST_MODEL_CONFIG, metric_value

ASTRONAUT = (CONTENT / "astronaut.png").read_bytes()
CHELSEA = (CONTENT / "chelsea.png").read_bytes()
STARRY = (STYLE / "starry_night.jpg").read_bytes()
SCREAM = (STYLE / "the_scream.jpg").read_bytes()


def multipart(server, content=ASTRONAUT, style=STARRY, headers=None, timeout=120, **fields):
    files = {"content": ("content.png", content), "style": ("style.jpg", style)}
    files = {k: v for k, v in files.items() if v is not None}
    return requests.post(
        server.predict_url, files=files, data=fields, headers=headers, timeout=timeout
    )


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_multipart_returns_a_png_of_the_requested_size(server):
    reply = multipart(server, content=CHELSEA, size="96", steps="4")
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(reply.content))
    assert image.format == "PNG" and image.size == (96, 64)
    assert reply.headers["X-NST-Steps"] == "4"


def test_json_request_and_json_answer(server):
    body = {
        "content": b64(ASTRONAUT),
        "style": [b64(STARRY), b64(SCREAM)],
        "params": {"size": 48, "steps": 3, "style_weights": [2, 1], "format": "jpeg"},
    }
    reply = requests.post(
        server.predict_url, json=body, headers={"Accept": "application/json"}, timeout=120
    )
    assert reply.status_code == 200, reply.text
    answer = reply.json()
    assert answer["steps_run"] == 3 and answer["content_type"] == "image/jpeg"
    assert answer["losses"]["style"] < answer["initial_losses"]["style"]
    image = Image.open(io.BytesIO(base64.b64decode(answer["image"])))
    assert image.format == "JPEG" and image.size == (48, 48)


def test_kserve_v1_route_takes_the_same_body(server):
    """KServe's v1 predict path (deploy/kserve) reaches the same handler, body unchanged."""
    body = {"content": b64(ASTRONAUT), "style": b64(STARRY), "params": {"size": 32, "steps": 2}}
    reply = requests.post(
        f"{server.inference}/v1/models/style_transfer:predict", json=body, timeout=120
    )
    assert reply.status_code == 200, reply.text
    assert Image.open(io.BytesIO(reply.content)).size == (32, 32)


def test_more_styles_as_numbered_fields(server):
    files = {"content": ASTRONAUT, "style": STARRY, "style_2": SCREAM}
    reply = requests.post(
        server.predict_url,
        files=files,
        data={"size": "32", "steps": "2"},
        headers={"Accept": "application/json"},
        timeout=120,
    )
    assert reply.status_code == 200, reply.text


def test_concurrent_requests_are_optimised_together(server):
    with ThreadPoolExecutor(3) as pool:
        replies = list(
            pool.map(lambda s: multipart(server, size="64", steps="6", seed=str(s)), range(3))
        )
    assert [r.status_code for r in replies] == [200, 200, 200]
    assert max(int(r.headers["X-NST-Batch-Jobs"]) for r in replies) >= 2
    assert "nst_batch_jobs{" in server.metrics_text()


def test_a_bad_request_in_a_batch_fails_alone(server):
    pids = server.worker_pids()
    requests_ = [
        dict(size="64", steps="5"),
        dict(size="64", steps="-3"),
        dict(size="64", steps="5", seed="9"),
    ]
    with ThreadPoolExecutor(3) as pool:
        replies = list(pool.map(lambda f: multipart(server, **f), requests_))
    assert [r.status_code for r in replies] == [200, 400, 200]
    assert replies[1].json()["field"] == "steps"
    assert max(int(replies[i].headers["X-NST-Batch-Jobs"]) for i in (0, 2)) == 2
    assert server.worker_pids() == pids


BAD_REQUESTS = [
    ("missing content", dict(content=None), 400, "missing_field", "content"),
    ("missing style", dict(style=None), 400, "missing_field", "style"),
    ("text as png", dict(content=b"just some text, honestly"), 400, "not_an_image", "content"),
    ("truncated png", dict(content=ASTRONAUT[:5000]), 400, "corrupt_image", "content"),
    ("truncated jpeg", dict(style=STARRY[:4000]), 400, "corrupt_image", "style"),
    ("steps not a number", dict(steps="many"), 400, "invalid_parameter", "steps"),
    ("steps fractional", dict(steps="2.5"), 400, "invalid_parameter", "steps"),
    ("weight NaN", dict(style_weight="nan"), 400, "invalid_parameter", "style_weight"),
    ("negative size", dict(size="-5"), 400, "invalid_parameter", "size"),
    ("size over the server limit", dict(size="1000"), 400, "limit_exceeded", "size"),
    ("steps over the server limit", dict(steps="5000"), 400, "limit_exceeded", "steps"),
    ("unknown parameter", dict(stpes="3"), 400, "invalid_parameter", "stpes"),
    ("bad stream flag", dict(stream="perhaps"), 400, "invalid_parameter", "stream"),
]


@pytest.mark.parametrize(
    "name, fields, status, code, field", BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS]
)
def test_bad_multipart_requests_get_a_json_error(server, name, fields, status, code, field):
    pids = server.worker_pids()
    reply = multipart(server, **fields)
    assert reply.status_code == status, reply.text
    assert reply.json()["error"] == code and reply.json()["field"] == field
    assert reply.json()["message"]
    assert server.worker_pids() == pids


def test_too_many_pixels_is_413(server):
    buffer = io.BytesIO()
    Image.new("L", (4000, 2000)).save(buffer, format="PNG")
    reply = multipart(server, content=buffer.getvalue())
    assert reply.status_code == 413
    assert reply.json()["error"] == "image_too_large" and reply.json()["field"] == "content"


def test_too_many_styles(server):
    body = {"content": b64(ASTRONAUT), "style": [b64(STARRY)] * 4}
    reply = requests.post(server.predict_url, json=body, timeout=60)
    assert reply.status_code == 400 and reply.json()["error"] == "limit_exceeded"


@pytest.mark.parametrize(
    "body, headers, code, field",
    [
        (b"{not json", {"Content-Type": "application/json"}, "malformed_body", "body"),
        (b"", {}, "missing_field", "content"),
        (
            json.dumps({"content": "@@@", "style": b64(STARRY)}).encode(),
            {"Content-Type": "application/json"},
            "invalid_base64",
            "content",
        ),
        (
            json.dumps({"content": b64(ASTRONAUT), "style": b64(STARRY), "steps": 3}).encode(),
            {"Content-Type": "application/json"},
            "invalid_parameter",
            "steps",
        ),
        (
            json.dumps([1, 2]).encode(),
            {"Content-Type": "application/json"},
            "malformed_body",
            "body",
        ),
    ],
)
def test_bad_json_requests(server, body, headers, code, field):
    reply = requests.post(server.predict_url, data=body, headers=headers, timeout=60)
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"] == code and reply.json()["field"] == field


def test_worker_survives_and_serves_after_bad_requests(server):
    pids = server.worker_pids()
    multipart(server, content=b"\x89PNG\r\n\x1a\nbroken")
    reply = multipart(server, size="32", steps="2")
    assert reply.status_code == 200
    assert server.worker_pids() == pids


def stream(server, **data: str) -> requests.Response:
    """A streamed (NDJSON) request for astronaut x starry_night."""
    return requests.post(
        server.predict_url,
        files={"content": ASTRONAUT, "style": STARRY},
        data={**data, "stream": "true"},
        stream=True,
        timeout=120,
    )


def test_streaming_sends_progress_before_the_image(server):
    reply = stream(server, size="32", steps="4", preview_every="2")
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in reply.iter_lines() if line]
    types = [line["type"] for line in lines]
    assert types[0] == "progress" and types[-1] == "result" and set(types[:-1]) == {"progress"}
    steps = [line["step"] for line in lines[:-1]]
    assert steps[0] == 1 and steps == sorted(steps) and steps[-1] <= 4
    assert "preview_png" not in lines[0]
    assert any("preview_png" in line for line in lines[:-1])  # step 2's preview
    final = Image.open(io.BytesIO(base64.b64decode(lines[-1]["image"])))
    assert final.size == (32, 32) and lines[-1]["steps_run"] == 4


def test_stream_progress_and_previews_are_rate_limited_and_capped(server):
    """preview_every=1 on every step: at most one line per stream_interval_s, one preview per
    preview_interval_s, previews no larger than preview_max_side."""
    limits = TEST_MODEL_CONFIG["handler"]
    started = time.monotonic()
    reply = stream(server, size="96", steps="40", preview_every="1")
    lines = [json.loads(line) for line in reply.iter_lines() if line]
    elapsed = time.monotonic() - started
    progress = lines[:-1]
    previews = [
        Image.open(io.BytesIO(base64.b64decode(line["preview_png"])))
        for line in progress
        if "preview_png" in line
    ]
    assert lines[-1]["type"] == "result" and lines[-1]["steps_run"] == 40
    assert 1 <= len(progress) <= elapsed / limits["stream_interval_s"] + 2
    assert 1 <= len(previews) <= elapsed / limits["preview_interval_s"] + 2
    assert all(max(p.size) <= limits["preview_max_side"] for p in previews)


def test_long_job_stops_before_the_response_timeout(server):
    pids = server.worker_pids()
    started = time.monotonic()
    reply = multipart(server, size="128", steps="400", timeout=60)
    elapsed = time.monotonic() - started
    assert reply.status_code == 200
    assert reply.headers["X-NST-Stopped"] == "deadline"
    assert 0 < int(reply.headers["X-NST-Steps"]) < 400
    assert elapsed < 45  # responseTimeout
    assert server.worker_pids() == pids
    assert "nst_deadline_stops_total{" in server.metrics_text()


def test_metrics_expose_the_handlers_figures(server):
    multipart(server, size="32", steps="2")
    text = server.metrics_text()
    for name in (
        'nst_jobs_total{outcome="ok"',
        "nst_optimization_seconds_total{",
        "nst_optimization_steps_total{",
        "nst_output_pixels_total{",
        "nst_final_style_loss{",
        "nst_final_content_loss{",
        "ts_inference_requests_total{",
    ):
        assert name in text, name


def test_repeated_style_hits_the_workers_cache(server):
    """A style seen before skips its target pass; the counters show it."""
    first = multipart(server, size="40", steps="1", seed="11")
    before = server.metrics_text()
    second = multipart(server, size="40", steps="1", seed="12")
    assert first.status_code == second.status_code == 200
    deadline = time.monotonic() + 10  # the worker's metrics reach /metrics asynchronously
    while True:
        after = server.metrics_text()
        if (
            metric_value(after, "nst_style_cache_hits_total")
            > metric_value(before, "nst_style_cache_hits_total")
            or time.monotonic() > deadline
        ):
            break
        time.sleep(0.2)
    assert (
        metric_value(after, "nst_style_cache_hits_total")
        == metric_value(before, "nst_style_cache_hits_total") + 1
    )
    assert metric_value(after, "nst_style_cache_misses_total") == metric_value(
        before, "nst_style_cache_misses_total"
    )


def test_client_script_streams_and_writes_the_image(server, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    out = tmp_path / "client.png"
    script = Path(__file__).resolve().parents[2] / "scripts/stylize.py"
    done = subprocess.run(
        [
            sys.executable,
            str(script),
            str(CONTENT / "chelsea.png"),
            str(STYLE / "the_scream.jpg"),
            str(STYLE / "shipwreck.jpg"),
            "-o",
            str(out),
            "--url",
            server.predict_url,
            "--stream",
            "--param",
            "size=48",
            "--param",
            "steps=3",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "3/3" in done.stderr and "3 steps" in done.stdout
    assert Image.open(out).size == (48, 32)


def test_request_ids_are_in_the_handlers_log_line(server):
    """One JSON line per job whose request_id is the reply's X-Request-Id (TorchServe's id,
    what a user quotes to an operator), with the client's own id beside it."""
    request_id = f"test-{time.time_ns()}"
    good = multipart(
        server, content=CHELSEA, size="32", steps="2", headers={"X-Request-Id": request_id}
    )
    bad = multipart(server, content=b"not an image", headers={"X-Request-Id": request_id + "b"})
    assert good.status_code == 200 and bad.status_code == 400
    log = server.log_dir / "model_log.log"
    lines: dict[str, dict] = {}
    deadline = time.monotonic() + 15
    while len(lines) < 2 and time.monotonic() < deadline:
        for text in log.read_text().splitlines():
            if '"event": "job"' in text and request_id in text:
                line = json.loads(text[text.index("{") :])
                lines[line["client_request_id"]] = line
        time.sleep(0.5)
    assert lines[request_id]["outcome"] == "ok" and lines[request_id]["steps_run"] == 2
    assert lines[request_id + "b"]["error"] == "not_an_image"
    assert lines[request_id + "b"]["status"] == 400
    for reply, sent in ((good, request_id), (bad, request_id + "b")):
        assert lines[sent]["request_id"] == reply.headers["x-request-id"]
    for line in lines.values():  # what an operator needs, and never image data or keys
        assert {"size", "seconds", "batch_requests", "status", "outcome"} <= set(line)
        assert len(json.dumps(line)) < 2000


def test_the_model_describes_its_limits_defaults_and_ranges(server):
    """GET /models/style_transfer?customized=true: what clients may ask of this server."""
    reply = requests.get(
        f"{server.management}/models/style_transfer", params={"customized": "true"}, timeout=60
    )
    assert reply.status_code == 200, reply.text
    described = reply.json()[0]["customizedMetadata"]  # TorchServe parses the handler's JSON
    handler = TEST_MODEL_CONFIG["handler"]
    assert described["limits"]["max_size"] == handler["max_size"]
    assert described["limits"]["max_styles"] == handler["max_styles"]
    size = described["parameters"]["size"]
    assert size["default"] == handler["defaults"]["size"] and size["maximum"] == handler["max_size"]
    assert described["parameters"]["steps"]["maximum"] == handler["max_steps"]
    assert described["parameters"]["optimizer"]["choices"] == ["lbfgs", "adam"]
    assert all("description" in p for p in described["parameters"].values())
    assert requests.post(server.predict_url, timeout=5).status_code == 400  # still serving


def mask_png(size: tuple[int, int], right=(255, 0, 0)) -> bytes:
    image = Image.new("RGB", size, (255, 255, 255))
    image.paste(right, (size[0] // 2, 0, size[0], size[1]))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_mask_gives_each_region_its_style_over_http(server):
    width, height = Image.open(io.BytesIO(CHELSEA)).size
    files = {
        "content": ("content.png", CHELSEA),
        "style": ("style.jpg", STARRY),
        "style_2": ("style2.jpg", SCREAM),
        "mask": ("mask.png", mask_png((width // 4, height // 4))),
    }
    data = {"size": "64", "steps": "4", "style_loss": "sliced_wasserstein", "average": "0.5"}
    reply = requests.post(server.predict_url, files=files, data=data, timeout=120)
    assert reply.status_code == 200, reply.text
    assert Image.open(io.BytesIO(reply.content)).size == (64, 43)
    bad = {
        "content": b64(CHELSEA),
        "style": b64(STARRY),
        "mask": b64(mask_png((50, 50))),
        "params": {"size": 64, "steps": 2},
    }
    reply = requests.post(server.predict_url, json=bad, timeout=60)
    assert reply.status_code == 400
    assert reply.json()["field"] == "mask" and "shape" in reply.json()["message"]
