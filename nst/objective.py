"""The objective of one batched step as one pure function: the VGG pass and every job's
weighted loss terms. Kept apart from the loop so that ``torch.compile`` can trace it whole
(fusing the input conversion, ReLUs, Gram normalisation and loss reductions into few kernels)
and so that it can be tested on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch

from .job import PreparedJob
from .losses import content_loss, style_loss, tv_loss
from .precision import autocast
from .vgg import VGGFeatures


class JobTargets(NamedTuple):
    """One job's loss targets and weights, all tensors on the engine's device (no Python
    floats, so a compiled objective is not specialised to one request's weights)."""

    content: dict[str, torch.Tensor]
    style: dict[str, torch.Tensor]  # blended Gram matrices (1, C, C)
    layer_weights: dict[str, torch.Tensor]  # 0-dim, sum to 1
    term_weights: torch.Tensor  # (3,): content, style, tv weights

    @classmethod
    def of(cls, prepared: PreparedJob) -> JobTargets:
        p = prepared.job.params
        device = prepared.init.device
        layer_weights = {
            name: torch.tensor(w, device=device) for name, w in prepared.layer_weights.items()
        }
        weights = torch.tensor([p.content_weight, p.style_weight, p.tv_weight], device=device)
        return cls(prepared.content_targets, prepared.style_targets, layer_weights, weights)


def batch_losses(
    net: VGGFeatures,
    x: torch.Tensor,
    jobs: Sequence[JobTargets],
    wanted: tuple[tuple[int, str], ...],
    pooling: str,
    dtype: torch.dtype,
    channels_last: bool,
) -> torch.Tensor:
    """Rows ``[content, style, tv, weighted total]`` (B, 4) for pixels ``x`` (B, 3, H, W).

    Only the network pass is batched; row ``k`` comes from ``x[k]`` and ``jobs[k]`` alone,
    so no reduction ever mixes jobs. The pass runs in ``dtype`` (autocast); the Gram
    products take the features in that dtype and return float32, and every loss is reduced
    in float32 (``nst.precision``).
    """
    model_in = net.convention.to_model(x)
    if channels_last:
        model_in = model_in.contiguous(memory_format=torch.channels_last)
    with autocast(x.device, dtype):
        features = net.activations(model_in, wanted, pooling)
    # split, not slicing: split's backward is one cat that keeps the features' memory layout,
    # where each slice's backward would scatter into a fresh contiguous tensor, and
    # channels-last gradients would meet it in slow strided adds.
    per_job = {name: f.split(1) for name, f in features.items()}
    rows = []
    for k, job in enumerate(jobs):
        own = {name: parts[k] for name, parts in per_job.items()}
        terms = torch.stack(
            [
                content_loss(own, job.content)[0],
                style_loss(own, job.style, job.layer_weights)[0],
                tv_loss(x[k : k + 1])[0],
            ]
        )
        rows.append(torch.cat([terms, (terms * job.term_weights).sum().reshape(1)]))
    return torch.stack(rows)
