"""Per-job latency, steps and batch-fill histograms, served by the worker itself.

TorchServe's own Prometheus histograms have the client library's fixed buckets (5 ms to 10 s),
which put every CPU job and many GPU jobs in ``+Inf``; these use buckets for this workload
(a quarter second on GPUs to minutes on CPUs). The worker serves them on
``$NST_METRICS_ADDRESS`` (host:port; empty: not served) together with TorchServe's own
metrics page (``$NST_TORCHSERVE_METRICS_URL``, read at each scrape), so one port carries every
series the alerts and the dashboard use: what a Prometheus that scrapes the port named by a
pod's ``prometheus.io/port`` annotation needs. ``nst_torchserve_metrics_up`` says whether
TorchServe's page could be read. With several workers per model, ``$PROMETHEUS_MULTIPROC_DIR``
(set by the launcher, emptied at each server start) lets any of them serve the sum: a worker
that cannot bind the port retries, so one always serves.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Histogram,
    generate_latest,
    multiprocess,
)

log = logging.getLogger(__name__)

ADDRESS_ENV = "NST_METRICS_ADDRESS"
DEFAULT_ADDRESS = "127.0.0.1:8083"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
UPSTREAM_ENV = "NST_TORCHSERVE_METRICS_URL"  # TorchServe's metrics page, served along
DEFAULT_UPSTREAM = "http://127.0.0.1:8082/metrics"
# The jobs API's metrics page (nst-jobs), served along too when set: one scrape port.
JOBS_UPSTREAM_ENV = "NST_JOBS_METRICS_URL"
UPSTREAM_TIMEOUT_S = 3.0

SECONDS_BUCKETS = (0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 240, 480)
STEPS_BUCKETS = (1, 10, 25, 50, 100, 200, 300, 500, 1000)
FILL_BUCKETS = (0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0)
SIZE_CLASSES = (256, 512, 1024, 2048)  # size_class label: the first that holds the output
JOB_LABELS = ("outcome", "size_class")


def size_class(size: int | None) -> str:
    """A bounded label for an output's longest side: ``256``, ``512``, ``1024``, ``2048``,
    ``larger`` or ``none`` (no valid size: the request failed before it had one)."""
    if size is None:
        return "none"
    return next((str(limit) for limit in SIZE_CLASSES if size <= limit), "larger")


class JobHistograms:
    """The histograms, on their own registry (tests make as many as they like)."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry if registry is not None else CollectorRegistry()
        self.job_seconds = Histogram(
            "nst_job_seconds",
            "Seconds in the worker per job: parsing to reply, the job's whole batch call",
            JOB_LABELS,
            buckets=SECONDS_BUCKETS,
            registry=self.registry,
        )
        self.optimization_seconds = Histogram(
            "nst_job_optimization_seconds",
            "Seconds of optimisation per job (preparation and steps, its group's run)",
            JOB_LABELS,
            buckets=SECONDS_BUCKETS,
            registry=self.registry,
        )
        self.steps = Histogram(
            "nst_job_steps",
            "Optimisation steps run per job",
            JOB_LABELS,
            buckets=STEPS_BUCKETS,
            registry=self.registry,
        )
        self.batch_fill = Histogram(
            "nst_batch_fill_ratio",
            "Requests per batch call / batchSize",
            buckets=FILL_BUCKETS,
            registry=self.registry,
        )

    def job(
        self,
        outcome: str,
        size: int | None,
        seconds: float,
        optimization_seconds: float | None = None,
        steps: int | None = None,
    ) -> None:
        """One finished job (optimisation time and steps only for jobs that ran)."""
        labels = (outcome, size_class(size))
        self.job_seconds.labels(*labels).observe(seconds)
        if optimization_seconds is not None:
            self.optimization_seconds.labels(*labels).observe(optimization_seconds)
        if steps is not None:
            self.steps.labels(*labels).observe(steps)

    def batch(self, requests: int, batch_size: int) -> None:
        """One batch call of ``requests`` requests (TorchServe's batchSize ``batch_size``)."""
        self.batch_fill.observe(min(1.0, requests / max(1, batch_size)))


def serving_registry() -> CollectorRegistry:
    """The sum of every worker's files, for multiprocess mode (otherwise :func:`serve` serves
    the worker's own :class:`JobHistograms` registry)."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


def torchserve_metrics(url: str) -> bytes:
    """TorchServe's metrics page and an ``nst_torchserve_metrics_up`` gauge (0 with nothing
    else when the page cannot be read: the histograms are still served)."""
    return upstream_page(url, "nst_torchserve_metrics_up", "TorchServe's own metrics")


def upstream_page(url: str, gauge: str, what: str) -> bytes:
    """Another metrics page (``url``) and a ``gauge`` saying whether it could be read."""
    text = b""
    if url:
        try:
            with urllib.request.urlopen(url, timeout=UPSTREAM_TIMEOUT_S) as reply:
                text = reply.read()
        except (OSError, ValueError):
            log.warning("could not read %s at %s", what, url, exc_info=True)
    if text and not text.endswith(b"\n"):
        text += b"\n"
    up = (
        f"# HELP {gauge} 1 if {what} are in this page\n# TYPE {gauge} gauge\n{gauge} ".encode()
        + (b"1" if text else b"0")
        + b"\n"
    )
    return text + up


class MetricsPage(BaseHTTPRequestHandler):
    """``GET /metrics``: the histograms' registry, then TorchServe's own page."""

    registry: CollectorRegistry
    upstream = ""

    def do_GET(self) -> None:
        if self.path.split("?")[0] not in ("/metrics", "/"):
            self.send_error(404)
            return
        body = generate_latest(self.registry) + torchserve_metrics(self.upstream)
        jobs = os.environ.get(JOBS_UPSTREAM_ENV, "")
        if jobs:
            body += upstream_page(jobs, "nst_jobs_metrics_up", "the jobs API's metrics")
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPE_LATEST)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # scrapes are not news
        return


def serve(
    histograms: JobHistograms, address: str | None = None, upstream: str | None = None
) -> threading.Thread | None:
    """Serve ``histograms`` and TorchServe's metrics (``upstream``, default
    ``$NST_TORCHSERVE_METRICS_URL``) on ``address`` (default ``$NST_METRICS_ADDRESS``) from a
    daemon thread that retries while another worker holds the port; None when switched off."""
    address = os.environ.get(ADDRESS_ENV, DEFAULT_ADDRESS) if address is None else address
    if not address:
        return None
    if upstream is None:
        upstream = os.environ.get(UPSTREAM_ENV, DEFAULT_UPSTREAM)
    host, _, port = address.rpartition(":")
    registry = serving_registry() if os.environ.get(MULTIPROC_ENV) else histograms.registry
    page = type("Page", (MetricsPage,), {"registry": registry, "upstream": upstream})

    def bind_until_served() -> None:
        while True:
            try:
                server = ThreadingHTTPServer((host or "0.0.0.0", int(port)), page)
            except OSError:
                time.sleep(5)  # another worker serves them (multiprocess mode) or is exiting
                continue
            server.daemon_threads = True
            log.info("metrics served on http://%s/metrics (with %s)", address, upstream)
            server.serve_forever()

    thread = threading.Thread(target=bind_until_served, name="nst-histograms", daemon=True)
    thread.start()
    return thread
