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


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """Gram matrices ``F Fᵀ / (C·H·W)`` of features (B, C, H, W) -> (B, C, C), at least
    float32.

    The product runs in the features' dtype (a bfloat16 GEMM accumulates in float32; its
    result is rounded to bfloat16, a relative 2⁻⁹, before the cast to float32), in whichever
    memory layout the features have, and its backward is one GEMM (see ``_GramProduct``).
    """
    b, c, h, w = features.shape
    gram = _GramProduct.apply(features.reshape(b, c, h * w))
    return gram.to(torch.promote_types(gram.dtype, torch.float32)) / (c * h * w)


class _GramProduct(torch.autograd.Function):
    """``X Xᵀ`` for X (B, C, N) with a one-GEMM backward.

    Autograd's own backward of ``bmm(X, Xᵀ)`` takes two GEMMs and adds them, and on a CPU
    it is slow for channels-last or bfloat16 features (measured at 256 px, all five style
    layers, forward and backward: 71 ms against 7 ms here). Since the product is symmetric,
    ``dX = (dG + dGᵀ) X``; X is multiplied in its own layout (N contiguous for NCHW
    features, C contiguous for channels-last ones) and the gradient comes back in it.
    """

    @staticmethod
    def forward(ctx, flat: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(flat)
        if _channels_contiguous(flat):
            rows = flat.transpose(1, 2)  # (B, N, C), contiguous
            return torch.bmm(rows.transpose(1, 2), rows)
        return torch.bmm(flat, flat.transpose(1, 2))

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (flat,) = ctx.saved_tensors
        sym = (grad + grad.transpose(1, 2)).to(flat.dtype)
        if _channels_contiguous(flat):
            return torch.bmm(flat.transpose(1, 2), sym).transpose(1, 2)
        return torch.bmm(sym, flat)


def _channels_contiguous(flat: torch.Tensor) -> bool:
    """True for the (B, C, N) view of channels-last features (stride 1 along C)."""
    return flat.shape[1] > 1 and flat.stride(1) == 1 and flat.stride(2) == flat.shape[1]


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
    layer_weights: dict[str, float | torch.Tensor],
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
