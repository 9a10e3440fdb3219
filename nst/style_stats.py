"""What the style loss matches, per layer: Gram matrices, mean and covariance, or the whole
distribution of the features (sliced Wasserstein).

A *statistic* is a tuple of tensors per layer, made once per style image
(:func:`style_statistics`), blended for several styles (:func:`blend`), and compared with
the output's features at each step (:func:`style_distance`). Every distance is relative
(dimensionless, see :mod:`nst.losses`), so the style weight means the same for each kind.
Several styles blend as a mixture of their feature distributions: the blended Gram and mean
and covariance are the mixture's moments; the sliced-Wasserstein target pools the styles'
pixels in proportion to their weights.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .losses import (
    evenly_spaced_rows,
    feature_matrix,
    gaussian_w2,
    gram_matrix,
    masked_gram_matrix,
    mean_covariance,
    relative_sq_error,
    sliced_wasserstein,
    sqrtm_eigh,
)

# Pixels of a style layer kept as the sliced-Wasserstein target: enough for the quantiles
# of every projection, and memory bounded whatever the style's size.
MAX_SAMPLES = 16384

Statistic = tuple[torch.Tensor, ...]  # one layer's target, laid out by kind
Statistics = dict[str, Statistic]  # by layer name


def style_statistics(kind: str, features: dict[str, torch.Tensor]) -> Statistics:
    """The targets of one style image's features (1, C, H, W) per layer."""
    out: Statistics = {}
    for name, f in features.items():
        if kind == "gram":
            out[name] = (gram_matrix(f),)
        elif kind == "mean_cov":
            mean, cov = mean_covariance(f)
            out[name] = (mean, cov, sqrtm_eigh(cov))
        else:
            samples = feature_matrix(f)[0]
            out[name] = (evenly_spaced_rows(samples, min(samples.shape[0], MAX_SAMPLES)),)
    return out


def blend(kind: str, stats: Sequence[Statistics], weights: Sequence[float]) -> Statistics:
    """The statistics of the mixture of several styles drawn with ``weights``."""
    if len(stats) == 1:
        return dict(stats[0])
    shares = [w / sum(weights) for w in weights]
    out: Statistics = {}
    for name in stats[0]:
        layer = [s[name] for s in stats]
        if kind == "gram":
            out[name] = (_mix([s[0] for s in layer], shares),)
        elif kind == "mean_cov":
            mean = _mix([s[0] for s in layer], shares)
            second = _mix([s[1] + _outer(s[0]) for s in layer], shares)
            cov = second - _outer(mean)
            out[name] = (mean, cov, sqrtm_eigh(cov))
        else:
            total = max(s[0].shape[0] for s in layer)
            parts = [
                evenly_spaced_rows(s[0], max(1, round(w * total))) for w, s in zip(shares, layer)
            ]
            out[name] = (torch.cat(parts),)
    return out


def style_distance(
    kind: str,
    features: torch.Tensor,
    target: Statistic,
    mask: torch.Tensor | None = None,
    directions: torch.Tensor | None = None,
) -> torch.Tensor:
    """Distance -> (1,) between one item's features (1, C, H, W), restricted to the soft
    region ``mask`` (1, 1, H, W) when given, and a layer's ``target``; ``directions``
    (C, K) are the projections of the sliced-Wasserstein distance."""
    if kind == "gram":
        gram = gram_matrix(features) if mask is None else masked_gram_matrix(features, mask)
        return relative_sq_error(gram, target[0])
    if kind == "mean_cov":
        mean, cov = mean_covariance(features, mask)
        return gaussian_w2(mean, cov, *target)
    assert directions is not None
    samples = feature_matrix(features)[0]
    if mask is not None:  # the region's pixels: those where it holds most of the weight
        samples = samples[mask.reshape(-1) >= 0.5]
        if samples.shape[0] == 0:
            return features.new_zeros(1, dtype=torch.float32)
    return sliced_wasserstein(samples, target[0], directions).reshape(1)


def _mix(values: list[torch.Tensor], shares: list[float]) -> torch.Tensor:
    return torch.stack([w * v for w, v in zip(shares, values)]).sum(0)


def _outer(mean: torch.Tensor) -> torch.Tensor:
    return mean.unsqueeze(-1) @ mean.unsqueeze(-2)
