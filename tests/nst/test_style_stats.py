"""The style statistics beyond the Gram matrix: values against small hand computations,
gradients, per-item independence, seeds, bfloat16 and unequal pixel counts."""

from __future__ import annotations

import math

import pytest
import torch

from nst import Job, StyleParams
from nst.losses import (
    gaussian_w2,
    masked_gram_matrix,
    mean_covariance,
    random_directions,
    resample_sorted,
    sliced_wasserstein,
    sqrtm_eigh,
    trace_sqrt,
)
from nst.style_stats import MAX_SAMPLES, blend, style_distance, style_statistics

KINDS = ("gram", "mean_cov", "sliced_wasserstein")


def test_mean_and_covariance_match_hand_computation():
    # two channels, four pixels: (1, 2), (3, 2), (1, 4), (3, 4)
    f = torch.tensor([[[[1.0, 3.0], [1.0, 3.0]], [[2.0, 2.0], [4.0, 4.0]]]])
    mean, cov = mean_covariance(f)
    assert torch.allclose(mean, torch.tensor([[2.0, 3.0]]))
    assert torch.allclose(cov, torch.tensor([[[1.0, 0.0], [0.0, 1.0]]]))


def test_a_binary_mask_restricts_the_statistics_to_its_pixels():
    f = torch.randn(1, 3, 4, 5, dtype=torch.float64)
    mask = torch.zeros(1, 1, 4, 5, dtype=torch.float64)
    mask[..., :, :2] = 1
    inside = f[..., :, :2]
    mean, cov = mean_covariance(f, mask)
    mean_in, cov_in = mean_covariance(inside)
    assert torch.allclose(mean, mean_in, atol=1e-9)
    assert torch.allclose(cov, cov_in, atol=1e-9)
    # guided Gram: the Gram of the region alone, normalised by its own pixel count
    g = masked_gram_matrix(f, mask)
    m = inside.reshape(3, -1)
    assert torch.allclose(g[0], m @ m.T / (3 * m.shape[1]), atol=1e-6)


def test_the_trace_of_the_root_agrees_with_the_exact_root():
    torch.manual_seed(0)
    x = torch.randn(200, 16, dtype=torch.float64) * torch.linspace(0.1, 3, 16, dtype=torch.float64)
    spd = (x.T @ x / 200).unsqueeze(0)
    exact = sqrtm_eigh(spd)
    assert torch.allclose(exact @ exact, spd, atol=1e-8)
    trace = torch.diagonal(exact, dim1=1, dim2=2).sum(1)
    assert torch.allclose(trace_sqrt(spd), trace, rtol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_trace_of_the_root_survives_rounding_below_zero(dtype):
    """A covariance of ReLU features is nearly singular: rounding (TF32 products on a GPU)
    leaves it eigenvalues slightly below zero. The trace and its gradient stay finite and
    floor those (an iteration of matrix products overflowed on them)."""
    torch.manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(64, 64, dtype=torch.float64))
    values = torch.logspace(4, -12, 64, dtype=torch.float64)
    values[-8:] = -1e-3  # rounding of a product with a relative error of ~1e-7..1e-3
    matrix = (q @ torch.diag(values) @ q.T).to(dtype).unsqueeze(0).requires_grad_(True)
    value = trace_sqrt(matrix)
    value.sum().backward()
    floor = values.max() * 1e-7  # below a tiny share of the largest, an eigenvalue is floored
    expected = torch.where(values > floor, values, floor).sqrt().sum()
    assert torch.isfinite(value).all() and torch.isfinite(matrix.grad).all()
    # float32 holds the matrix itself only to ~1e-7 of its largest eigenvalue
    assert abs(float(value) / float(expected) - 1) < (1e-9 if dtype == torch.float64 else 1e-2)


def test_gaussian_w2_of_diagonal_gaussians_is_the_closed_form():
    mean, target_mean = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0]])
    cov, target_cov = (
        torch.diag(torch.tensor([4.0, 1.0]))[None],
        torch.diag(torch.tensor([1.0, 9.0]))[None],
    )
    value = gaussian_w2(mean, cov, target_mean, target_cov, sqrtm_eigh(target_cov))
    # |Δμ|² + Σ (√σ - √σₜ)², over |μₜ|² + tr Σₜ
    expected = (1 + 4 + (2 - 1) ** 2 + (1 - 3) ** 2) / (4 + 10)
    assert torch.allclose(value, torch.tensor([expected]), rtol=1e-5)
    same = gaussian_w2(target_mean, target_cov, target_mean, target_cov, sqrtm_eigh(target_cov))
    assert abs(float(same)) < 1e-5


def test_sliced_wasserstein_matches_hand_computation():
    samples = torch.tensor([[3.0], [1.0], [2.0]])
    target = torch.tensor([[2.0], [4.0], [3.0]])
    one = torch.ones(1, 1)
    # sorted: (1, 2, 3) against (2, 3, 4): each off by one; Σ t² = 29
    assert torch.allclose(sliced_wasserstein(samples, target, one), torch.tensor(3 / 29))
    # a target with every value twice has the same quantiles: the counts may differ
    doubled = target.repeat_interleave(2, dim=0)
    assert torch.allclose(
        sliced_wasserstein(samples, doubled, one), sliced_wasserstein(samples, target, one)
    )
    assert torch.allclose(resample_sorted(torch.tensor([[0.0, 1.0]]), 4).flatten(),
                          torch.tensor([0.0, 0.25, 0.75, 1.0]))  # fmt: skip


