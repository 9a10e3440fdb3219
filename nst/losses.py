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

from collections.abc import Mapping

import torch

_EPS = 1e-8


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


def style_loss(
    features: dict[str, torch.Tensor],
    target_grams: dict[str, torch.Tensor],
    layer_weights: Mapping[str, float | torch.Tensor],
) -> torch.Tensor:
    """Weighted sum over style layers of the relative Gram error -> (B,).

    A layer weight is a number or a (B,) tensor (one weight per batch item).
    """
    terms = [
        layer_weights[name] * relative_sq_error(gram_matrix(features[name]), gram)
        for name, gram in target_grams.items()
    ]
    return torch.stack(terms).sum(0)


def tv_loss(image: torch.Tensor) -> torch.Tensor:
    """Total variation: mean squared difference of neighbouring pixels -> (B,)."""
    dx = (image[..., :, 1:] - image[..., :, :-1]).pow(2).mean((1, 2, 3))
    dy = (image[..., 1:, :] - image[..., :-1, :]).pow(2).mean((1, 2, 3))
    return dx + dy
