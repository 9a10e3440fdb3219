#!/usr/bin/env python3
"""Engine vs a plain reimplementation of Gatys et al.'s loop, side by side, same images/weights.

    python bench/bench_engine.py --size 256 --steps 100

The baseline is the loop of the notes the product was specified from: the full VGG19
``features`` (layers past conv5_1 get random weights, as our weights file stops there; they
cost time but not loss), content and style targets recomputed at every step, fp32, torch's
L-BFGS driving a closure, from the content image. Both optimise the same objective
(``nst.losses``, default weights); the engine's rows start from the content image too,
until the colour-matched start's. Reported: ms per step, the baseline's loss after
``--steps`` steps, and the wall time each needs to reach that loss, for the engine's
techniques one at a time: the single-scale engine (truncated network, targets once,
one-GEMM Gram) with torch's L-BFGS, then with :mod:`nst.lbfgs`, bfloat16 passes where the
CPU runs them natively, the colour-matched start (``init=matched``), the pyramid
parameterisation (:mod:`nst.preconditioner`), coarse-to-fine (``levels=2``), and the time
a repeated style saves through the style cache, and the time to the loss including each
side's process start (the ``nst`` command against the plain loop with its imports). Where
bfloat16 is native, also how far it
moves the final loss of a full-length run (``--precision-steps``) from float32.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
from bench_startup import wall
from torch import nn
from torchvision.models.vgg import cfgs, make_layers

from nst import Job, StyleParams, Stylizer, decode_image, optimize, reuse_freed_memory
from nst.imageio import image_to_tensor, resize_longest
from nst.layers import layer_index
from nst.losses import content_loss, relative_sq_error, tv_loss
from nst.precision import bf16_supported
from nst.prepare import prepare
from nst.weights import load_weights

ROOT = Path(__file__).resolve().parents[1]

SHARED = ROOT.parent / "shared/images"


def plain_gram(features: torch.Tensor) -> torch.Tensor:
    """The plain loop's Gram matrix, ``F Fᵀ`` by one matmul left to autograd, with our scaling."""
    _, c, h, w = features.shape
    flat = features.view(c, h * w)
    return (flat @ flat.t() / (c * h * w))[None]


def plain_style_loss(features, grams, layer_weights):
    """The layer-weighted relative Gram error (the engine's style term) on :func:`plain_gram`."""
    return sum(
        layer_weights[n] * relative_sq_error(plain_gram(features[n]), g) for n, g in grams.items()
    )


def seeds_loop(weights, content_img, style_img, params: StyleParams, steps: int):
    """The baseline; returns (seconds, losses per step, final loss)."""
    vgg = make_layers(cfgs["E"])
    vgg.load_state_dict(
        {k.removeprefix("features."): v for k, v in weights.state_dict.items()}, strict=False
    )
    vgg = vgg.eval().requires_grad_(False)
    for i, m in enumerate(vgg):
        if isinstance(m, nn.ReLU):
            vgg[i] = nn.ReLU(inplace=False)
    conv = weights.convention
    names = {layer_index(n): n for n in params.content_layers + params.style_layers}
    weights_per_layer = {n: 1 / len(params.style_layers) for n in params.style_layers}

    def extract(x):
        out = {}
        for i, layer in enumerate(vgg):  # the full network, every time
            x = layer(x)
            if i in names:
                out[names[i]] = x
        return out

    img = content_img.clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS([img], max_iter=steps, history_size=100)
    history = []

    def closure():
        with torch.no_grad():
            img.clamp_(0, 1)
        optimizer.zero_grad()
        content_t = extract(conv.to_model(content_img))  # targets recomputed every step
        style_t = {
            n: plain_gram(f)
            for n, f in extract(conv.to_model(style_img)).items()
            if n in params.style_layers
        }
        feats = extract(conv.to_model(img))
        loss = (
            params.content_weight
            * content_loss(
                {n: feats[n] for n in params.content_layers},
                {n: content_t[n] for n in params.content_layers},
            )
            + params.style_weight * plain_style_loss(feats, style_t, weights_per_layer)
            + params.tv_weight * tv_loss(img)
        )[0]
        loss.backward()
        history.append((time.perf_counter(), loss.item()))
        return loss

    start = time.perf_counter()
    optimizer.step(closure)
    seconds = time.perf_counter() - start
    return seconds, [(t - start, v) for t, v in history[:steps]]


