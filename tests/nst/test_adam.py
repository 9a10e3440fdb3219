"""nst.adam.Adam: torch.optim.Adam's iterates without torch.optim, and its preconditioned form."""

from __future__ import annotations

import pytest
import torch

from nst.adam import Adam
from nst.preconditioner import pyramid_precondition


def objective(x: torch.Tensor) -> torch.Tensor:
    """A smooth non-quadratic loss over an image-shaped tensor."""
    target = torch.linspace(0, 1, x.numel()).view_as(x)
    return ((x - target) ** 2).sum() + 0.1 * torch.sin(3 * x).sum()


def iterates(make, steps: int, channels_last: bool = False, transform=None) -> torch.Tensor:
    """The tensor after ``steps`` steps of the optimiser ``make(x)`` builds, each from the
    gradient (passed through ``transform`` first, if given) of :func:`objective`."""
    torch.manual_seed(0)
    x = torch.rand(1, 3, 16, 12)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    optimizer = make(x)
    for _ in range(steps):
        x.grad = None
        loss = objective(x)
        loss.backward()
        if transform is not None:
            x.grad = transform(x.grad)
        optimizer.step(lambda loss=loss: loss)
    return x.detach()


@pytest.mark.parametrize("channels_last", [False, True])
def test_the_same_iterates_as_torchs_adam(channels_last):
    ours = iterates(lambda x: Adam([x], lr=0.05), 25, channels_last)
    theirs = iterates(lambda x: torch.optim.Adam([x], lr=0.05), 25, channels_last)
    assert torch.equal(ours, theirs)
    assert ours.is_contiguous(memory_format=torch.channels_last) == channels_last


def test_preconditioned_adam_is_adam_on_the_preconditioned_gradient():
    ours = iterates(lambda x: Adam([x], lr=0.05, precondition=pyramid_precondition), 10)
    theirs = iterates(lambda x: torch.optim.Adam([x], lr=0.05), 10, transform=pyramid_precondition)
    assert torch.equal(ours, theirs)


def test_a_step_without_a_gradient_leaves_the_tensor_and_one_tensor_only():
    x = torch.ones(2, requires_grad=True)
    Adam([x], lr=0.1).step()
    assert torch.equal(x.detach(), torch.ones(2))
    with pytest.raises(ValueError, match="exactly one tensor"):
        Adam([x, torch.ones(2, requires_grad=True)])
