"""The objective: VGG features of a batch of images and each job's weighted loss terms.

:func:`batch_losses` is one pure function, so that ``torch.compile`` can trace it whole
(fusing the input conversion, ReLUs, Gram normalisation and loss reductions into few
kernels); :func:`evaluate_losses` runs it (with the backward pass when asked) the way a
:class:`PassConfig` says.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch

from .losses import content_loss, tv_loss
from .masks import layer_mask
from .params import COMPILE_MODES
from .style_stats import Statistics, style_distance
from .vgg import LayerPositions, VGGFeatures


class StyleRegion(NamedTuple):
    """Style targets for a region of the image (the whole image when ``mask`` is None)."""

    stats: Statistics  # by layer (nst.style_stats)
    mask: torch.Tensor | None  # (1, 1, H, W) soft weights of the region at the image's size


class JobTargets(NamedTuple):
    """One job's loss targets and weights, all tensors on the engine's device (no Python
    floats, so a compiled objective is not specialised to one request's weights)."""

    content: dict[str, torch.Tensor]
    style: tuple[StyleRegion, ...]
    layer_weights: dict[str, torch.Tensor]  # 0-dim, sum to 1
    term_weights: torch.Tensor  # (3,): content, style, tv weights
    style_loss: str  # kind of statistics (nst.params.STYLE_LOSSES)
    directions: dict[str, torch.Tensor] | None  # sliced Wasserstein: (C, C) per layer


def style_term(features: dict[str, torch.Tensor], job: JobTargets) -> torch.Tensor:
    """One job's style loss -> (1,): per layer (weighted), the distance of each region's
    features to its style, weighted by the region's share of the layer's pixels (so every
    pixel pulls as hard as without a mask)."""
    total = features[next(iter(job.layer_weights))].new_zeros(1, dtype=torch.float32)
    for name, weight in job.layer_weights.items():
        f = features[name]
        directions = None if job.directions is None else job.directions[name]
        for region in job.style:
            mask = None if region.mask is None else layer_mask(region.mask, f.shape[-2:])
            d = style_distance(job.style_loss, f, region.stats[name], mask, directions)
            share = 1.0 if mask is None else mask.sum() / mask[0, 0].numel()
            total = total + weight * share * d
    return total


class Losses(NamedTuple):
    """Loss values of a batch, one row per job, on the device."""

    terms: torch.Tensor  # (B, 3): content, style, tv, unweighted
    total: torch.Tensor  # (B,): the weighted sum the optimiser minimises


def network_input(net: VGGFeatures, pixels: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """Pixels (B, 3, H, W) in [0, 1] as the network takes them: its weights' input convention,
    in channels-last memory when the passes run that way."""
    model_in = net.convention.to_model(pixels)
    if channels_last:
        model_in = model_in.contiguous(memory_format=torch.channels_last)
    return model_in


def batch_losses(
    net: VGGFeatures,
    x: torch.Tensor,
    jobs: Sequence[JobTargets],
    positions: LayerPositions,
    pooling: str,
    dtype: torch.dtype,
    channels_last: bool,
) -> Losses:
    """:class:`Losses` of pixels ``x`` (B, 3, H, W), row ``k`` against ``jobs[k]``.

    Only the network pass is batched; row ``k`` comes from ``x[k]`` and ``jobs[k]`` alone,
    so no reduction ever mixes jobs. The pass runs in ``dtype``; the Gram
    products take the features in that dtype and return float32, and every loss is reduced
    in float32 (``nst.precision``).
    """
    model_in = network_input(net, x, channels_last)
    features = net.activations(model_in, positions, pooling, dtype)
    # split, not slicing: split's backward is one cat that keeps the features' memory layout,
    # where each slice's backward would scatter into a fresh contiguous tensor, and
    # channels-last gradients would meet it in slow strided adds. A lone job takes its
    # features whole: its split's cat would only copy each layer's gradient.
    per_job = {name: f.split(1) if len(f) > 1 else (f,) for name, f in features.items()}
    terms = []
    for k, job in enumerate(jobs):
        own = {name: parts[k] for name, parts in per_job.items()}
        terms.append(
            torch.stack(
                [
                    content_loss(own, job.content)[0],
                    style_term(own, job)[0],
                    tv_loss(x[k : k + 1])[0],
                ]
            )
        )
    rows = torch.stack(terms)
    weights = torch.stack([job.term_weights for job in jobs])
    return Losses(rows, (rows * weights).sum(dim=1))


Objective = Callable[..., Losses]  # batch_losses, or its torch.compile'd form


def compiled_objective(mode: str = "default") -> Objective:
    """:func:`batch_losses` through ``torch.compile`` (its element-wise work and reductions
    fused into fewer kernels). ``reduce-overhead`` also records each step's kernels as CUDA
    graphs and replays them, so that a GPU step costs its GPU time rather than the launches
    of its ~500 kernels (docs/benchmarks.md); one graph is kept per input shape."""
    if mode not in COMPILE_MODES:
        raise ValueError(f"compile mode must be one of {COMPILE_MODES}, got {mode!r}")
    if mode == "default":
        return torch.compile(batch_losses)
    compiled = torch.compile(batch_losses, mode=mode)

    def each_call_a_new_step(*args, **kwargs) -> Losses:
        # The graphs' outputs are overwritten by the next replay: evaluate_losses copies
        # them out before the next call, so every call may start a new step.
        torch.compiler.cudagraph_mark_step_begin()
        return compiled(*args, **kwargs)

    return each_call_a_new_step


@dataclass(frozen=True)
class PassConfig:
    """How a batch goes through VGG: the network and its device, the objective, its
    precision and batching."""

    net: VGGFeatures
    device: torch.device
    objective: Objective
    dtype: torch.dtype
    channels_last: bool
    one_pass_per_job: bool  # batch invariance: never mix jobs in one pass


def target_features(
    passes: PassConfig, pixels: torch.Tensor, names: Sequence[str], pooling: str
) -> dict[str, torch.Tensor]:
    """Features of ``pixels`` (1, 3, H, W) for loss targets, in float32: one forward pass in
    the precision and layout of the steps' passes, so a bfloat16 run measures its features
    against targets rounded the same way, at the cost of a bfloat16 pass (about half of a
    float32 one on a CPU that runs bfloat16 natively, docs/benchmarks.md)."""
    model_in = network_input(passes.net, pixels, passes.channels_last)
    with torch.no_grad():
        features = passes.net(model_in, names, pooling, passes.dtype)
    return {name: f.float() for name, f in features.items()}


def evaluate_losses(
    passes: PassConfig,
    pixels: Sequence[torch.Tensor],
    targets: Sequence[JobTargets],
    positions: LayerPositions,
    pooling: str,
    *,
    grad: bool,
    dtype: torch.dtype | None = None,
) -> Losses:
    """Losses of each job's ``pixels`` (1, 3, H, W) against its ``targets``, detached.

    With ``grad``, the gradient of each job's weighted total reaches its pixels' ``.grad``
    (the batch's totals are summed, so each job gets its own gradient). ``dtype`` overrides
    the configured precision (e.g. float32 for reported losses).
    """
    groups = [[k] for k in range(len(pixels))] if passes.one_pass_per_job else [range(len(pixels))]
    parts = []
    with torch.set_grad_enabled(grad):
        for group in groups:
            x = torch.cat([pixels[k] for k in group])
            losses = passes.objective(
                passes.net,
                x,
                [targets[k] for k in group],
                positions,
                pooling,
                dtype or passes.dtype,
                passes.channels_last,
            )
            if grad:
                losses.total.sum().backward()
            parts.append(losses)
    return Losses(
        torch.cat([p.terms for p in parts]).detach(), torch.cat([p.total for p in parts]).detach()
    )
