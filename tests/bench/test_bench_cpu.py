"""The CPU benchmarks run end to end at tiny sizes: every figure in docs/benchmarks.md stays
one command away."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def bench(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_engine_benchmark_rows():
    out = bench("bench/bench_engine.py", "--size", "64", "--steps", "4", "--precision-steps", "0")
    rows = [line for line in out.splitlines() if line.startswith("| ")][1:]
    assert rows[0].startswith("| plain Gatys loop (baseline) |")
    assert any("nst.lbfgs" in row for row in rows) and any("coarse-to-fine" in row for row in rows)


def test_parameterization_benchmark_rows():
    out = bench("bench/bench_parameterization.py", "--size", "48", "--steps", "3")
    rows = [line for line in out.splitlines() if line.startswith("| ")][1:]  # after the header
    assert len(rows) == 6
    assert {row.split(" | ")[2] for row in rows} == {"gram", "mean_cov", "sliced_wasserstein"}


def test_lbfgs_runs_benchmark_rows():
    out = bench(
        "bench/bench_lbfgs_runs.py",
        "--size",
        "32",
        "--steps",
        "4",
        "--every",
        "2",
        "--run",
        "torch,fp32",
        "--run",
        "nst,fp32,3",
    )
    rows = [line.split(" | ") for line in out.splitlines() if line.startswith("| ")][1:]
    assert [row[0] for row in rows] == ["| torch,fp32", "| nst,fp32,3"]
    assert [row[1] for row in rows] == ["20", "3"]
    for row in rows:
        first, second, final = float(row[2]), float(row[3]), float(row[5])
        assert second < first and final > 0


def test_levels_benchmark_compares_runs():
    shared = ROOT.parent / "shared/images"
    out = bench(
        "bench/bench_levels.py",
        "--size",
        "32",
        "--run",
        "steps=2,init=content",
        "--run",
        "steps=2,init=matched",
        "--content",
        str(shared / "content/chelsea.png"),
        "--style",
        str(shared / "style/the_scream.jpg"),
    )
    rows = [line.split(" | ") for line in out.splitlines() if line.startswith("| ")][1:]
    assert [row[0] for row in rows] == ["| steps=2,init=content", "| steps=2,init=matched"]
    assert all(float(row[2]) > 0 for row in rows)
    assert rows[0][2] != rows[1][2]  # another start, another result


def test_levels_benchmark_counts_steps_to_a_target():
    def steps_to(target: str) -> list[list[str]]:
        out = bench(
            "bench/bench_levels.py",
            "--size",
            "64",
            "--target",
            target,
            "--run",
            "steps=6",
            "--run",
            "steps=6,levels=2,coarse_share=0.5",
        )
        table = [line.split(" | ") for line in out.splitlines() if line.startswith("| ")]
        assert table[0][-1] == "full-size steps to the target |"  # the header has the columns
        return table[1:]

    easy = steps_to("1000")  # any image is below it: the first full-size step stops the run
    assert [(row[-2], row[-1]) for row in easy] == [("0", "1 |"), ("3", "1 |")]
    never = steps_to("0")
    assert [row[-1] for row in never] == ["not reached |"] * 2


def test_pass_benchmark_times_the_pass_and_the_grams():
    out = bench("bench/bench_pass.py", "--sizes", "32", "--bf16-sizes", "32", "--repeats", "1")
    rows = [line.split(" | ") for line in out.splitlines() if line.startswith("| 32 |")]
    assert [row[1] for row in rows] == [
        "contiguous",
        "channels_last",
        "fp32, contiguous",
        "bf16, channels_last",
    ]
    assert all(float(value.strip(" |")) > 0 for row in rows for value in row[2:])


def test_quality_gallery_scores_every_method_by_every_statistic(tmp_path):
    page = tmp_path / "gallery.md"
    args = ["--pairs", "1", "--write", str(page), "--images", str(tmp_path / "img")]
    out = bench("bench/bench_quality.py", "gallery", "--size", "32", "--seconds", "0.5", *args)
    rows = [line.split(" | ") for line in page.read_text().splitlines() if "| ![" in line]
    assert len(rows) == 8 and "gram" in rows[0][0]
    assert all(float(cell) > 0 for row in rows for cell in row[3:7])
    assert len(list((tmp_path / "img").iterdir())) == 10  # content, style, eight results
    assert "| sliced_wasserstein |" in out.split("## Summary")[1]


def test_quality_runs_and_matrix_roots():
    out = bench("bench/bench_quality.py", "runs", "--size", "32", "--pairs", "1",
                "--run", "few=steps=2", "--run", "preset=preset=fast,steps=2")  # fmt: skip
    rows = [line.split(" | ") for line in out.splitlines() if line.startswith("| few") or
            line.startswith("| preset")]  # fmt: skip
    assert [row[3] for row in rows] == ["2", "2"]
    roots = bench("bench/bench_sqrtm.py", "--channels", "8", "--repeats", "1")
    row = next(line.split(" | ") for line in roots.splitlines() if line.startswith("| 8 |"))
    assert float(row[3].strip(" |")) < 1e-3  # the two roots agree


def test_decode_benchmark_decodes_large_jpegs_at_a_reduced_scale():
    out = bench("bench/bench_decode.py", "--megapixels", "2", "--side", "128", "--repeats", "1")
    row = next(line.split(" | ") for line in out.splitlines() if line.startswith("| 2 MP"))
    width, height = map(int, row[4].split("x"))
    assert min(width, height) >= 128 and width * height < 2e6 / 8  # reduced, still covering
    assert float(row[5].strip(" |")) > 30  # the same picture at the size used


def test_startup_benchmark_breaks_the_fixed_cost_down():
    out = bench("bench/bench_startup.py", "--size", "64", "--steps", "2", "--repeat", "1")
    report = __import__("json").loads(out[: out.index("\n| part")])
    parts = report["parts_seconds"]
    assert {"import torch", "import nst", "weights + network", "encode + write"} <= set(parts)
    assert all(seconds >= 0 for seconds in parts.values())
    assert 0 < report["beyond_import_torch_seconds"] < report["cli_seconds"]["2"]
    assert "| **beyond `import torch`** |" in out
