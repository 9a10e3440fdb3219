"""nst.lbfgs: torch's L-BFGS iterates, up to rounding, without host-side branches."""

import pytest
import torch

from nst import Job, StyleParams, engine
from nst.lbfgs import LBFGS, _History


def quadratic(n: int = 60):
    gen = torch.Generator().manual_seed(0)
    m = torch.randn(n, n, generator=gen)
    curvature = m @ m.T / n + 0.05 * torch.eye(n)
    b = torch.randn(n, generator=gen)
    return lambda x: 0.5 * x @ curvature @ x - b @ x


def iterates(make, objective, steps: int, n: int = 60) -> list[torch.Tensor]:
    x = torch.zeros(n, requires_grad=True)
    opt = make(x)
    out = []
    for _ in range(steps):
        def closure():
            x.grad = None
            loss = objective(x)
            loss.backward()
            return loss
        opt.step(closure)
        out.append(x.detach().clone())
    return out


@pytest.mark.parametrize("history", [5, 100])
def test_iterates_match_torch_lbfgs(history):
    """Same steps as torch.optim.LBFGS(max_iter=1), including after the history wraps."""
    objective = quadratic()
    theirs = iterates(lambda x: torch.optim.LBFGS([x], max_iter=1, history_size=history),
                      objective, 30)
    ours = iterates(lambda x: LBFGS([x], history_size=history), objective, 30)
    for k, (a, b) in enumerate(zip(theirs, ours)):
        torch.testing.assert_close(b, a, rtol=1e-3, atol=1e-4 * a.abs().max().item(),
                                   msg=f"step {k}")
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


def test_engine_job_with_it_matches_torch_lbfgs(stylizer, images, monkeypatch):
    """A real job (the engine picks nst.lbfgs on GPUs; forced here on the CPU)."""
    job = Job(images["astronaut.png"], [images["starry_night.jpg"]],
              StyleParams(size=48, steps=12, levels=1))
    theirs = stylizer.stylize(job)
    monkeypatch.setattr(engine, "_make_optimizer",
                        lambda pixels, job: LBFGS([pixels], history_size=100))
    ours = stylizer.stylize(job)
    assert ours.losses.total == pytest.approx(theirs.losses.total, rel=0.01)
    assert ours.losses.total < 0.9 * ours.initial_losses.total
