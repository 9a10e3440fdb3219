"""Adam for the pixel loop: ``torch.optim.Adam``'s update with its default settings, on one
tensor, optionally over another parameterisation of the image.

Not a ``torch.optim.Optimizer``, for the reason :mod:`nst.lbfgs` gives: the first optimiser
torch builds imports its compiler stack, about a second of the first Adam job of every
process (docs/benchmarks.md, "Start-up"). The arithmetic is torch's single-tensor Adam,
operation for operation, so the iterates are the same (``tests/nst/test_adam.py``).

``precondition`` (``P Pᵀ`` of :mod:`nst.preconditioner`) replaces the gradient before the
update: Adam over the coefficients of another parameterisation of the image.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch


class Adam:
    """Adam over one tensor; ``step(closure)`` updates it from the gradient in its ``.grad``
    (the closure, if given, is called first, as torch's optimisers do)."""

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        precondition: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ):
        tensors = list(params)
        if len(tensors) != 1:
            raise ValueError("nst.adam.Adam optimises exactly one tensor")
        self.x = tensors[0]
        self.lr, (self.beta1, self.beta2), self.eps = lr, betas, eps
        self.precondition = precondition
        self.steps = 0
        self.mean: torch.Tensor | None = None  # of the gradients
        self.square: torch.Tensor | None = None  # mean of their squares

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        grad = self.x.grad
        if grad is None:
            return loss
        if self.precondition is not None:
            grad = self.precondition(grad)
        if self.mean is None or self.square is None:
            self.mean = torch.zeros_like(self.x, memory_format=torch.preserve_format)
            self.square = torch.zeros_like(self.x, memory_format=torch.preserve_format)
        self.steps += 1
        self.mean.lerp_(grad, 1 - self.beta1)
        self.square.mul_(self.beta2).addcmul_(grad, grad, value=1 - self.beta2)
        step_size = self.lr / (1 - self.beta1**self.steps)
        denom = (self.square.sqrt() / math.sqrt(1 - self.beta2**self.steps)).add_(self.eps)
        self.x.addcdiv_(self.mean, denom, value=-step_size)
        return loss
