import pytest
import torch

from nst.losses import content_loss, gram_matrix, relative_sq_error, tv_loss


def test_gram_matrix_matches_hand_computation():
    f = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 1.0], [-1.0, 2.0]]]])  # (1, 2, 2, 2)
    # channel a = (1, 2, 3, 4), b = (0, 1, -1, 2): a.a = 30, a.b = 7, b.b = 6; / (C*H*W = 8)
    expected = torch.tensor([[[30.0, 7.0], [7.0, 6.0]]]) / 8
    assert torch.allclose(gram_matrix(f), expected)


def test_gram_matrix_is_per_batch_item():
    f = torch.randn(3, 4, 5, 6)
    g = gram_matrix(f)
    assert g.shape == (3, 4, 4)
    assert torch.allclose(g[1], gram_matrix(f[1:2])[0])
    assert torch.allclose(g, g.transpose(1, 2))


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_gram_matrix_gradient_is_correct(layout):
    """Checked against finite differences with an asymmetric upstream gradient (the one-GEMM
    backward symmetrises it), in both memory layouts; the gradient keeps the layout."""
    f = torch.randn(2, 3, 4, 5, dtype=torch.float64).contiguous(memory_format=layout)
    f.requires_grad_(True)
    upstream = torch.randn(2, 3, 3, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: (gram_matrix(x) * upstream).sum(), (f,))
    (gram_matrix(f) * upstream).sum().backward()
    assert f.grad.is_contiguous(memory_format=layout)


def test_gram_matrix_of_bfloat16_features_is_float32_and_close():
    f = torch.rand(1, 64, 16, 16).contiguous(memory_format=torch.channels_last)
    g = gram_matrix(f.bfloat16())
    assert g.dtype == torch.float32
    exact = gram_matrix(f.bfloat16().float())  # same inputs, float32 product
    torch.testing.assert_close(g, exact, rtol=2**-8, atol=0)


def test_relative_error_value_and_scale_invariance():
    target = torch.tensor([[3.0, 4.0]])
    x = torch.tensor([[3.0, 5.0]])
    assert torch.allclose(relative_sq_error(x, target), torch.tensor([1.0 / 25.0]))
    assert torch.allclose(relative_sq_error(10 * x, 10 * target), torch.tensor([1.0 / 25.0]))


def test_content_loss_is_zero_at_target_and_per_item():
    feats = {"a": torch.randn(2, 4, 5, 5), "b": torch.randn(2, 8, 3, 3)}
    assert torch.allclose(content_loss(feats, feats), torch.zeros(2))
    moved = {k: v.clone() for k, v in feats.items()}
    moved["a"][1] += 1.0
    loss = content_loss(moved, feats)
    assert loss[0] < 1e-7 < loss[1]


def test_tv_loss_hand_value():
    img = torch.zeros(1, 3, 2, 2)
    img[..., 0, 1] = 1.0  # one bright pixel top-right
    # one unit step horizontally and one vertically per channel, averaged over each grid
    dx = 3 * 1 / (3 * 2 * 1)
    dy = 3 * 1 / (3 * 1 * 2)
    assert torch.allclose(tv_loss(img), torch.tensor([dx + dy]))
    assert tv_loss(torch.ones(2, 3, 4, 4)).abs().max() == 0
