"""bench/bench_gpu.py runs end to end (on the CPU, tiny sizes): the GPU figures are one command."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_benchmark_smoke_run_on_cpu():
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench/bench_gpu.py"),
            "--device",
            "cpu",
            "--sizes",
            "32",
            "--batches",
            "1",
            "2",
            "--variants",
            "fp32",
            "--optimizers",
            "lbfgs",
            "adam",
            "--steps",
            "2",
            "--job-size",
            "32",
            "--job-steps",
            "2",
            "--max-sizes",
            "32",
            "48",
            "--batch-jobs",
            "1",
            "2",
            "--big-size",
            "40",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(report) >= {"steps", "jobs", "stats", "batch", "sizes", "profile"}
    rows = {(r["size"], r["batch"]): r for r in report["steps"]}
    assert set(rows) == {(32, 1), (32, 2)}
    one, two = rows[(32, 1)], rows[(32, 2)]
    assert one["ms_per_step"] > 0 and one["gflop_per_step"] > 1  # ~1.6 GFLOP at 32 px
    assert abs(two["gflop_per_step"] / one["gflop_per_step"] - 2) < 0.01  # FLOP scale with jobs
    assert report["sizes"]["largest_size"] == 48
    assert report["sizes"]["big_job"]["steps"] == 2
    assert set(report["jobs"]) == {"auto lbfgs", "auto adam", "fp32 lbfgs", "fp32 adam"}
    assert all(job["seconds"] > 0 and job["loss"] > 0 for job in report["jobs"].values())
    # every style statistic and a mask run their steps to a finite loss
    assert set(report["stats"]) == {
        "style_loss=gram",
        "style_loss=mean_cov",
        "style_loss=sliced_wasserstein",
        "mask, 2 styles",
    }
    assert all(r["steps"] == 2 and math.isfinite(r["loss"]) for r in report["stats"].values())
    assert report["batch"]["batch of 2"]["jobs_per_s"] > 0
    assert report["profile"]["wall_ms"] > 0
    assert "| fp32 | 32 | 1 |" in result.stdout
