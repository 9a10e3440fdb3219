#!/usr/bin/env python3
"""The fixed cost of a stylisation: what a run costs beyond its steps, part by part.

    python bench/bench_startup.py --size 256 --steps 20

Three measurements, each in fresh processes (nothing cached in memory):

* the ``nst`` command as a user runs it, at ``--steps`` and ``--steps + 10`` steps: the
  wall time of each, the time per step from their difference, and what is left (the fixed
  cost, process start included);
* the interpreter's teardown once torch is loaded, which the command skips (``os._exit``);
* one instrumented run of the same work, timed part by part: the interpreter, ``import
  torch``, importing the engine and the CLI's libraries, decoding the images, reading the
  weights and building the network, the gate, the preparation and first step (less a
  steady step), the final evaluation, encoding and writing. The goal is everything beyond
  ``import torch`` under 0.5 s.

Prints one JSON object (with the CPU's name) and a Markdown table.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT.parent / "shared" / "images"
CONTENT = IMAGES / "content" / "astronaut.png"
STYLE = IMAGES / "style" / "starry_night.jpg"


def child(size: int, steps: int, out: Path) -> dict[str, float]:
    """The CLI's work, timed part by part (run in a fresh process)."""
    marks = {"start": time.perf_counter()}
    import torch  # noqa: F401

    marks["import torch"] = time.perf_counter()
    import nst.cli  # noqa: F401  (what the command imports: the engine, tqdm, Pillow)
    from nst import Job, StyleParams, Stylizer, decode_image, encode_image

    marks["import nst"] = time.perf_counter()
    job = Job(decode_image(CONTENT), [decode_image(STYLE)], StyleParams(size=size, steps=steps))
    marks["decode images"] = time.perf_counter()
    stylizer = Stylizer(os.environ.get("NST_WEIGHTS"))
    marks["weights + network"] = time.perf_counter()
    stylizer.check(job)
    marks["gate"] = time.perf_counter()
    seen: list[float] = []
    result = stylizer.stylize_batch([job], callback=lambda p: seen.append(time.perf_counter()))[0]
    end = marks["stylize"] = time.perf_counter()
    out.write_bytes(encode_image(result.image, "png"))
    marks["encode + write"] = time.perf_counter()
    step = statistics.median(b - a for a, b in itertools.pairwise(seen))
    parts = {
        name: marks[name] - previous
        for previous, name in zip(list(marks.values()), list(marks)[1:])
    }
    first = seen[0] - marks["gate"]
    parts["preparation + first step, less a step"] = first - step
    parts["final evaluation + image"] = end - seen[-1]
    parts["step (median)"] = step
    order = [*list(marks)[1:-2], "preparation + first step, less a step"]
    order += ["final evaluation + image", "encode + write", "step (median)"]
    return {name: parts[name] for name in order}


def wall(command: list[str]) -> float:
    """Wall time of ``command`` in a fresh process (its output discarded)."""
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, cwd=tempfile.gettempdir())
    return time.perf_counter() - started


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3, help="fresh processes per figure")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.size, args.steps, args.child)))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.png"
        nst = str(Path(sys.executable).parent / "nst")
        runs = {}
        for steps in (args.steps, args.steps + 10):
            command = [nst, str(CONTENT), str(STYLE), "-o", str(out), "--quiet"]
            command += ["--size", str(args.size), "--steps", str(steps)]
            runs[steps] = min(wall(command) for _ in range(args.repeat))
        bare = min(wall([sys.executable, "-c", "pass"]) for _ in range(args.repeat))
        # What the interpreter's teardown costs once torch is loaded (the command skips it).
        torn = [sys.executable, "-c", "import torch; torch.ones(1)"]
        skipped = [sys.executable, "-c", "import os, torch; torch.ones(1); os._exit(0)"]
        teardown = min(wall(torn) for _ in range(args.repeat))
        teardown -= min(wall(skipped) for _ in range(args.repeat))
        timed = []
        for _ in range(args.repeat):
            command = [sys.executable, __file__, "--size", str(args.size)]
            command += ["--steps", str(args.steps), "--child", str(out)]
            reply = subprocess.run(command, check=True, capture_output=True, text=True)
            timed.append(json.loads(reply.stdout.strip().splitlines()[-1]))
    step = (runs[args.steps + 10] - runs[args.steps]) / 10
    parts = {"python start": bare}
    parts.update({name: min(t[name] for t in timed) for name in timed[0]})
    beyond = sum(v for k, v in parts.items() if k not in ("python start", "import torch"))
    beyond -= parts["step (median)"]
    report = {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "size": args.size,
        "cli_seconds": {str(k): round(v, 2) for k, v in runs.items()},
        "cli_step_seconds": round(step, 3),
        "cli_fixed_seconds": round(runs[args.steps] - args.steps * step, 2),
        "parts_seconds": {k: round(v, 3) for k, v in parts.items()},
        "beyond_import_torch_seconds": round(beyond, 3),
        "teardown_skipped_seconds": round(teardown, 3),
    }
    print(json.dumps(report, indent=1))
    print("\n| part | s |\n|---|---|")
    for name, seconds in parts.items():
        print(f"| {name} | {seconds:.3f} |")
    print(f"| **beyond `import torch`** | **{beyond:.3f}** |")
    print(f"\nthe interpreter's teardown with torch loaded, which `nst` skips: {teardown:.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
