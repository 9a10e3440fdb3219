"""Hostile, broken and odd uploads against the real server: each gets a 4xx JSON error naming
the field or a correct image, and the same worker then serves a good request."""

from __future__ import annotations

import io

import numpy as np
import pytest
import requests
from PIL import Image

from tests.conftest import CONTENT, STYLE

STARRY = (STYLE / "starry_night.jpg").read_bytes()
PHOTO = Image.open(CONTENT / "chelsea.png").convert("RGB")


def encode(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def sixteen_bit() -> bytes:
    grey = np.asarray(PHOTO.convert("L"), dtype=np.uint16) * 257
    return encode(Image.fromarray(grey))


def exif_rotated() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed rotated by 90 degrees
    return encode(PHOTO, "JPEG", exif=exif)


def animated_gif() -> bytes:
    frames = [PHOTO.convert("P"), PHOTO.rotate(180).convert("P")]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=100)
    return buffer.getvalue()


VALID_ODD_IMAGES = {
    "16-bit greyscale": (sixteen_bit, (64, 43)),
    "CMYK JPEG": (lambda: encode(PHOTO.convert("CMYK"), "JPEG"), (64, 43)),
    "palette PNG": (lambda: encode(PHOTO.convert("P")), (64, 43)),
    "greyscale + alpha": (lambda: encode(PHOTO.convert("LA")), (64, 43)),
    "animated GIF": (animated_gif, (64, 43)),
    "EXIF-rotated JPEG": (exif_rotated, (43, 64)),
    "1x1 image": (lambda: encode(Image.new("RGB", (1, 1), (9, 99, 199))), (64, 64)),
    "10,000 px wide photo": (lambda: encode(PHOTO.resize((10000, 400))), (64, 3)),
}


def post(server, content: bytes, **fields) -> requests.Response:
    return requests.post(
        server.predict_url,
        files={"content": content, "style": STARRY},
        data={"size": "64", "steps": "2", **fields},
        timeout=120,
    )


def assert_worker_still_serves(server, pids) -> None:
    good = post(server, encode(PHOTO), steps="1")
    assert good.status_code == 200, good.text
    assert server.worker_pids() == pids


@pytest.mark.parametrize("name", [n for n in VALID_ODD_IMAGES if n != "10,000 px wide photo"])
def test_odd_but_valid_images_work(server, name):
    make, size = VALID_ODD_IMAGES[name]
    reply = post(server, make())
    assert reply.status_code == 200, reply.text
    assert Image.open(io.BytesIO(reply.content)).size == size


def test_a_very_wide_photo_is_refused_when_too_thin(server):
    # 10000x400 resized to a 64 px side is 64x3: too thin for VGG's five poolings.
    pids = server.worker_pids()
    reply = post(server, VALID_ODD_IMAGES["10,000 px wide photo"][0]())
    assert reply.status_code == 400 and reply.json()["field"] == "size"
    assert "16 px on the shorter side" in reply.json()["message"]
    assert_worker_still_serves(server, pids)


def test_a_10000_px_photo_over_the_pixel_limit_is_413(server):
    # 10000x2000 = 20 Mpx; the test server's max_input_pixels is 5 Mpx.
    reply = post(server, encode(PHOTO.resize((10000, 2000)), "PNG"))
    assert reply.status_code == 413
    assert reply.json()["error"] == "image_too_large" and reply.json()["field"] == "content"
    assert "10000x2000" in reply.json()["message"]


def test_a_jpeg_over_the_pixel_limit_is_served_when_its_reduced_decode_fits(server):
    # 6000x4000 = 24 Mpx stored; at size 64 it decodes at 1/8, 750x500, within 5 Mpx.
    reply = post(server, encode(PHOTO.resize((6000, 4000)), "JPEG", quality=60))
    assert reply.status_code == 200, reply.text
    assert Image.open(io.BytesIO(reply.content)).size == (64, 43)


def test_decompression_bomb_is_refused(server):
    bomb = encode(Image.new("1", (30000, 30000)), optimize=True)
    assert len(bomb) < 200_000
    pids = server.worker_pids()
    reply = post(server, bomb)
    assert reply.status_code == 413
    assert reply.json() == {
        "error": "image_too_large",
        "field": "content",
        "message": reply.json()["message"],
    }
    assert_worker_still_serves(server, pids)


GARBAGE = [
    (field, value)
    for field in ("steps", "size", "style_weight", "content_weight", "tv_weight")
    for value in ("ten", "-1", "nan", "1e40", "2.5", "")
    if not (field.endswith("weight") and value == "2.5")
]  # 2.5 is a valid weight


@pytest.mark.parametrize("field, value", GARBAGE)
def test_numeric_garbage_names_the_field(server, field, value):
    reply = post(server, encode(PHOTO), **{field: value})
    assert reply.status_code == 400, (field, value, reply.text)
    assert reply.json()["field"] == field


def test_oversized_request_is_413_from_torchserve(server):
    pids = server.worker_pids()
    reply = post(server, b"\0" * 9_000_000)  # the test server allows 8 MB
    assert reply.status_code == 413
    assert_worker_still_serves(server, pids)
