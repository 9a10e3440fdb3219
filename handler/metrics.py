"""The handler's Prometheus metrics (declared in ../metrics.yaml, emitted here)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch

from nst import Result, StyleCache

from .histograms import JobHistograms

log = logging.getLogger(__name__)

# name -> (type, unit, extra label). Must match metrics.yaml (a test checks it).
METRICS = {
    "nst_jobs_total": ("counter", "Count", "outcome"),
    "nst_optimization_seconds_total": ("counter", "Seconds", None),
    "nst_optimization_steps_total": ("counter", "Count", None),
    "nst_output_pixels_total": ("counter", "Count", None),
    "nst_deadline_stops_total": ("counter", "Count", None),
    "nst_batch_jobs": ("gauge", "Count", None),
    "nst_final_style_loss": ("gauge", "None", None),
    "nst_final_content_loss": ("gauge", "None", None),
    "nst_gpu_memory_peak_ratio": ("gauge", "None", None),
    "nst_style_cache_hits_total": ("counter", "Count", None),
    "nst_style_cache_misses_total": ("counter", "Count", None),
    "nst_style_cache_bytes": ("gauge", "Bytes", None),
}


class HandlerMetrics:
    """Thin wrapper over TorchServe's ``context.metrics`` (a no-op without it) and the
    worker's own histograms (``handler.histograms``; none in tests that do not ask)."""

    def __init__(self, context_metrics: Any | None, histograms: JobHistograms | None = None):
        self._metrics = context_metrics
        self._histograms = histograms

    def _emit(self, name: str, value: float, label: str | None = None) -> None:
        """Record one value; a failure is logged, never raised (metrics never fail a reply)."""
        if self._metrics is None:
            return
        try:
            from ts.metrics.dimension import Dimension
            from ts.metrics.metric_type_enum import MetricTypes

            kind, unit, label_name = METRICS[name]
            dims = [Dimension(label_name, label)] if label_name else []
            self._metrics.add_metric(
                name, value, unit, dimensions=dims, metric_type=MetricTypes(kind)
            )
        except Exception:
            log.warning("could not record metric %s", name, exc_info=True)

    def job_outcome(self, outcome: str, count: int = 1) -> None:
        """Count jobs by outcome: ok, deadline (answered with the image so far), rejected
        (503: no time to start, or too large for memory), invalid, unauthorized, error."""
        self._emit("nst_jobs_total", count, outcome)

    def job_finished(
        self,
        outcome: str,
        size: int | None,
        seconds: float,
        optimization_seconds: float | None,
        steps: int | None,
    ) -> None:
        """One job's reply is ready: the histograms (never raises)."""
        self._observe(
            "a job's histograms",
            lambda h: h.job(outcome, size, seconds, optimization_seconds, steps),
        )

    def batch_call(self, requests: int, batch_size: int) -> None:
        """One call of the handler with ``requests`` requests (never raises)."""
        self._observe("the batch fill", lambda h: h.batch(requests, batch_size))

    def _observe(self, what: str, record: Callable[[JobHistograms], None]) -> None:
        """Record into the histograms, if any; a failure is logged, never raised."""
        if self._histograms is None:
            return
        try:
            record(self._histograms)
        except Exception:
            log.warning("could not record %s", what, exc_info=True)

    def batch(self, jobs: int, results: list[Result]) -> None:
        """Record one jointly optimised group."""
        self._emit("nst_batch_jobs", jobs)
        self._emit("nst_optimization_seconds_total", results[0].seconds)
        self._emit("nst_optimization_steps_total", max(r.steps_run for r in results))
        for r in results:
            self._emit("nst_output_pixels_total", r.image.width * r.image.height)
            self._emit("nst_final_style_loss", r.losses.style)
            self._emit("nst_final_content_loss", r.losses.content)
            if r.stopped == "deadline":
                self._emit("nst_deadline_stops_total", 1)

    def gpu_memory(self, device: torch.device) -> None:
        """Peak GPU memory of the last group as a fraction of the device's; GPUs only."""
        if device.type != "cuda":
            return
        total = torch.cuda.get_device_properties(device).total_memory
        self._emit("nst_gpu_memory_peak_ratio", torch.cuda.max_memory_allocated(device) / total)
        torch.cuda.reset_peak_memory_stats(device)

    def style_cache(self, cache: StyleCache) -> None:
        """Style-target cache lookups since the last report, and the bytes it holds now."""
        self._emit("nst_style_cache_bytes", cache.bytes)
        hits, misses = cache.new_lookups()
        if hits:
            self._emit("nst_style_cache_hits_total", hits)
        if misses:
            self._emit("nst_style_cache_misses_total", misses)
