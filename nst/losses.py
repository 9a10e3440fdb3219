"""Pure loss functions of the method, each returning one value per batch item.

Normalisation (a documented departure from the paper): the paper's style term is
``1/(4 N² M²) Σ (G - A)²`` on raw Gram matrices and its content term ``½ Σ (F - P)²``, whose
magnitudes depend on image size and on the weights' input scale (Caffe 0..255 inputs give
features ~60x larger than torchvision's normalised ones, and the style term scales with the
fourth power of that). Here both terms are *relative* squared errors:

* content: ``Σ (F - P)² / Σ P²``
* style, per layer: ``Σ (G - A)² / Σ A²`` with ``G = F Fᵀ / (C·H·W)``

so they are dimensionless, independent of resolution and weight convention, and every layer
contributes on the same scale (what the paper's 1/(4N²M²) aims at). Default weights therefore
carry over between weight files and output sizes.
"""

from __future__ import annotations

import torch

_EPS = 1e-8
TARGET_QUANTILES = 4096  # style pixels per sliced-Wasserstein projection (see below)


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """Gram matrices ``F Fᵀ / (C·H·W)`` of features (B, C, H, W) -> (B, C, C), at least
    float32.

    The product runs in the features' dtype (a bfloat16 GEMM accumulates in float32; its
    result is rounded to bfloat16, a relative 2⁻⁹, before the cast to float32), in whichever
    memory layout the features have, and its backward is one GEMM (see ``_GramProduct``).
    """
    _, c, h, w = features.shape
    gram = _GramProduct.apply(features)
    return gram.to(torch.promote_types(gram.dtype, torch.float32)) / (c * h * w)


class _GramProduct(torch.autograd.Function):
    """``F Fᵀ`` per batch item of features (B, C, H, W), with a one-GEMM backward.

    Autograd's own backward of ``bmm(F, Fᵀ)`` takes two GEMMs and adds them, and on a CPU
    it copies channels-last features and hands back a gradient in another layout, which the
    network's own gradient then meets in a slow strided add (at 256 px in bfloat16, all five
    style layers, forward and backward: 82 ms against 9 ms here; ``bench/bench_pass.py``).
    As the product is symmetric, ``dF = (dG + dGᵀ) F``; F is used in its own layout as a
    matrix (C, H·W) or, channels-last, (H·W, C), and the gradient comes back in that layout.
    """

    @staticmethod
    def forward(ctx, features: torch.Tensor) -> torch.Tensor:
        if not _channels_last(features):
            features = features.contiguous()
        ctx.save_for_backward(features)
        m = _as_matrices(features)
        # One mm per item: BLAS takes the transposed operand as it is, where bmm would copy.
        if _channels_last(features):
            return torch.stack([torch.mm(item.t(), item) for item in m])
        return torch.stack([torch.mm(item, item.t()) for item in m])

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (features,) = ctx.saved_tensors
        b, c, h, w = features.shape
        sym = (grad + grad.transpose(1, 2)).to(features.dtype)
        m = _as_matrices(features)
        if _channels_last(features):
            return torch.bmm(m, sym).view(b, h, w, c).permute(0, 3, 1, 2)
        return torch.bmm(sym, m).view(b, c, h, w)


def _channels_last(features: torch.Tensor) -> bool:
    """Channels-last features (NHWC in memory) that are not also plainly contiguous."""
    return (
        features.is_contiguous(memory_format=torch.channels_last) and not features.is_contiguous()
    )


def _as_matrices(features: torch.Tensor) -> torch.Tensor:
    """Views (B, C, H·W) of contiguous features, or (B, H·W, C) of channels-last ones."""
    b, c, h, w = features.shape
    if _channels_last(features):
        return features.permute(0, 2, 3, 1).reshape(b, h * w, c)
    return features.reshape(b, c, h * w)


