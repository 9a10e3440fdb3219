#!/usr/bin/env python3
"""GPU figures in one command: ms per step, TFLOP/s, a 512 px job, peak memory, largest size.

    python bench/bench_gpu.py                      # on cuda:0, every section
    python bench/bench_gpu.py --sections jobs stats   # some sections only
    python bench/bench_gpu.py --device cpu --sizes 32 --batches 1 --steps 2 --job-size 32 \
        --job-steps 2 --max-sizes 32                # smoke run (what the tests do)

Sections (``--sections``, in the order given): ``steps`` (the per-step table), ``jobs``
(one default job per variant and optimiser), ``stats`` (the job with each style statistic
and with a two-style mask), ``batch`` (jobs per second when ``--batch-jobs`` jobs run in
one batch, as the server batches them), ``sizes`` (one ``--big-size`` job and the largest
size whose step fits) and ``profile`` (kernels and GPU time per step of the default job).

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
import dataclasses
import json
import sys
import time
import traceback
from pathlib import Path

import torch
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

from nst import Job, StyleParams, Stylizer, decode_image
from nst.masks import PALETTE
from nst.params import STYLE_LOSSES

ROOT = Path(__file__).resolve().parents[1]

SHARED = ROOT.parent / "shared/images"
# Dense peak TFLOP/s by precision (NVIDIA's data sheets, SXM parts; fp32 runs as TF32).
PEAKS = {"H100": {"fp32": 494.7, "bf16": 989.4}, "H200": {"fp32": 494.7, "bf16": 989.4}}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def variant_stylizer(device: str, variant: str) -> Stylizer:
    """``fp32``, ``bf16`` or ``auto``, optionally ``+compile`` (torch.compile'd objective)
    or ``+compile:MODE`` (a mode of :data:`nst.COMPILE_MODES`, e.g. ``reduce-overhead``)."""
    precision, _, extra = variant.partition("+")
    compiled, _, mode = extra.partition(":")
    if compiled == "compile":
        torch._dynamo.reset()  # each variant compiles afresh, within the recompile limit
    return Stylizer(
        device=device,
        precision=precision,
        compile=compiled == "compile",
        compile_mode=mode or "default",
    )


def jobs(content, style, size: int, batch: int, steps: int, optimizer: str = "lbfgs") -> list[Job]:
    params = StyleParams(size=size, steps=steps, levels=1, optimizer=optimizer)
    return [Job(content, [style], params.replace(seed=k)) for k in range(batch)]


def ms_per_step(
    stylizer: Stylizer, content, style, size: int, batch: int, steps: int, optimizer: str = "lbfgs"
) -> float:
    """Time of ``2*steps`` minus ``steps`` steps, per step (set-up and final pass cancel)."""
    # Warm-up: cuDNN autotuning, and compilation for a compiled variant.
    stylizer.stylize_batch(jobs(content, style, size, batch, 2, optimizer))
    times = [
        time_batch(stylizer, jobs(content, style, size, batch, n, optimizer))[0]
        for n in (steps, 2 * steps)
    ]
    return (times[1] - times[0]) / steps * 1000


def time_batch(stylizer: Stylizer, batch: list[Job]) -> tuple[float, list]:
    """Seconds of one ``stylize_batch`` (the device synchronised at both ends), and its
    results."""
    sync(stylizer.device)
    start = time.perf_counter()
    results = stylizer.stylize_batch(batch)
    sync(stylizer.device)
    return time.perf_counter() - start, results


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


def timed_batch(stylizer: Stylizer, batch: list[Job]) -> tuple[float, list]:
    """Seconds of one ``stylize_batch`` after a 2-step warm-up of the same jobs (cuDNN
    autotuning, compilation), and its results."""
    stylizer.stylize_batch(
        [dataclasses.replace(j, params=j.params.replace(steps=2)) for j in batch]
    )
    return time_batch(stylizer, batch)


def job_figures(seconds: float, results: list, stylizer: Stylizer) -> dict:
    return {
        "seconds": seconds,
        "dtype": str(stylizer.dtype),
        "loss": sum(r.losses.total for r in results) / len(results),
        "steps": results[0].steps_run,
    }


def timed_jobs(args, content, style) -> dict[str, dict]:
    """One ``--job-size`` px, ``--job-steps`` job per variant and optimiser, end to end."""
    results = {}
    for variant in args.job_variants or ["auto", *args.variants]:
        stylizer = variant_stylizer(args.device, variant)
        for optimizer in args.optimizers:
            params = StyleParams(size=args.job_size, steps=args.job_steps, optimizer=optimizer)
            key = f"{variant} {optimizer}"
            runs = []
            for _ in range(args.repeats):  # each after its own warm-up
                seconds, done = timed_batch(stylizer, [Job(content, [style], params)])
                runs.append(job_figures(seconds, done, stylizer))
                report(key, runs[-1])
            results[key] = runs[0] | {"runs": [(r["seconds"], r["loss"]) for r in runs]}
    return results


def report(key: str, figures: dict) -> None:
    extra = f", {figures['jobs_per_s']:.2f} jobs/s" if "jobs_per_s" in figures else ""
    print(
        f"- {key} ({figures['dtype']}): {figures['seconds']:.2f} s{extra}, "
        f"mean loss {figures['loss']:.4f}, {figures['steps']} steps",
        flush=True,
    )


def two_region_mask(content: Image.Image) -> Image.Image:
    """Left half takes style 1, right half style 2 (:data:`nst.masks.PALETTE`)."""
    mask = Image.new("RGB", content.size, PALETTE[1][1])
    mask.paste(PALETTE[2][1], (content.width // 2, 0, content.width, content.height))
    return mask


def statistic_jobs(args, content, style, second_style) -> dict[str, dict]:
    """The default job with each style statistic, and with a two-style mask (auto, L-BFGS)."""
    stylizer, results = variant_stylizer(args.device, "auto"), {}
    base = StyleParams(size=args.job_size, steps=args.job_steps)
    cases = {
        f"style_loss={kind}": Job(content, [style], base.replace(style_loss=kind))
        for kind in STYLE_LOSSES
    }
    cases["mask, 2 styles"] = Job(
        content, [style, second_style], base, mask=two_region_mask(content)
    )
    for key, job in cases.items():
        stylizer.check(job)
        seconds, done = timed_batch(stylizer, [job])
        results[key] = job_figures(seconds, done, stylizer)
        report(key, results[key])
    return results


def batch_throughput(args, content, style) -> dict[str, dict]:
    """Jobs per second when ``n`` default jobs (different seeds) run as one batch, as the
    server runs a batch of ``n`` requests of one size (``--batch-variant``, L-BFGS)."""
    stylizer, results = variant_stylizer(args.device, args.batch_variant), {}
    for n in args.batch_jobs:
        batch = jobs(content, style, args.job_size, n, args.job_steps)
        seconds, done = timed_batch(stylizer, batch)
        figures = job_figures(seconds, done, stylizer) | {"jobs_per_s": n / seconds}
        results[f"batch of {n}"] = figures
        report(f"batch of {n}", figures)
    return results


def size_figures(args, content, style) -> dict:
    """One ``--big-size`` default job, and the largest of ``--max-sizes`` that fits."""
    stylizer = variant_stylizer(args.device, "auto")
    params = StyleParams(size=args.big_size, steps=args.job_steps)
    seconds, done = timed_batch(stylizer, [Job(content, [style], params)])
    big = job_figures(seconds, done, stylizer)
    report(f"{args.big_size} px job", big)
    largest = largest_size(stylizer, content, style, args.max_sizes)
    print(f"largest size that fits: {largest}", flush=True)
    return {"big_job": big, "largest_size": largest}


def profile_steps(args, content, style) -> dict:
    """Kernels launched and GPU busy time per step of a default job against its wall time
    (``torch.profiler``), and the kernels that take the most time."""
    from torch.profiler import ProfilerActivity, profile

    stylizer, steps = variant_stylizer(args.device, args.profile_variant), args.steps
    params = StyleParams(size=args.job_size, steps=2 * steps)
    seconds = {}
    activities = [ProfilerActivity.CPU]
    if stylizer.device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    for n in (steps, 2 * steps):
        job = Job(content, [style], params.replace(steps=n))
        stylizer.stylize(job)  # warm-up
        with profile(activities=activities) as prof:
            sync(stylizer.device)
            start = time.perf_counter()
            stylizer.stylize(job)
            sync(stylizer.device)
        seconds[n] = time.perf_counter() - start
        kernels = [e for e in prof.events() if e.device_type.name in ("CUDA", "PRIVATEUSE1")]
        if n == steps:
            first_count, first_busy = len(kernels), busy_us(kernels)
    per_step = {
        "wall_ms": (seconds[2 * steps] - seconds[steps]) / steps * 1000,
        "kernels": (len(kernels) - first_count) / steps,
        "gpu_busy_ms": (busy_us(kernels) - first_busy) / steps / 1000,
    }
    print(
        f"per step: {per_step['wall_ms']:.2f} ms wall, {per_step['kernels']:.0f} kernels, "
        f"{per_step['gpu_busy_ms']:.2f} ms of GPU busy time",
        flush=True,
    )
    sort = "self_device_time_total" if stylizer.device.type == "cuda" else "self_cpu_time_total"
    print(prof.key_averages().table(sort_by=sort, row_limit=15), flush=True)
    return per_step


def busy_us(kernels: list) -> float:
    """Microseconds the device spent in ``kernels`` (profiler events on the device)."""
    return sum(e.time_range.elapsed_us() for e in kernels)


SECTIONS = ("steps", "jobs", "stats", "batch", "sizes", "profile")


def run_section(name: str, args, content, style, second_style):
    if name == "steps":
        print(
            f"{args.steps}-step timing, L-BFGS\n"
            "| variant | size | batch | ms/step | GFLOP/step | TFLOP/s | of peak | MB/job |\n"
            "|---|---|---|---|---|---|---|---|",
            flush=True,
        )
        return step_table(args, content, style)
    if name == "jobs":
        print(
            f"{args.job_size} px, {args.job_steps} steps, end to end "
            "(final losses evaluated in fp32):",
            flush=True,
        )
        return timed_jobs(args, content, style)
    if name == "stats":
        return statistic_jobs(args, content, style, second_style)
    if name == "batch":
        return batch_throughput(args, content, style)
    if name == "sizes":
        return size_figures(args, content, style)
    return profile_steps(args, content, style)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda:0")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4])
    parser.add_argument(
        "--variants",
        nargs="+",
        default=["fp32", "bf16", "fp32+compile", "bf16+compile"],
        help="precision (fp32, bf16, auto), '+compile' for torch.compile, "
        "'+compile:MODE' for one of its modes",
    )
    parser.add_argument(
        "--job-variants",
        nargs="+",
        default=None,
        help="variants of the jobs section (default: auto and --variants)",
    )
    parser.add_argument("--optimizers", nargs="+", default=["lbfgs", "adam"])
    parser.add_argument("--repeats", type=int, default=1, help="runs of each job (jobs section)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--job-size", type=int, default=512)
    parser.add_argument("--job-steps", type=int, default=300)
    parser.add_argument("--batch-jobs", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--batch-variant", default="auto", help="variant of the batch section")
    parser.add_argument("--profile-variant", default="auto", help="variant of the profile section")
    parser.add_argument("--big-size", type=int, default=1024)
    parser.add_argument("--max-sizes", type=int, nargs="+", default=[1024, 2048, 3072, 4096])
    parser.add_argument("--peak-tflops", type=float, default=None)
    parser.add_argument("--content", type=Path, default=SHARED / "content/astronaut.png")
    parser.add_argument("--style", type=Path, default=SHARED / "style/starry_night.jpg")
    parser.add_argument("--second-style", type=Path, default=SHARED / "style/the_scream.jpg")
    parser.add_argument("--json-out", type=Path, default=None, help="also write the report here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device)
    content, style = decode_image(args.content), decode_image(args.style)
    second_style = decode_image(args.second_style)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"# {name}, torch {torch.__version__}", flush=True)
    report_all: dict = {"device": name, "torch": torch.__version__}
    failed = False
    for section in args.sections:
        print(f"\n## {section}", flush=True)
        started = time.perf_counter()
        try:
            report_all[section] = run_section(section, args, content, style, second_style)
        except Exception:  # one failed section must not cost the others' figures
            traceback.print_exc()
            report_all[section] = {"error": traceback.format_exc(limit=3)}
            failed = True
        print(f"({section}: {time.perf_counter() - started:.0f} s)", flush=True)
        if args.json_out:
            args.json_out.write_text(json.dumps(report_all, indent=1))
    print(json.dumps(report_all))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
