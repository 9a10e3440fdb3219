"""What one request may make a worker hold, against the real TorchServe: a JPEG whose decoder
keeps every stored pixel, and the style cache's share. Memory is read from the worker's
/proc status: VmHWM (peak, reset through clear_refs) and VmRSS."""

from __future__ import annotations

import io
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from tests.conftest import CONTENT, STYLE
from tests.live_server import TEST_MODEL_CONFIG, metric_value

PHOTO = (CONTENT / "chelsea.png").read_bytes()
STARRY = (STYLE / "starry_night.jpg").read_bytes()
ALL_CONV = (
    "conv1_1,conv1_2,conv2_1,conv2_2,conv3_1,conv3_2,conv3_3,conv3_4,"
    "conv4_1,conv4_2,conv4_3,conv4_4,conv5_1"
)


def memory_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"{field} not in /proc/{pid}/status")


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS


def jpeg(size: tuple[int, int], progressive: bool) -> bytes:
    noise = np.random.default_rng(0).integers(90, 140, (size[1] // 8, size[0] // 8, 3))
    image = Image.fromarray(noise.astype(np.uint8)).resize(size, Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=40, progressive=progressive)
    return buffer.getvalue()


def post(server, content: bytes, style: bytes = STARRY, **fields) -> requests.Response:
    return requests.post(
        server.predict_url,
        files={"content": ("c.jpg", content), "style": ("s.jpg", style)},
        data={"size": "64", "steps": "1", **fields},
        timeout=120,
    )


def test_a_progressive_jpeg_is_refused_by_its_stored_size_in_its_batch(server):
    """A 3000x2400 JPEG (7.2 Mpx, over the 5 Mpx limit) asked at 64 px: decoded at 1/8 as a
    baseline file (0.1 Mpx), but a progressive one makes libjpeg hold every stored pixel:
    refused before decoding, beside a batch-mate that is served, with the peak bounded."""
    limit = TEST_MODEL_CONFIG["handler"]["max_input_pixels"]
    size = (3000, 2400)
    assert size[0] * size[1] > limit
    baseline, progressive = jpeg(size, False), jpeg(size, True)
    (pid,) = server.worker_pids()
    assert post(server, PHOTO).status_code == 200  # warm: the first job's own allocations
    reset_peak(pid)
    before = memory_mb(pid, "VmRSS")
    with ThreadPoolExecutor(3) as pool:
        replies = list(pool.map(lambda c: post(server, c), [progressive, PHOTO, progressive]))
    peak = memory_mb(pid, "VmHWM") - before
    print(f"progressive JPEGs in a batch: peak +{peak:.0f} MB")
    assert [r.status_code for r in replies] == [413, 200, 413]
    error = replies[0].json()
    assert error["error"] == "image_too_large" and "progressive" in error["message"]
    assert peak < 150  # decoding both would hold ~2 x 7.2 Mpx x 3 components of coefficients
    assert post(server, baseline).status_code == 200  # same size, baseline: decoded at 1/8
    assert server.worker_pids() == [pid]


def both_ways(path: Path) -> list[bytes]:
    """The style image and its mirror image: two styles with targets of their own."""
    mirrored = io.BytesIO()
    Image.open(path).convert("RGB").transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(mirrored, "PNG")
    return [path.read_bytes(), mirrored.getvalue()]


@pytest.mark.slow
def test_the_style_cache_is_bounded_in_bytes(server):
    """Eight different sliced-Wasserstein styles over 13 layers (~33 MB of targets each at
    256 px): the test server's cache may hold 64 MB, so the worker does not keep them all. Its
    gauge says what it holds; the worker's RSS (noisier: the allocator) agrees."""
    limit_mb = TEST_MODEL_CONFIG["handler"]["style_cache_mb"]
    (pid,) = server.worker_pids()
    styles = [variant for path in sorted(STYLE.iterdir()) for variant in both_ways(path)]
    fields = {"size": "256", "levels": "1", "style_loss": "sliced_wasserstein"}
    fields["style_layers"] = ALL_CONV
    lookups_before = cache_lookups(server.metrics_text())
    assert post(server, PHOTO, styles[0], **fields).status_code == 200
    after_first = memory_mb(pid, "VmRSS")
    for style in styles[1:]:
        assert post(server, PHOTO, style, **fields).status_code == 200
    grown = memory_mb(pid, "VmRSS") - after_first
    held_mb = cache_gauge_after(server, lookups_before + len(styles)) / 2**20
    print(f"{len(styles)} sliced-Wasserstein styles: cache {held_mb:.0f} MB, RSS +{grown:.0f} MB")
    assert 0 < held_mb <= limit_mb  # unbounded by bytes it would hold ~260 MB
    assert grown < limit_mb + 100  # unbounded by bytes the RSS grew ~330 MB
    assert server.worker_pids() == [pid]


def cache_lookups(metrics_text: str) -> float:
    return metric_value(metrics_text, "nst_style_cache_hits_total") + metric_value(
        metrics_text, "nst_style_cache_misses_total"
    )


def cache_gauge_after(server, lookups: float, timeout_s: float = 15) -> float:
    """nst_style_cache_bytes once the lookup counters, emitted after it in the same report,
    reach ``lookups`` (the worker's metrics reach /metrics asynchronously)."""
    deadline = time.monotonic() + timeout_s
    text = server.metrics_text()
    while cache_lookups(text) < lookups:
        assert time.monotonic() < deadline, "the style cache's lookups never reached /metrics"
        time.sleep(0.2)
        text = server.metrics_text()
    return metric_value(text, "nst_style_cache_bytes")
