"""Hostile batches against the real server: formats we do not serve, crafted values, mutated
files and the largest requests the limits allow, mixed with good requests in the same
batches. Nothing but the documented statuses comes back, the good requests get their
images, and the worker process never changes."""

from __future__ import annotations

import io
import json
import random
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from PIL import Image

from tests.conftest import CONTENT, STYLE
from tests.live_server import TEST_MODEL_CONFIG

PHOTO = Image.open(CONTENT / "chelsea.png").convert("RGB").resize((48, 32))
STARRY = (STYLE / "starry_night.jpg").read_bytes()
SCREAM = (STYLE / "the_scream.jpg").read_bytes()
LIMITS = TEST_MODEL_CONFIG["handler"]


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


GOOD = encode(PHOTO, "PNG")
# Formats Pillow decodes but this server does not serve (EPS would run Ghostscript).
UNSERVED = {
    "EPS": b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\n0 0 moveto showpage\n",
    "PCX": encode(PHOTO, "PCX"),
    "TGA": encode(PHOTO, "TGA"),
    "ICO": encode(PHOTO, "ICO"),
    "PPM": encode(PHOTO, "PPM"),
    "SGI": encode(PHOTO, "SGI"),
    "IM": encode(PHOTO, "IM"),
    "DDS": encode(PHOTO, "DDS"),
    "QOI": encode(PHOTO, "QOI"),
}
SERVED = {fmt: encode(PHOTO, fmt) for fmt in ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")}


def post(
    server, content: bytes = GOOD, style: bytes = STARRY, timeout: float = 120, **fields
) -> requests.Response:
    files = {"content": ("c", content), "style": ("s", style)}
    files.update({k: ("x", v) for k, v in fields.pop("files", {}).items()})
    data = {"size": "32", "steps": "1", **{k: str(v) for k, v in fields.items()}}
    return requests.post(server.predict_url, files=files, data=data, timeout=timeout)


def post_json(server, params: dict, timeout: float = 120) -> requests.Response:
    import base64

    body = {
        "content": base64.b64encode(GOOD).decode(),
        "style": base64.b64encode(STARRY).decode(),
        "params": params,
    }
    return requests.post(server.predict_url, json=body, timeout=timeout)


def concurrently(calls) -> list[requests.Response]:
    """Send the calls at once, so TorchServe batches them together."""
    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(lambda call: call(), calls))


def test_served_formats_decode_and_unserved_ones_are_400_in_the_same_batch(server):
    pids = server.worker_pids()
    names = list(SERVED) + list(UNSERVED)
    calls = [
        lambda d=data: post(server, d) for data in list(SERVED.values()) + list(UNSERVED.values())
    ]
    replies = []
    for start in range(0, len(calls), 4):  # batches of 4 mixing both kinds
        replies += concurrently(calls[start : start + 4])
    for name, reply in zip(names, replies):
        if name in SERVED:
            assert reply.status_code == 200, (name, reply.text)
            assert Image.open(io.BytesIO(reply.content)).size == (32, 21)
        else:
            assert reply.status_code == 400, (name, reply.text)
            assert reply.json()["error"] == "not_an_image" and reply.json()["field"] == "content"
    assert server.worker_pids() == pids


CRAFTED_VALUES = [
    ({"style_layers": [["relu1_1"], "relu2_1"]}, "style_layers"),
    ({"content_layers": [{"a": 1}]}, "content_layers"),
    ({"style_weights": [1e308, 1e308]}, "style_weights"),
    ({"style_layer_weights": [[1, 2]] * 5}, "style_layer_weights"),
    ({"steps": [1]}, "steps"),
    ({"size": {"w": 32}}, "size"),
    ({"style_weight": "1e400"}, "style_weight"),
    ({"steps": 10**400}, "steps"),
    ({"optimizer": ["adam"]}, "optimizer"),
]


def test_crafted_json_values_are_400_naming_the_field_beside_good_requests(server):
    pids = server.worker_pids()
    for start in range(0, len(CRAFTED_VALUES), 3):
        chunk = CRAFTED_VALUES[start : start + 3]
        calls = [lambda p=params: post_json(server, p) for params, _ in chunk]
        calls.append(lambda: post(server, seed=5))
        replies = concurrently(calls)
        assert replies[-1].status_code == 200, replies[-1].text
        for (params, field), reply in zip(chunk, replies):
            assert reply.status_code == 400, (params, reply.text)
            assert reply.json()["field"] == field, (params, reply.json())
    assert server.worker_pids() == pids