def test_sliced_wasserstein_compares_whole_distributions_not_moments():
    # same mean and variance, different shapes: the Gaussian distance sees nothing
    gen = torch.Generator().manual_seed(0)
    normal = torch.randn(4096, 1, generator=gen)
    coin = (torch.randint(0, 2, (4096, 1), generator=gen) * 2 - 1).float()
    one = torch.ones(1, 1)
    assert float(sliced_wasserstein(normal, coin, one)) > 0.05
    assert float(sliced_wasserstein(normal, normal.flip(0), one)) < 1e-6


@pytest.mark.parametrize("kind", KINDS)
def test_gradients_match_finite_differences(kind):
    torch.manual_seed(1)
    style = torch.rand(1, 3, 5, 4, dtype=torch.float64) + 0.5
    target = style_statistics(kind, {"a": style})["a"]
    target = tuple(t.double() for t in target)
    directions = random_directions(3, torch.Generator().manual_seed(0)).double()
    mask = torch.rand(1, 1, 4, 4, dtype=torch.float64)

    def loss(f):
        return style_distance(kind, f, target, mask if kind != "sliced_wasserstein" else None,
                              directions)  # fmt: skip

    features = (torch.rand(1, 3, 4, 4, dtype=torch.float64) + 0.5).requires_grad_()
    assert torch.autograd.gradcheck(loss, (features,), atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_zero_distance_to_its_own_statistics_and_positive_elsewhere(kind):
    torch.manual_seed(2)
    style, other = torch.rand(1, 8, 12, 10), torch.rand(1, 8, 12, 10) ** 3
    target = style_statistics(kind, {"a": style})["a"]
    directions = random_directions(8, torch.Generator().manual_seed(0))
    assert float(style_distance(kind, style, target, None, directions)) < 1e-4
    assert float(style_distance(kind, other, target, None, directions)) > 1e-2


@pytest.mark.parametrize("kind", KINDS)
def test_each_batch_item_gets_its_own_distance(kind):
    torch.manual_seed(3)
    target = style_statistics(kind, {"a": torch.rand(1, 4, 6, 6)})["a"]
    directions = random_directions(4, torch.Generator().manual_seed(0))
    a, b = torch.rand(1, 4, 6, 6), torch.rand(1, 4, 6, 6) * 2
    both = torch.cat([a, b])
    alone = style_distance(kind, a, target, None, directions)
    assert torch.equal(style_distance(kind, both[:1], target, None, directions), alone)


def test_directions_are_unit_vectors_fixed_by_the_seed():
    d1 = random_directions(16, torch.Generator().manual_seed(5))
    d2 = random_directions(16, torch.Generator().manual_seed(5))
    d3 = random_directions(16, torch.Generator().manual_seed(6))
    assert torch.equal(d1, d2) and not torch.equal(d1, d3)
    assert torch.allclose(d1.norm(dim=0), torch.ones(16))


@pytest.mark.parametrize("kind", KINDS)
def test_bfloat16_features_give_float32_distances_close_to_float32(kind):
    torch.manual_seed(4)
    target = style_statistics(kind, {"a": torch.rand(1, 16, 12, 12) * 4})["a"]
    directions = random_directions(16, torch.Generator().manual_seed(0))
    f = torch.rand(1, 16, 10, 10) * 4
    exact = style_distance(kind, f, target, None, directions)
    low = style_distance(kind, f.bfloat16(), target, None, directions)
    assert low.dtype == torch.float32
    assert math.isclose(float(low), float(exact), rel_tol=0.03)


def test_blends_are_the_mixture_of_the_styles():
    torch.manual_seed(5)
    a, b = torch.rand(1, 4, 8, 8), torch.rand(1, 4, 8, 8) + 1
    both = torch.cat([a, b], dim=3)  # one image holding both, equal shares
    for kind in ("gram", "mean_cov"):
        mixed = blend(kind, [style_statistics(kind, {"x": a}), style_statistics(kind, {"x": b})],
                      [1, 1])["x"]  # fmt: skip
        whole = style_statistics(kind, {"x": both})["x"]
        for got, want in zip(mixed, whole):
            assert torch.allclose(got, want, atol=1e-4)
    pooled = blend("sliced_wasserstein", [style_statistics("sliced_wasserstein", {"x": a}),
                   style_statistics("sliced_wasserstein", {"x": b})], [3, 1])["x"][0]  # fmt: skip
    assert pooled.shape[0] == 48 + 16  # three quarters from the first style


def test_style_samples_are_capped():
    big = torch.rand(1, 2, 300, 300)
    (samples,) = style_statistics("sliced_wasserstein", {"x": big})["x"]
    assert samples.shape == (MAX_SAMPLES, 2)


@pytest.mark.parametrize("parameterization", ["pixels", "pyramid"])
@pytest.mark.parametrize("size", [32, 48])
def test_mean_cov_runs_its_steps_on_small_images(stylizer, images, size, parameterization):
    """A few feature pixels for hundreds of channels make nearly singular covariances: their
    roots must keep finite gradients (in float32 they broke the run with a LAPACK error)."""
    params = StyleParams(
        size=size, steps=40, style_loss="mean_cov", parameterization=parameterization
    )
    result = stylizer.stylize(Job(images["astronaut.png"], [images["starry_night.jpg"]], params))
    assert result.steps_run == 40 and result.stopped is None
    assert result.losses.total < result.initial_losses.total
