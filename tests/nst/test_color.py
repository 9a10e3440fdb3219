"""nst.color: colour statistics of one image and of a blend of styles."""

import torch

from nst.color import blended_colour_stats, colour_stats


def test_blend_stats_are_those_of_the_pooled_pixels():
    gen = torch.Generator().manual_seed(0)
    a = torch.rand(1, 3, 8, 8, generator=gen)
    b = torch.rand(1, 3, 8, 8, generator=gen) * 0.5 + 0.3
    mu, cov = blended_colour_stats([a, b], [1.0, 1.0])  # equal sizes: equal weights = pooling
    pooled_mu, pooled_cov = colour_stats(torch.cat([a, b], dim=3))
    torch.testing.assert_close(mu, pooled_mu)
    torch.testing.assert_close(cov, pooled_cov)
    only_a = blended_colour_stats([a, b], [2.0, 0.0])
    torch.testing.assert_close(only_a[0], colour_stats(a)[0])
    torch.testing.assert_close(only_a[1], colour_stats(a)[1])
