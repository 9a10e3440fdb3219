"""The worker's histograms: bounded labels, buckets that fit, served over HTTP."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from handler.histograms import (
    SECONDS_BUCKETS,
    JobHistograms,
    serve,
    size_class,
)
from tests.live_server import free_ports


def test_size_classes_are_bounded():
    assert [size_class(s) for s in (64, 256, 257, 512, 1024, 2048, 4096)] == [
        "256",
        "256",
        "512",
        "512",
        "1024",
        "2048",
        "larger",
    ]
    assert size_class(None) == "none"


def test_buckets_span_gpu_seconds_to_cpu_minutes():
    assert SECONDS_BUCKETS[0] <= 0.25 and SECONDS_BUCKETS[-1] >= 300
    assert list(SECONDS_BUCKETS) == sorted(SECONDS_BUCKETS)


def test_a_job_lands_in_its_buckets_with_its_labels():
    histograms = JobHistograms()
    histograms.job("ok", 512, 3.0, 2.5, 300)
    histograms.job("invalid", None, 0.01)
    histograms.batch(3, 4)
    value = histograms.registry.get_sample_value
    ok = {"outcome": "ok", "size_class": "512"}
    assert value("nst_job_seconds_bucket", {**ok, "le": "2.0"}) == 0
    assert value("nst_job_seconds_bucket", {**ok, "le": "4.0"}) == 1
    assert value("nst_job_optimization_seconds_sum", ok) == 2.5
    assert value("nst_job_steps_bucket", {**ok, "le": "300.0"}) == 1
    assert value("nst_job_steps_bucket", {**ok, "le": "200.0"}) == 0
    invalid = {"outcome": "invalid", "size_class": "none"}
    assert value("nst_job_seconds_count", invalid) == 1
    assert value("nst_job_steps_count", invalid) is None  # never ran: no steps observed
    assert value("nst_batch_fill_ratio_bucket", {"le": "0.75"}) == 1
    assert value("nst_batch_fill_ratio_bucket", {"le": "0.625"}) == 0


def scrape(url: str, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return requests.get(url, timeout=2).text
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_served_over_http_and_retried_while_the_port_is_taken():
    port = free_ports(1)[0]
    first, second = JobHistograms(), JobHistograms()
    first.job("ok", 128, 1.0, 0.8, 20)
    assert serve(first, f"127.0.0.1:{port}") is not None
    text = scrape(f"http://127.0.0.1:{port}/metrics")
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["nst_job_seconds"].type == "histogram"
    thread = serve(second, f"127.0.0.1:{port}")  # taken: keeps trying in the background
    assert thread is not None and thread.is_alive()
    assert serve(second, "") is None  # switched off


@pytest.mark.parametrize("requests_in_call", [1, 4, 9])
def test_batch_fill_is_a_ratio_of_batch_size(requests_in_call):
    histograms = JobHistograms()
    histograms.batch(requests_in_call, 4)
    assert histograms.registry.get_sample_value("nst_batch_fill_ratio_sum") == min(
        1.0, requests_in_call / 4
    )


def test_the_metrics_port_serves_torchserves_page_or_says_it_cannot(tmp_path):
    """One port for every series: TorchServe's page read at each scrape, after the
    histograms; when it cannot be read, the histograms are still served, with up = 0."""

    class Upstream(BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"# TYPE ts_inference_requests_total counter\nts_inference_requests_total 7.0\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    upstream = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    histograms = JobHistograms()
    histograms.job("ok", 256, 1.0, 0.9, 10)
    live, dead, nobody = free_ports(3)
    serve(histograms, f"127.0.0.1:{live}", f"http://127.0.0.1:{upstream.server_port}/metrics")
    serve(histograms, f"127.0.0.1:{dead}", f"http://127.0.0.1:{nobody}/metrics")
    try:
        for port, up in ((live, "1"), (dead, "0")):
            for _ in range(50):
                try:
                    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
                    break
                except requests.ConnectionError:
                    time.sleep(0.1)
            assert 'nst_job_seconds_count{outcome="ok",size_class="256"} 1.0' in text
            assert f"nst_torchserve_metrics_up {up}" in text
            assert ("ts_inference_requests_total 7.0" in text) == (up == "1")
    finally:
        upstream.shutdown()
