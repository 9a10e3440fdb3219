"""nst.lbfgs: torch's L-BFGS iterates without a clamp (up to rounding), true secant pairs
with one."""

import pytest
import torch

from nst import Job, StyleParams
from nst.lbfgs import LBFGS, _History


def quadratic(n: int = 60):
    gen = torch.Generator().manual_seed(0)
    m = torch.randn(n, n, generator=gen)
    curvature = m @ m.T / n + 0.05 * torch.eye(n)
    b = torch.randn(n, generator=gen)
    return lambda x: 0.5 * x @ curvature @ x - b @ x


def iterates(
    make, objective, steps: int, n: int = 60, start: float = 0.0, clamp: bool = False
) -> list[torch.Tensor]:
    """x after each step; with ``clamp``, each step is followed by the engine's clamp."""
    x = torch.full((n,), start, requires_grad=True)
    opt = make(x)
    out = []
    for _ in range(steps):

        def closure():
            x.grad = None
            loss = objective(x)
            loss.backward()
            return loss

        opt.step(closure)
        if clamp:
            with torch.no_grad():
                x.clamp_(0, 1)
        out.append(x.detach().clone())
    return out


@pytest.mark.parametrize("history", [5, 100])
def test_iterates_match_torch_lbfgs(history):
    """Same steps as torch.optim.LBFGS(max_iter=1), including after the history wraps."""
    objective = quadratic()
    theirs = iterates(
        lambda x: torch.optim.LBFGS([x], max_iter=1, history_size=history), objective, 30
    )
    ours = iterates(lambda x: LBFGS([x], history_size=history), objective, 30)
    for k, (a, b) in enumerate(zip(theirs, ours)):
        torch.testing.assert_close(
            b, a, rtol=1e-3, atol=1e-4 * a.abs().max().item(), msg=f"step {k}"
        )
    assert objective(ours[-1]) < objective(ours[2])  # and it does minimise


def test_a_pair_failing_the_curvature_test_changes_nothing():
    g = torch.tensor([1.0, -2.0, 0.5])
    state = _History.empty(4, g)
    history = _History(state)
    history.remember(torch.tensor([1.0, 0.0, 0.0]), torch.tensor([2.0, 0.0, 0.0]))
    before = history.direction(g)
    history.remember(torch.tensor([0.0, 1.0, 0.0]), torch.tensor([0.0, -1.0, 0.0]))  # y·s < 0
    assert state["ro"][1] == 0 and state["S"][1].abs().sum() == 0
    torch.testing.assert_close(history.direction(g), before)


def test_one_tensor_only():
    with pytest.raises(ValueError):
        LBFGS([torch.zeros(2, requires_grad=True), torch.zeros(2, requires_grad=True)])


def test_with_the_clamp_it_gets_much_closer_to_the_box_optimum_than_torch():
    """A quadratic whose minimum lies outside [0, 1]^n, the pixels' box. torch's pairs use
    the step it meant to take, not the clamped one, and it stalls far from the constrained
    optimum; with the real displacement the gap closes most of the way."""
    n = 200
    gen = torch.Generator().manual_seed(0)
    m = torch.randn(n, n, generator=gen)
    curvature = m @ m.T / n + 0.01 * torch.eye(n)
    b = 2 * torch.randn(n, generator=gen)
    objective = lambda x: 0.5 * x @ curvature @ x - b @ x  # noqa: E731
    x = torch.full((n,), 0.5)  # the box optimum, by projected gradient
    step = 1 / torch.linalg.eigvalsh(curvature).max()
    for _ in range(20000):
        x = (x - step * (curvature @ x - b)).clamp(0, 1)
    best = objective(x).item()
    theirs = objective(
        iterates(
            lambda x: torch.optim.LBFGS([x], max_iter=1, history_size=20),
            objective,
            100,
            n,
            start=0.5,
            clamp=True,
        )[-1]
    ).item()
    ours = objective(
        iterates(lambda x: LBFGS([x], history_size=20), objective, 100, n, start=0.5, clamp=True)[
            -1
        ]
    ).item()
    assert ours - best < 0.3 * (theirs - best), (ours - best, theirs - best)


@pytest.mark.slow
def test_engine_loss_falls_steadily(stylizer, images):
    """A real job through the engine's clamp: the loss never climbs back more than 0.5 %
    above the best so far (with torch's pairs this job climbed 3.7 %, and at 256 px runs
    rose from 0.62 to 0.86 before falling again)."""
    seen: list[float] = []
    job = Job(
        images["astronaut.png"], [images["starry_night.jpg"]], StyleParams(size=96, steps=150)
    )
    result = stylizer.stylize(job, callback=lambda p: seen.append(p.losses.total))
    climbs = [(seen[i] - min(seen[:i])) / min(seen[:i]) for i in range(1, len(seen))]
    assert max(climbs) < 0.005, max(climbs)
    assert result.losses.total < 0.5 * result.initial_losses.total


def test_an_identity_preconditioner_changes_nothing():
    objective = quadratic()
    plain = iterates(lambda x: LBFGS([x], history_size=5), objective, 12)
    same = iterates(lambda x: LBFGS([x], history_size=5, precondition=lambda v: v), objective, 12)
    for a, b in zip(plain, same):
        torch.testing.assert_close(b, a)


def test_a_preconditioner_is_the_initial_inverse_hessian():
    """With M = the inverse of a diagonal quadratic's curvature, the first direction is the
    Newton step: L-BFGS lands on the minimum after the (scaled) first step's line."""
    curvature = torch.tensor([100.0, 1.0, 0.01])
    b = torch.tensor([1.0, 1.0, 1.0])

    def objective(x):
        return 0.5 * (curvature * x * x).sum() - b @ x

    newton = iterates(lambda x: LBFGS([x], precondition=lambda v: v / curvature), objective, 3, n=3)
    plain = iterates(lambda x: LBFGS([x]), objective, 3, n=3)
    optimum = b / curvature
    assert (newton[-1] - optimum).norm() < 1e-3 * optimum.norm()
    assert (plain[-1] - optimum).norm() > 0.1 * optimum.norm()
