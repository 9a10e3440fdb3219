#!/usr/bin/env python3
"""GPU figures in one command: ms per step, TFLOP/s, a 512 px job, peak memory, largest size.

    python bench/bench_gpu.py                      # on cuda:0, the issue's full table
    python bench/bench_gpu.py --device cpu --sizes 32 --batches 1 --steps 2 --job-size 32 \
        --job-steps 2 --max-sizes 32                # smoke run (what the tests do)

Per variant (precision, optionally torch.compile) x size x batch: milliseconds per
optimisation step (the engine's own loop, steps timed between two runs of different length
so set-up cancels out), FLOP per step counted by ``torch.utils.flop_counter`` on one real
step, achieved TFLOP/s and the share of ``--peak-tflops`` (the GPU's dense peak for that
precision), peak memory per job. Then the wall time of one 512 px, 300-step job (default
parameters) per variant and optimiser, with its final loss, and the largest size whose step
fits in memory. Prints Markdown tables and a JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from nst import Job, StyleParams, Stylizer, decode_image

ROOT = Path(__file__).resolve().parents[1]

SHARED = ROOT.parent / "shared/images"
# Dense peak TFLOP/s by precision (NVIDIA's data sheets, SXM parts; fp32 runs as TF32).
PEAKS = {"H100": {"fp32": 494.7, "bf16": 989.4}, "H200": {"fp32": 494.7, "bf16": 989.4}}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def variant_stylizer(device: str, variant: str) -> Stylizer:
    """``fp32``, ``bf16`` or ``auto``, optionally ``+compile`` (torch.compile'd VGG pass)."""
    precision, _, extra = variant.partition("+")
    if extra == "compile":
        torch._dynamo.reset()  # each variant compiles afresh, within the recompile limit
    return Stylizer(device=device, precision=precision, compile=extra == "compile")


def jobs(content, style, size: int, batch: int, steps: int, optimizer: str = "lbfgs") -> list[Job]:
    params = StyleParams(size=size, steps=steps, levels=1, optimizer=optimizer)
    return [Job(content, [style], params.replace(seed=k)) for k in range(batch)]


def ms_per_step(
    stylizer: Stylizer, content, style, size: int, batch: int, steps: int, optimizer: str = "lbfgs"
) -> float:
    """Time of ``2*steps`` minus ``steps`` steps, per step (set-up and final pass cancel)."""
    # Warm-up: cuDNN autotuning, and compilation for a compiled variant.
    stylizer.stylize_batch(jobs(content, style, size, batch, 2, optimizer))
    times = []
    for n in (steps, 2 * steps):
        sync(stylizer.device)
        start = time.perf_counter()
        stylizer.stylize_batch(jobs(content, style, size, batch, n, optimizer))
        sync(stylizer.device)
        times.append(time.perf_counter() - start)
    return (times[1] - times[0]) / steps * 1000


def flop_per_step(stylizer: Stylizer, content, style, size: int, batch: int) -> float:
    """FLOP of one step (forward + backward): a 2-step run minus a 1-step run, both counted."""
    counts = []
    for steps in (1, 2):
        counter = FlopCounterMode(display=False)
        with counter:
            stylizer.stylize_batch(jobs(content, style, size, batch, steps))
        counts.append(counter.get_total_flops())
    return float(counts[1] - counts[0])


def peak_memory_mb(stylizer: Stylizer, content, style, size: int, batch: int) -> float | None:
    if stylizer.device.type != "cuda":
        return None
    torch.cuda.reset_peak_memory_stats(stylizer.device)
    stylizer.stylize_batch(jobs(content, style, size, batch, 2))
    return torch.cuda.max_memory_allocated(stylizer.device) / 2**20 / batch


def largest_size(stylizer: Stylizer, content, style, sizes: list[int]) -> int:
    """The largest of ``sizes`` whose job still runs a step without running out of memory."""
    fits = 0
    for size in sizes:
        try:
            stylizer.stylize_batch(jobs(content, style, size, 1, 1))
            fits = size
        except torch.OutOfMemoryError:
            break
        finally:
            if stylizer.device.type == "cuda":
                torch.cuda.empty_cache()
    return fits


def peak_for(device: torch.device, variant: str, override: float | None) -> float | None:
    if override:
        return override
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    precision = "fp32" if variant.startswith("fp32") else "bf16"
    return next((p[precision] for key, p in PEAKS.items() if key in name), None)


def step_table(args, content, style) -> list[dict]:
    """ms/step, TFLOP/s and memory per variant x size x batch."""
    device, rows, flops = torch.device(args.device), [], {}
    for variant in args.variants:
        stylizer = variant_stylizer(args.device, variant)
        peak = peak_for(device, variant, args.peak_tflops)
        for size in args.sizes:
            for batch in args.batches:
                ms = ms_per_step(stylizer, content, style, size, batch, args.steps)
                if (size, batch) not in flops:  # the same FLOP whatever the variant
                    flops[size, batch] = flop_per_step(stylizer, content, style, size, batch)
                tflops = flops[size, batch] / (ms / 1000) / 1e12
                row = {
                    "variant": variant,
                    "size": size,
                    "batch": batch,
                    "ms_per_step": ms,
                    "gflop_per_step": flops[size, batch] / 1e9,
                    "tflops": tflops,
                    "peak_share": tflops / peak if peak else None,
                    "peak_mb_per_job": peak_memory_mb(stylizer, content, style, size, batch),
                }
                rows.append(row)
                print_row(row)
    return rows


def print_row(r: dict) -> None:
    share = f"{r['peak_share']:.0%}" if r["peak_share"] else "n/a"
    memory = f"{r['peak_mb_per_job']:.0f}" if r["peak_mb_per_job"] else "n/a"
    print(
        f"| {r['variant']} | {r['size']} | {r['batch']} | {r['ms_per_step']:.1f} | "
        f"{r['gflop_per_step']:.1f} | {r['tflops']:.2f} | {share} | {memory} |",
        flush=True,
    )


def timed_jobs(args, content, style) -> dict[str, dict]:
    """One ``--job-size`` px, ``--job-steps`` job per variant and optimiser, end to end."""
    device, results = torch.device(args.device), {}
    for variant in ["auto", *args.variants]:
        stylizer = variant_stylizer(args.device, variant)
        for optimizer in args.optimizers:
            params = StyleParams(size=args.job_size, steps=args.job_steps, optimizer=optimizer)
            job = Job(content, [style], params)
            stylizer.stylize(
                Job(content, [style], params.replace(steps=2))
            )  # warm-up (and compilation)
            sync(device)
            start = time.perf_counter()
            result = stylizer.stylize(job)
            sync(device)
            key = f"{variant} {optimizer}"
            results[key] = {
                "seconds": time.perf_counter() - start,
                "dtype": str(stylizer.dtype),
                "loss": result.losses.total,
            }
            print(
                f"- {key} ({stylizer.dtype}): {results[key]['seconds']:.2f} s, "
                f"loss {result.losses.total:.4f}",
                flush=True,
            )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda:0")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4])
    parser.add_argument(
        "--variants",
        nargs="+",
        default=["fp32", "bf16", "fp32+compile", "bf16+compile"],
        help="precision (fp32, bf16, auto), '+compile' for torch.compile",
    )
    parser.add_argument("--optimizers", nargs="+", default=["lbfgs", "adam"])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--job-size", type=int, default=512)
    parser.add_argument("--job-steps", type=int, default=300)
    parser.add_argument("--max-sizes", type=int, nargs="+", default=[1024, 2048, 3072, 4096])
    parser.add_argument("--peak-tflops", type=float, default=None)
    parser.add_argument("--content", type=Path, default=SHARED / "content/astronaut.png")
    parser.add_argument("--style", type=Path, default=SHARED / "style/starry_night.jpg")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    content, style = decode_image(args.content), decode_image(args.style)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"# {name}, torch {torch.__version__}, {args.steps}-step timing, L-BFGS\n"
        "| variant | size | batch | ms/step | GFLOP/step | TFLOP/s | of peak | MB/job |\n"
        "|---|---|---|---|---|---|---|---|",
        flush=True,
    )
    rows = step_table(args, content, style)
    print(
        f"\n{args.job_size} px, {args.job_steps} steps, end to end "
        "(final losses evaluated in fp32):",
        flush=True,
    )
    results = timed_jobs(args, content, style)
    largest = largest_size(variant_stylizer(args.device, "auto"), content, style, args.max_sizes)
    print(f"largest size that fits: {largest}")
    print(json.dumps({"device": name, "rows": rows, "jobs": results, "largest_size": largest}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
