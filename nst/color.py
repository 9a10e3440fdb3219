"""Colour preservation (Gatys et al., "Preserving Color in Neural Artistic Style Transfer").

Pure functions on RGB tensors (B, 3, H, W) in [0, 1].
"""

from __future__ import annotations

import torch

# ITU-R BT.601 RGB -> YIQ; Y is the luminance.
_RGB_TO_YIQ = torch.tensor(
    [[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]]
)


def rgb_to_yiq(rgb: torch.Tensor) -> torch.Tensor:
    """RGB -> YIQ (channel 0 is luminance)."""
    return torch.einsum("ij,bjhw->bihw", _RGB_TO_YIQ.to(rgb), rgb)


def yiq_to_rgb(yiq: torch.Tensor) -> torch.Tensor:
    """YIQ -> RGB."""
    return torch.einsum("ij,bjhw->bihw", torch.linalg.inv(_RGB_TO_YIQ).to(yiq), yiq)


def luminance(rgb: torch.Tensor) -> torch.Tensor:
    """Luminance replicated to 3 channels, so VGG sees a grey image."""
    return rgb_to_yiq(rgb)[:, :1].expand(-1, 3, -1, -1).contiguous()


def match_luminance(style_lum: torch.Tensor, content_lum: torch.Tensor) -> torch.Tensor:
    """Shift/scale the style's luminance to the content's mean and deviation (paper eq. 1)."""
    s_mean, s_std = style_lum.mean(), style_lum.std().clamp_min(1e-6)
    c_mean, c_std = content_lum.mean(), content_lum.std()
    return ((style_lum - s_mean) * (c_std / s_std) + c_mean).clamp(0, 1)


def with_luminance(luma_rgb: torch.Tensor, colour_source: torch.Tensor) -> torch.Tensor:
    """Combine the luminance of ``luma_rgb`` with the I/Q colour of ``colour_source``."""
    y = rgb_to_yiq(luma_rgb)[:, :1]
    iq = rgb_to_yiq(colour_source)[:, 1:]
    return yiq_to_rgb(torch.cat([y, iq], 1)).clamp(0, 1)


def match_color(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Linear colour transfer: give ``source`` the mean and covariance of ``target``'s colours.

    The paper's "colour histogram matching" variant: x' = A (x - mu_s) + mu_t with
    A = Σ_t^½ Σ_s^-½ (symmetric square roots).
    """
    return match_color_stats(source, *colour_stats(target))


def colour_stats(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (3, 1) and covariance (3, 3) of an image's RGB values, in float64."""
    flat = image.reshape(3, -1).double()
    mu = flat.mean(1, keepdim=True)
    centred = flat - mu
    return mu, centred @ centred.T / flat.shape[1]


def blended_colour_stats(
    images: list[torch.Tensor], weights: list[float]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Colour mean and covariance of the mixture of ``images`` drawn with ``weights``."""
    total = sum(weights)
    stats = [colour_stats(image) for image in images]
    mu = torch.stack([w / total * m for (m, _), w in zip(stats, weights)]).sum(0)
    second = torch.stack([w / total * (c + m @ m.T) for (m, c), w in zip(stats, weights)]).sum(0)
    return mu, second - mu @ mu.T


def match_color_stats(
    source: torch.Tensor, mu_t: torch.Tensor, cov_t: torch.Tensor
) -> torch.Tensor:
    """:func:`match_color` towards a given colour mean ``mu_t`` and covariance ``cov_t``."""

    def sqrtm(cov: torch.Tensor, power: float) -> torch.Tensor:
        eye = torch.eye(3, dtype=cov.dtype, device=cov.device)
        values, vectors = torch.linalg.eigh(cov + 1e-5 * eye)
        return vectors @ torch.diag(values.clamp_min(1e-8) ** power) @ vectors.T

    mu_s, cov_s = colour_stats(source)
    transform = sqrtm(cov_t, 0.5) @ sqrtm(cov_s, -0.5)
    flat = transform @ (source.reshape(3, -1).double() - mu_s) + mu_t
    return flat.reshape(source.shape).to(source.dtype).clamp(0, 1)