def relative_sq_error(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``Σ (x - t)² / Σ t²`` over all but the batch dimension -> (B,)."""
    dims = tuple(range(1, x.dim()))
    diff = (x - target).pow(2).sum(dims)
    return diff / (target.pow(2).sum(dims) + _EPS)


def content_loss(
    features: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]
) -> torch.Tensor:
    """Mean over content layers of the relative feature error -> (B,)."""
    terms = [relative_sq_error(features[name], targets[name]) for name in targets]
    return torch.stack(terms).mean(0)


def tv_loss(image: torch.Tensor) -> torch.Tensor:
    """Total variation: mean squared difference of neighbouring pixels -> (B,)."""
    dx = (image[..., :, 1:] - image[..., :, :-1]).pow(2).mean((1, 2, 3))
    dy = (image[..., 1:, :] - image[..., :-1, :]).pow(2).mean((1, 2, 3))
    return dx + dy


def masked_gram_matrix(features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Guided Gram matrix (Gatys et al. 2017) of features (B, C, H, W) under soft weights
    ``mask`` (B or 1, 1, H, W): ``(F·m)(F·m)ᵀ / (C·Σm²)``, the Gram of the region alone."""
    h, w = features.shape[-2:]
    gram = gram_matrix(features * mask.to(features.dtype))
    area = mask.to(gram.dtype).pow(2).sum((1, 2, 3)).view(-1, 1, 1)
    return gram * (h * w) / (area + _EPS)


def feature_matrix(features: torch.Tensor) -> torch.Tensor:
    """Features (B, C, H, W) as samples (B, H·W, C), one row per pixel, at least float32."""
    b, c, h, w = features.shape
    wide = features.to(torch.promote_types(features.dtype, torch.float32))
    return wide.permute(0, 2, 3, 1).reshape(b, h * w, c)


def mean_covariance(
    features: torch.Tensor, mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (B, C) and covariance (B, C, C) of the features' pixels, in float32, weighted
    by ``mask`` (B or 1, 1, H, W) when given."""
    x = feature_matrix(features)
    if mask is None:
        weights = torch.full_like(x[..., :1], 1.0 / x.shape[1])
    else:
        m = mask.to(x.dtype).expand(x.shape[0], -1, -1, -1).reshape(x.shape[0], -1, 1)
        weights = m / (m.sum(1, keepdim=True) + _EPS)
    mean = (weights * x).sum(1)
    centred = x - mean.unsqueeze(1)
    cov = torch.bmm((centred * weights).transpose(1, 2), centred)
    return mean, cov


def trace_sqrt(matrix: torch.Tensor) -> torch.Tensor:
    """``tr(M^½)`` of symmetric PSD matrices (B, C, C) -> (B,), differentiable, from the
    eigenvalues (``eigvalsh`` in float64, whose gradient needs no eigenvector differences),
    on every device. Eigenvalues below a tiny share of the largest (zero, or below zero by
    rounding) are raised to that share, where the root's gradient is finite.

    Not Newton-Schulz iterations, though they need no host synchronisation on a GPU: a
    covariance of ReLU features is nearly singular, rounding leaves it slightly negative
    eigenvalues, and the iteration multiplies those at every step until it overflows (with
    TF32 products on a GPU at once; see ``bench/bench_sqrtm.py``).
    """
    # float64: in float32 the nearly singular covariances of small images (a few feature
    # pixels for hundreds of channels) gave NaN gradients and then LAPACK failures
    values = torch.linalg.eigvalsh(matrix.double())
    floor = values.detach().amax(1, keepdim=True).clamp_min(_EPS) * 1e-7
    return torch.where(values > floor, values, floor).sqrt().sum(1).to(matrix.dtype)


def sqrtm_eigh(matrix: torch.Tensor) -> torch.Tensor:
    """Exact square roots of symmetric PSD matrices (B, C, C) by eigendecomposition (for
    fixed targets; not meant for gradients)."""
    values, vectors = torch.linalg.eigh(matrix.double())
    root = vectors @ torch.diag_embed(values.clamp_min(0).sqrt()) @ vectors.transpose(1, 2)
    return root.to(matrix.dtype)


def gaussian_w2(
    mean: torch.Tensor,
    cov: torch.Tensor,
    target_mean: torch.Tensor,
    target_cov: torch.Tensor,
    target_cov_sqrt: torch.Tensor,
) -> torch.Tensor:
    """Relative squared Wasserstein-2 distance between Gaussians -> (B,):
    ``(|μ - μₜ|² + tr(Σ + Σₜ - 2 (Σₜ^½ Σ Σₜ^½)^½)) / (|μₜ|² + tr Σₜ)``.

    ``target_cov_sqrt`` is ``Σₜ^½`` (computed once, :func:`sqrtm_eigh`); the inner root's
    trace is taken by :func:`trace_sqrt` so gradients flow through it.
    """
    mean_term = (mean - target_mean).pow(2).sum(1)
    inner = target_cov_sqrt @ cov @ target_cov_sqrt
    inner = 0.5 * (inner + inner.transpose(1, 2))  # symmetric up to rounding
    cross = trace_sqrt(inner)
    trace = torch.diagonal(cov + target_cov, dim1=1, dim2=2).sum(1)
    scale = target_mean.pow(2).sum(1) + torch.diagonal(target_cov, dim1=1, dim2=2).sum(1)
    return (mean_term + (trace - 2.0 * cross).clamp_min(0)) / (scale + _EPS)


def random_directions(
    channels: int, generator: torch.Generator, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """``channels`` random unit directions (C, C), one per column, drawn from ``generator``
    (on the CPU, so a seed gives the same directions on every device)."""
    directions = torch.randn(channels, channels, generator=generator)
    return (directions / directions.norm(dim=0, keepdim=True)).to(device)


def evenly_spaced_rows(samples: torch.Tensor, count: int) -> torch.Tensor:
    """``count`` rows of ``samples`` (N, C), evenly spaced (deterministic; rows repeat when
    there are fewer)."""
    n = samples.shape[0]
    if n == count:
        return samples
    rows = torch.linspace(0, n - 1, count, device=samples.device).round().long()
    return samples[rows]


def sorted_projections(samples: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """Samples (N, C) projected on ``directions`` (C, K) and sorted -> (K, N), one row per
    direction (sorting contiguous rows is the fast layout)."""
    return torch.sort(directions.T @ samples.T, dim=1).values


def resample_sorted(values: torch.Tensor, n: int) -> torch.Tensor:
    """Sorted rows (K, M) resampled to ``n`` columns: the empirical quantile function read
    at ``n`` evenly spaced levels, linearly interpolated (so pixel counts may differ)."""
    m = values.shape[1]
    if m == n:
        return values
    pos = (torch.arange(n, device=values.device, dtype=torch.float32) + 0.5) * m / n - 0.5
    pos = pos.clamp(0, m - 1)
    low = pos.floor().long()
    high = (low + 1).clamp(max=m - 1)
    frac = pos - low
    return values[:, low] * (1 - frac) + values[:, high] * frac


def sliced_wasserstein(
    samples: torch.Tensor, target: torch.Tensor, directions: torch.Tensor
) -> torch.Tensor:
    """Relative sliced Wasserstein-2 distance (Heitz et al. 2021) between the pixels
    ``samples`` (N, C) and ``target`` (M, C), along ``directions`` (C, K) -> 0-dim:
    ``Σ (sort(XD) - sort(YD))² / Σ sort(YD)²``, the target's quantiles resampled to N.

    The target's quantiles are read from at most :data:`TARGET_QUANTILES` of its pixels
    (evenly spaced): the output's pixels all need their sorted place for the gradient, the
    target's only describe its distribution (a departure that makes each step far cheaper).
    """
    n = samples.shape[0]
    target = evenly_spaced_rows(target, min(n, TARGET_QUANTILES, target.shape[0]))
    ours = sorted_projections(samples, directions)
    theirs = resample_sorted(sorted_projections(target, directions), n)
    return (ours - theirs).pow(2).sum() / (theirs.pow(2).sum() + _EPS)
