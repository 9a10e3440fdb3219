"""The jobs service's Prometheus series (its own registry, served on its ``/metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from .store import STATUSES, JobRecord

WAIT_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
RUN_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)


class JobMetrics:
    """Queue depth by status, queue wait, run time and outcomes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.jobs = Gauge(
            "nst_jobs", "Jobs in the store by status", ["status"], registry=self.registry
        )
        self.wait = Histogram(
            "nst_job_queue_wait_seconds",
            "Seconds from submit to the start of a run",
            buckets=WAIT_BUCKETS,
            registry=self.registry,
        )
        self.run = Histogram(
            "nst_job_run_seconds",
            "Seconds a job ran, by how it ended",
            ["status"],
            buckets=RUN_BUCKETS,
            registry=self.registry,
        )
        self.outcomes = Counter(
            "nst_jobs_ended", "Jobs ended, by status", ["status"], registry=self.registry
        )
        for status in STATUSES[2:]:
            self.outcomes.labels(status)
            self.run.labels(status)

    def started(self, record: JobRecord) -> None:
        if record.started is not None:
            self.wait.observe(max(0.0, record.started - record.created))

    def ended(self, record: JobRecord) -> None:
        self.outcomes.labels(record.status).inc()
        if record.started is not None and record.finished is not None:
            self.run.labels(record.status).observe(max(0.0, record.finished - record.started))

    def cancelled_in_queue(self) -> None:
        self.outcomes.labels("cancelled").inc()

    def exposition(self, counts: dict[str, int]) -> bytes:
        for status, count in counts.items():
            self.jobs.labels(status).set(count)
        return generate_latest(self.registry)
