#!/usr/bin/env python3
"""One VGG pass (forward to relu5_1 + backward to the pixels): dtype x memory layout; and
the style layers' Gram matrices alone, autograd's against ``nst.losses.gram_matrix``.

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

from nst.losses import gram_matrix
from nst.params import StyleParams
from nst.precision import bf16_supported
from nst.vgg import VGGFeatures
from nst.weights import load_weights

ROOT = Path(__file__).resolve().parents[1]


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


def autograd_gram(features: torch.Tensor) -> torch.Tensor:
    """The textbook Gram matrix, float32, its backward left to autograd (the engine's before)."""
    b, c, h, w = features.shape
    flat = features.float().reshape(b, c, h * w)
    return torch.bmm(flat, flat.transpose(1, 2)) / (c * h * w)


def gram_ms(net: VGGFeatures, size: int, bf16: bool, gram, repeats: int) -> float:
    """The five style layers' Grams of one image, forward and backward, fastest of ``repeats``
    after a warm-up; features as the engine's pass leaves them (bf16: channels-last)."""
    layout = torch.channels_last if bf16 else torch.contiguous_format
    x = net.convention.to_model(torch.rand(1, 3, size, size)).contiguous(memory_format=layout)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        features = net.to(memory_format=layout)(x, StyleParams().style_layers)
    times = []
    for _ in range(repeats + 1):
        leaves = [f.detach().requires_grad_(True) for f in features.values()]
        start = time.perf_counter()
        sum(gram(f).pow(2).sum() for f in leaves).backward()
        times.append(time.perf_counter() - start)
    return min(times[1:]) * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--bf16-sizes",
        type=int,
        nargs="*",
        default=[128],
        help="sizes also run in bf16 (emulated bf16 is very slow)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    net = VGGFeatures(load_weights())
    print(f"# native bf16: {bf16_supported(torch.device('cpu'))}, torch {torch.__version__}")
    print("| size | layout | fp32 ms | bf16 ms |\n|---|---|---|---|")
    for size in args.sizes:
        for channels_last in (False, True):
            fp32 = pass_ms(net, size, channels_last, False, args.repeats)
            bf16 = (
                f"{pass_ms(net, size, channels_last, True, 1):.0f}"
                if size in args.bf16_sizes
                else "-"
            )
            layout = "channels_last" if channels_last else "contiguous"
            print(f"| {size} | {layout} | {fp32:.0f} | {bf16} |", flush=True)
    print("\n| size | features | autograd Gram ms | nst gram_matrix ms |\n|---|---|---|---|")
    for size in args.sizes:
        for bf16 in (False, True) if size in args.bf16_sizes else (False,):
            ours = gram_ms(net, size, bf16, gram_matrix, args.repeats)
            theirs = gram_ms(net, size, bf16, autograd_gram, args.repeats)
            kind = "bf16, channels_last" if bf16 else "fp32, contiguous"
            print(f"| {size} | {kind} | {theirs:.1f} | {ours:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