def coarse_steps(job: Job) -> int:
    """Steps ``job`` makes at its coarser levels, before the output size."""
    return sum(level.steps for level in job.levels()[:-1])


def engine_run(stylizer, content, style, params, target):
    """Our engine until its loss reaches ``target``: (seconds, steps, [(elapsed, loss)]).

    Coarse-level losses are not comparable with the target (another size), so only steps
    at the output size may stop the run; the loss reported for step k is that of the image
    step k started from.
    """
    history = []
    full_from = coarse_steps(Job(content, [style], params))
    start = time.perf_counter()

    def record(progress) -> bool:
        if progress.step > full_from:
            history.append((time.perf_counter() - start, progress.losses.total))
            return progress.losses.total <= target  # stop once there
        return False

    result = stylizer.stylize(Job(content, [style], params), callback=record)
    return time.perf_counter() - start, result, history


@contextlib.contextmanager
def torch_lbfgs():
    """The engine with ``torch.optim.LBFGS`` (pairs from the step it meant to take), to show
    what :mod:`nst.lbfgs`'s pairs from the real displacement are worth."""
    original = optimize.make_optimizer
    optimize.make_optimizer = lambda pixels, prepared, steps: torch.optim.LBFGS(
        [pixels], lr=1.0, max_iter=1, history_size=optimize.LBFGS_HISTORY
    )
    try:
        yield
    finally:
        optimize.make_optimizer = original


def style_target_seconds(weights, content, style, params) -> tuple[float, float]:
    """Preparing a job (targets) with a cold and with a warm style cache."""
    stylizer = Stylizer(weights, precision="fp32")
    job = Job(content, [style], params)
    times = []
    for _ in range(2):
        start = time.perf_counter()
        with torch.no_grad():
            prepare(job, params.size, stylizer.passes, cache=stylizer.style_cache)
        times.append(time.perf_counter() - start)
    return times[0], times[1]


def fresh_process_seconds(command: list[str], repeat: int = 2) -> float:
    """Wall time of ``command`` in a fresh process, the fastest of ``repeat`` runs."""
    return min(wall(command) for _ in range(repeat))


def with_process_start(args, steps: int, baseline_loop_s: float) -> tuple[float, float]:
    """Both sides as a user runs them, from a fresh process: the ``nst`` command for the
    engine's ``steps`` (its import, weights, preparation, final evaluation and PNG included),
    and for the plain loop its loop time plus what its process does before it (the same
    imports with torchvision's VGG19, the weights, the two images). Returns both seconds."""
    nst = str(Path(sys.executable).parent / "nst")
    with tempfile.TemporaryDirectory() as tmp:
        engine = fresh_process_seconds(
            [
                *(nst, args.content, args.style, "-o", f"{tmp}/out.png", "--quiet"),
                *("--size", str(args.size), "--steps", str(steps)),
            ]
        )
    setup = (
        "import torch; from torchvision.models.vgg import cfgs, make_layers; "
        "from nst import decode_image; from nst.weights import load_weights; "
        f"torch.set_num_threads({args.threads}); make_layers(cfgs['E']); load_weights(); "
        f"decode_image({args.content!r}); decode_image({args.style!r})"
    )
    return fresh_process_seconds([sys.executable, "-c", setup]) + baseline_loop_s, engine