def test_json_answers_are_strict_json(server):
    reply = requests.post(
        server.predict_url,
        files={"content": GOOD, "style": STARRY},
        data={"size": "32", "steps": "2"},
        headers={"Accept": "application/json"},
        timeout=120,
    )
    assert reply.status_code == 200
    json.loads(reply.text, parse_constant=lambda name: pytest.fail(f"{name} in JSON"))


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One of: flipped bytes, a truncation, a duplicated run, a header field overwritten."""
    data = bytearray(data)
    kind = rng.randrange(4)
    if kind == 0:
        for _ in range(rng.randint(1, 12)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    elif kind == 1:
        data = data[: rng.randrange(8, len(data))]
    elif kind == 2:
        start = rng.randrange(len(data))
        data[start:start] = data[start : start + rng.randint(1, 64)] * rng.randint(1, 8)
    else:
        pos = rng.randrange(min(64, len(data)))
        data[pos : pos + 4] = rng.randbytes(4)
    return bytes(data)


FUZZ_SECONDS = 30


def test_fuzzed_images_get_only_200_or_400_and_the_worker_survives(server):
    """Seeded mutations of real images in every served format (and of unserved ones),
    batched four at a time, for a bounded time."""
    rng = random.Random(20261123)
    seeds = list(SERVED.values()) + list(UNSERVED.values())
    pids = server.worker_pids()
    statuses: dict[int, int] = {}
    ends = time.monotonic() + FUZZ_SECONDS
    sent = 0
    while time.monotonic() < ends:
        inputs = [mutate(rng.choice(seeds), rng) for _ in range(4)]
        for _data, reply in zip(
            inputs, concurrently([lambda d=d: post(server, d) for d in inputs])
        ):
            statuses[reply.status_code] = statuses.get(reply.status_code, 0) + 1
            assert reply.status_code in (200, 400, 413), (reply.status_code, reply.text)
            assert reply.headers["content-type"].startswith(("image/", "application/json"))
            if reply.status_code != 200:
                assert reply.json()["field"] in ("content", "size")  # size: a mangled shape
        sent += 4
    print(f"fuzz: {sent} requests in {FUZZ_SECONDS} s: {statuses}")
    assert sent >= 40 and statuses.get(400, 0) > 0 and statuses.get(200, 0) > 0
    assert server.worker_pids() == pids


def largest_requests() -> list[dict]:
    """The most work the test server's limits allow, in every mode that changes the work."""
    side = LIMITS["max_size"]
    base = {
        "size": side,
        "steps": LIMITS["max_steps"],
        "files": {"style_2": SCREAM, "style_3": STARRY},
    }
    # Largest style_scale whose work (output + 3 styles) stays within max_work_pixels.
    scale = ((LIMITS["max_work_pixels"] - side * side) / 3) ** 0.5 / side * 0.98
    variants = [
        {},
        {"levels": 4, "coarse_share": 0.9},
        {"preserve_color": "histogram"},
        {"preserve_color": "luminance", "init": "noise"},
        {"optimizer": "adam"},
        {"init": "style", "levels": 3},
    ]
    return [{**base, "style_scale": f"{scale:.3f}", "seed": k, **v} for k, v in enumerate(variants)]


def test_largest_allowed_requests_never_kill_the_worker_nor_answer_0_steps(server):
    """Batches of the heaviest requests the limits allow, on this CPU: the handler's budget
    (responseTimeout - deadline_margin_s) holds, every request is 200 with steps run or 503
    with Retry-After, and TorchServe never kills the worker (which answers 500 to all)."""
    pids = server.worker_pids()
    budget = TEST_MODEL_CONFIG["responseTimeout"] - LIMITS["deadline_margin_s"]
    requests_ = largest_requests()
    big_content = encode(Image.open(CONTENT / "astronaut.png").convert("RGB"), "PNG")
    for start in (0, 3):
        calls = [
            lambda f=fields: post(server, big_content, timeout=90, **f)
            for fields in requests_[start : start + 3]
        ]
        calls.append(lambda: post(server, size="48", steps="3"))  # a second group
        started = time.monotonic()
        replies = concurrently(calls)
        elapsed = time.monotonic() - started
        for reply in replies:
            assert reply.status_code in (200, 503), reply.text
            if reply.status_code == 200:
                assert int(reply.headers["X-NST-Steps"]) > 0
            else:
                assert reply.json()["error"] == "deadline_exceeded"
                assert int(reply.headers["Retry-After"]) >= 1
        assert replies[-1].status_code == 200  # the small group is not starved
        assert elapsed < TEST_MODEL_CONFIG["responseTimeout"], elapsed
        print(
            f"largest requests: {[r.status_code for r in replies]} in {elapsed:.1f} s "
            f"(budget {budget} s)"
        )
    assert server.worker_pids() == pids


def test_work_over_the_limit_is_refused_before_any_work(server):
    reply = post(server, size=str(LIMITS["max_size"]), style_scale="4")
    assert reply.status_code == 400
    assert reply.json()["error"] == "limit_exceeded" and "style_scale" in reply.json()["message"]
