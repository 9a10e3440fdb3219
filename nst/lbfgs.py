"""L-BFGS for the pixel loop: torch's algorithm, with the history as matrices, and pairs made
of the displacement the pixels really made.

``torch.optim.LBFGS`` walks its stored pairs in a Python loop (about four small kernels per
pair) and tests curvature and convergence on the host, which makes a GPU wait for every step.
Here the same two-loop recursion is written in matrix form: with ``A[i, j] = s_i·y_j`` kept up
to date, both loops become one triangular solve each, and a step is a fixed number of kernels
that never reads a value back to the host.

Departure that matters: the engine clamps the pixels to [0, 1] after every step (a
projection). torch stores ``s = t·d``, the step it *meant* to take, so wherever the clamp cut
that step short its pairs ``(s, y)`` describe a move that never happened; the curvature
estimate goes wrong and the loss climbs back. Here ``s`` is the pixels' actual displacement
between the two gradients, so the pairs stay true secant pairs and the loss falls steadily
(figures: docs/benchmarks.md, "L-BFGS through the clamp"; ``bench/bench_lbfgs_runs.py``).
Without a clamp the iterates are torch's up to rounding (``tests/nst/test_lbfgs.py``).

Two minor departures, both only where torch would stop or skip:

* a pair failing the curvature test (``y·s <= 1e-10``) still takes a slot, zeroed, so it
  evicts the oldest pair one step earlier than torch would (its effect is nil otherwise);
* where torch returns early (gradient below ``tolerance_grad``, or no descent), the pixels
  are left where they are but the history is still updated.

One iteration per ``step()`` and no line search, as ``LBFGS(max_iter=1)``.

``precondition`` (a symmetric positive definite operator on tensors shaped like the
optimised one) replaces the identity in the initial inverse Hessian ``h·I``: the
iterates are those of L-BFGS over the coefficients of another parameterisation of the
image (:mod:`nst.preconditioner`). Without it, torch's ``h = s·y / y·y``; with it,
``s·y / y·M y``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


class LBFGS:
    """L-BFGS over one tensor; ``step(closure)`` runs one iteration (see the module).

    It takes torch's optimiser arguments but is not a ``torch.optim.Optimizer``: it needs
    none of its parameter groups or state dicts, and the first optimiser torch builds imports
    its compiler stack (about a second of every process's start, docs/benchmarks.md).
    """

    def __init__(
        self,
        params,
        lr: float = 1.0,
        history_size: int = 100,
        tolerance_grad: float = 1e-7,
        tolerance_change: float = 1e-9,
        precondition: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ):
        tensors = list(params)
        if len(tensors) != 1:
            raise ValueError("nst.lbfgs.LBFGS optimises exactly one tensor")
        self.x = tensors[0]
        self.lr, self.history_size = lr, history_size
        self.tolerance_grad, self.tolerance_change = tolerance_grad, tolerance_change
        self.state: dict = {}
        self.precondition = precondition

    def _metric(self, v: torch.Tensor) -> torch.Tensor:
        """The initial inverse Hessian's operator on a flat vector (before the scale h)."""
        if self.precondition is None:
            return v
        return self.precondition(v.view(self.x.shape)).reshape(-1)

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor]) -> torch.Tensor:
        """One L-BFGS iteration from the gradient the closure leaves in the tensor."""
        with torch.enable_grad():
            loss = closure()
        x = self.x
        g = x.grad.detach().reshape(-1).float()
        here = x.detach().reshape(-1).float().clone()
        state = self.state
        if not state:
            state.update(_History.empty(self.history_size, g))
            d = -self._metric(g)
            t: torch.Tensor | float = (1.0 / d.abs().sum()).clamp(max=1.0) * self.lr
        else:
            history = _History(state, self._metric)
            history.remember(here - state["prev_x"], g - state["prev_g"])
            d, t = history.direction(g), self.lr
        descent = g.dot(d)
        moves = (g.abs().max() > self.tolerance_grad) & (descent <= -self.tolerance_change)
        x.add_((d * (t * moves)).view_as(x).to(x.dtype))
        state.update(prev_g=g.clone(), prev_x=here)
        return loss


def _identity(v: torch.Tensor) -> torch.Tensor:
    return v


class _History:
    """The stored pairs: ``S``/``Y`` (m, N) ring buffers, ``A[i, j] = s_i·y_j``, ``ro_i =
    1/(y_i·s_i)`` (0 for an empty or rejected slot) and the initial Hessian scale ``h``."""

    def __init__(self, state: dict, metric: Callable[[torch.Tensor], torch.Tensor] | None = None):
        self.state, self.metric = state, metric or _identity

    @staticmethod
    def empty(size: int, like: torch.Tensor) -> dict:
        zeros = like.new_zeros
        return {
            "S": zeros(size, like.numel()),
            "Y": zeros(size, like.numel()),
            "A": zeros(size, size),
            "ro": zeros(size),
            "h": like.new_ones(()),
            "pairs": 0,
        }

    def remember(self, s: torch.Tensor, y: torch.Tensor) -> None:
        """Store the pair (s, y) in the oldest slot; a pair failing the curvature test is
        stored as zeros (no effect) without a host-side branch."""
        st = self.state
        S, Y, A = st["S"], st["Y"], st["A"]
        ys = y.dot(s)
        valid = ys > 1e-10
        keep = valid.to(s.dtype)
        slot = st["pairs"] % S.shape[0]
        st["pairs"] += 1
        S[slot] = s * keep
        Y[slot] = y * keep
        A[slot, :] = Y @ S[slot]
        A[:, slot] = S @ Y[slot]
        st["ro"][slot] = torch.where(valid, 1.0 / ys, torch.zeros_like(ys))
        st["h"] = torch.where(valid, ys / y.dot(self.metric(y)), st["h"])

    def direction(self, g: torch.Tensor) -> torch.Tensor:
        """``-H g`` by the two-loop recursion, both loops as triangular solves.

        In chronological order (oldest first) the first loop is
        ``(I + diag(ro)·triu(A, 1))·al = ro * (S q0)`` with ``q0 = -g``, and the second
        ``(I + diag(ro)·tril(Aᵀ, -1))·be = ro * (Y r0 + tril(Aᵀ, -1)·al)`` with
        ``r0 = h M (q0 - Yᵀ al)`` (``M``: the preconditioner, else the identity); the
        direction is ``r0 + Sᵀ (al - be)``.
        """
        st = self.state
        S, Y, ro = st["S"], st["Y"], st["ro"]
        shift = -(st["pairs"] % S.shape[0])  # slot of the oldest pair -> index 0

        def chron(v: torch.Tensor) -> torch.Tensor:
            return torch.roll(v, shift, 0)

        def slots(v: torch.Tensor) -> torch.Tensor:
            return torch.roll(v, -shift, 0)

        A = torch.roll(st["A"], (shift, shift), (0, 1))
        ro = chron(ro)
        eye = torch.eye(A.shape[0], dtype=A.dtype, device=A.device)
        upper, lower = torch.triu(A, 1), torch.tril(A.T, -1)
        q0 = -g
        al = torch.linalg.solve_triangular(
            eye + ro[:, None] * upper, (ro * chron(S @ q0))[:, None], upper=True
        )[:, 0]
        r0 = st["h"] * self.metric(q0 - Y.T @ slots(al))
        rhs = ro * (chron(Y @ r0) + lower @ al)
        be = torch.linalg.solve_triangular(eye + ro[:, None] * lower, rhs[:, None], upper=False)[
            :, 0
        ]
        return r0 + S.T @ slots(al - be)