def time_to(history, target):
    """Elapsed seconds at the first step whose loss is at or below ``target``."""
    return next((t for t, v in history if v <= target), float("nan"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--content", default=str(SHARED / "content/astronaut.png"))
    parser.add_argument("--style", default=str(SHARED / "style/starry_night.jpg"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--precision-steps",
        type=int,
        default=300,
        help="length of the fp32-vs-bf16 runs (0: skip them)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    weights = load_weights()
    content, style = decode_image(args.content), decode_image(args.style)
    params = StyleParams(size=args.size, steps=args.steps * 3)  # engine: up to 3x to get there

    c = image_to_tensor(resize_longest(content, args.size))
    s = image_to_tensor(resize_longest(style, args.size))
    base_s, base_hist = seeds_loop(weights, c, s, params, args.steps)
    target = base_hist[-1][1]
    reuse_freed_memory()  # the engine's rows run as the nst command and the workers do
    rows = [
        (
            "plain Gatys loop (baseline)",
            base_s / len(base_hist),
            len(base_hist),
            base_hist[-1][0],
            1.0,
            target,
        )
    ]
    native = bf16_supported(torch.device("cpu"))
    best = "bf16" if native else "fp32"
    plain = {"init": "content", "parameterization": "pixels"}  # the paper's start and space
    variants = [  # (label, precision, parameter changes, with torch's L-BFGS)
        (
            "engine: truncated VGG, targets once, one-GEMM Gram (fp32, torch's L-BFGS)",
            "fp32",
            plain,
            True,
        ),
        ("+ L-BFGS pairs from the real displacement (nst.lbfgs)", "fp32", plain, False),
    ]
    if native:
        variants.append(("+ bf16 passes", "bf16", plain, False))
    else:
        print("bf16: this CPU has no native bfloat16 (oneDNN would emulate it, ~100x slower)")
    pixels = {"parameterization": "pixels"}
    variants.append((f"+ colour-matched start, {best}", best, pixels, False))
    variants.append((f"+ pyramid parameterisation (**the defaults**, {best})", best, {}, False))
    variants.append(
        (f"+ coarse-to-fine (levels=2; off by default), {best}", best, {"levels": 2}, False)
    )
    for label, precision, changes, theirs in variants:
        with torch_lbfgs() if theirs else contextlib.nullcontext():
            secs, result, hist = engine_run(
                Stylizer(weights, precision=precision),
                content,
                style,
                params.replace(**changes),
                target,
            )
        reach = time_to(hist, target)
        rows.append(
            (
                label,
                secs / result.steps_run,
                result.steps_run,
                reach,
                base_hist[-1][0] / reach,
                result.losses.total,
            )
        )
    if native and args.precision_steps:
        fixed = params.replace(steps=args.precision_steps)
        ends = {
            p: Stylizer(weights, precision=p).stylize(Job(content, [style], fixed)).losses
            for p in ("fp32", "bf16")
        }
        drift = ends["bf16"].total / ends["fp32"].total - 1
        print(
            f"{args.precision_steps} steps, final losses in fp32: fp32 passes "
            f"{ends['fp32'].total:.4f}, bf16 passes {ends['bf16'].total:.4f} ({drift:+.2%})"
        )
    defaults = next(row for row in rows if "the defaults" in row[0])
    plain_total, engine_total = with_process_start(args, defaults[2], base_hist[-1][0])
    cold, warm = style_target_seconds(weights, content, style, params)
    print(f"style targets: {cold * 1000:.0f} ms computed, {warm * 1000:.1f} ms from the cache")
    print(
        f"# {args.size} px, {args.steps} steps, {args.threads} threads, "
        f"{platform.processor() or platform.machine()}, torch {torch.__version__}"
    )
    print(f"baseline loss after {args.steps} steps: {target:.4f}")
    print(
        "| run | ms/step | steps to baseline's loss | s to baseline's loss | speed-up "
        "| loss at the end (fp32) |\n|---|---|---|---|---|---|"
    )
    for label, per_step, steps, reach, ratio, final in rows:
        print(
            f"| {label} | {per_step * 1000:.0f} | {steps} | {reach:.1f} | {ratio:.2f}x "
            f"| {final:.4f} |"
        )
    print(
        f"\nincluding process start: plain loop {plain_total:.1f} s (its process's start and "
        f"{args.steps} steps); `nst --steps {defaults[2]}` (the defaults' steps to its loss) "
        f"{engine_total:.1f} s: {plain_total / engine_total:.2f}x"
    )
    print(
        json.dumps(
            {
                "target_loss": target,
                "rows": rows,
                "with_process_start_s": {"plain": plain_total, "nst": engine_total},
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
