#!/usr/bin/env python3
"""A bounded load run against a running style_transfer server.

    python bench/load.py --url http://127.0.0.1:8080 --management http://127.0.0.1:8081 \
        --clients 16 --requests 4 --size 64 --steps 5

``clients`` threads each send ``requests`` requests (fixed count; the run stops by itself),
retrying a 503 (TorchServe's answer when its job queue is full) after a back-off. Reports
status counts, retries, latency percentiles and the worker's peak resident memory.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import requests

IMAGES = Path(__file__).resolve().parents[2] / "shared/images"


@dataclass
class LoadReport:
    statuses: Counter = field(default_factory=Counter)  # final status of each request
    first_statuses: Counter = field(default_factory=Counter)  # before any retry
    retries: int = 0
    latencies: list[float] = field(default_factory=list)
    peak_rss_mb: float = 0.0
    seconds: float = 0.0

    def summary(self) -> dict:
        lat = sorted(self.latencies) or [0.0]
        return {
            "requests": sum(self.statuses.values()),
            "statuses": dict(self.statuses),
            "first_try_statuses": dict(self.first_statuses),
            "retries_after_503": self.retries,
            "latency_s": {
                "p50": round(statistics.median(lat), 2),
                "p95": round(lat[int(0.95 * (len(lat) - 1))], 2),
                "max": round(lat[-1], 2),
            },
            "worker_peak_rss_mb": round(self.peak_rss_mb),
            "seconds": round(self.seconds, 1),
        }


def worker_pids(management: str) -> list[int]:
    reply = requests.get(f"{management}/models/style_transfer", timeout=10)
    return [w["pid"] for m in reply.json() for w in m["workers"]]


def sample_rss(management: str, report: LoadReport, stop: threading.Event) -> None:
    """Track the peak RSS of the model's worker processes while the run lasts."""
    while not stop.is_set():
        for pid in worker_pids(management):
            try:
                rss = psutil.Process(pid).memory_info().rss / 2**20
            except psutil.Error:
                continue
            report.peak_rss_mb = max(report.peak_rss_mb, rss)
        stop.wait(0.5)


def one_request(url: str, files: dict, data: dict, report: LoadReport, max_tries: int) -> None:
    start = time.monotonic()
    for attempt in range(max_tries):
        reply = requests.post(
            f"{url}/predictions/style_transfer", files=files, data=data, timeout=600
        )
        if attempt == 0:
            report.first_statuses[reply.status_code] += 1
        if reply.status_code != 503:
            break
        report.retries += 1
        time.sleep(min(8.0, 0.5 * 2**attempt))  # TorchServe sends no Retry-After
    report.statuses[reply.status_code] += 1
    report.latencies.append(time.monotonic() - start)


def run_load(
    url: str,
    management: str,
    clients: int,
    requests_each: int,
    size: int,
    steps: int,
    max_tries: int = 8,
) -> LoadReport:
    """Run the load and return its report."""
    files = {
        "content": (IMAGES / "content/chelsea.png").read_bytes(),
        "style": (IMAGES / "style/the_scream.jpg").read_bytes(),
    }
    data = {"size": str(size), "steps": str(steps)}
    report, stop = LoadReport(), threading.Event()
    sampler = threading.Thread(target=sample_rss, args=(management, report, stop), daemon=True)
    sampler.start()
    start = time.monotonic()
    with ThreadPoolExecutor(clients) as pool:
        for _ in range(clients * requests_each):
            pool.submit(one_request, url, files, data, report, max_tries)
    report.seconds = time.monotonic() - start
    stop.set()
    sampler.join()
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--management", default="http://127.0.0.1:8081")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=4, help="requests per client")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    report = run_load(args.url, args.management, args.clients, args.requests, args.size, args.steps)
    print(json.dumps(report.summary(), indent=2))
    return 0 if set(report.statuses) <= {200, 503} else 1  # 503: queue full, retries spent


if __name__ == "__main__":
    sys.exit(main())
