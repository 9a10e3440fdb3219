"""Per-job latency, steps and batch-fill histograms, served by the worker itself.

TorchServe's own Prometheus histograms have the client library's fixed buckets (5 ms to 10 s),
which put every CPU job and many GPU jobs in ``+Inf``; these use buckets for this workload
(a quarter second on GPUs to minutes on CPUs). The worker serves them with prometheus_client
on ``$NST_METRICS_ADDRESS`` (host:port; empty: not served). With several workers per model,
``$PROMETHEUS_MULTIPROC_DIR`` (set by the launcher, emptied at each server start) lets any of
them serve the sum: a worker that cannot bind the port retries, so one always serves.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from prometheus_client import CollectorRegistry, Histogram, multiprocess, start_http_server

log = logging.getLogger(__name__)

ADDRESS_ENV = "NST_METRICS_ADDRESS"
DEFAULT_ADDRESS = "127.0.0.1:8083"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

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


def serve(histograms: JobHistograms, address: str | None = None) -> threading.Thread | None:
    """Serve ``histograms`` on ``address`` (default ``$NST_METRICS_ADDRESS``) from a daemon
    thread that retries while another worker holds the port; None when switched off."""
    address = os.environ.get(ADDRESS_ENV, DEFAULT_ADDRESS) if address is None else address
    if not address:
        return None
    host, _, port = address.rpartition(":")
    registry = serving_registry() if os.environ.get(MULTIPROC_ENV) else histograms.registry

    def bind_until_served() -> None:
        while True:
            try:
                start_http_server(int(port), host or "0.0.0.0", registry)
                log.info("histograms served on http://%s/metrics", address)
                return
            except OSError:
                time.sleep(5)  # another worker serves them (multiprocess mode) or is exiting

    thread = threading.Thread(target=bind_until_served, name="nst-histograms", daemon=True)
    thread.start()
    return thread
