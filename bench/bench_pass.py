#!/usr/bin/env python3
"""One VGG pass (forward to relu5_1 + backward to the pixels): dtype x memory layout.

    python bench/bench_pass.py --sizes 128 256 --repeats 3

The cost the optimisation loop pays per step, without the optimiser: tells whether bf16
autocast and channels_last pay on this machine (``nst.precision`` decides from the same facts).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from nst.params import StyleParams  # noqa: E402
from nst.precision import bf16_supported  # noqa: E402
from nst.vgg import VGGFeatures  # noqa: E402
from nst.weights import load_weights  # noqa: E402


def pass_ms(net: VGGFeatures, size: int, channels_last: bool, bf16: bool, repeats: int) -> float:
    """Fastest of ``repeats`` passes after one warm-up, in milliseconds."""
    layout = torch.channels_last if channels_last else torch.contiguous_format
    net = net.to(memory_format=layout)
    names = StyleParams().style_layers + StyleParams().content_layers
    x = torch.rand(1, 3, size, size, requires_grad=True)
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            features = net(net.convention.to_model(x).contiguous(memory_format=layout), names)
        sum(f.float().pow(2).mean() for f in features.values()).backward()
        x.grad = None
        times.append(time.perf_counter() - start)
    return min(times[1:]) * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--bf16-sizes", type=int, nargs="*", default=[128],
                        help="sizes also run in bf16 (emulated bf16 is very slow)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    net = VGGFeatures(load_weights())
    print(f"# native bf16: {bf16_supported(torch.device('cpu'))}, torch {torch.__version__}")
    print("| size | layout | fp32 ms | bf16 ms |\n|---|---|---|---|")
    for size in args.sizes:
        for channels_last in (False, True):
            fp32 = pass_ms(net, size, channels_last, False, args.repeats)
            bf16 = (f"{pass_ms(net, size, channels_last, True, 1):.0f}"
                    if size in args.bf16_sizes else "-")
            layout = "channels_last" if channels_last else "contiguous"
            print(f"| {size} | {layout} | {fp32:.0f} | {bf16} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
