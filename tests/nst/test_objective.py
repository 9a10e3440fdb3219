"""nst.objective: one batched step's losses, per job, alone or compiled."""

import pytest
import torch

from nst import Job, StyleParams
from nst.objective import JobTargets, StyleRegion, batch_losses, compiled_objective, style_term
from nst.prepare import prepare
from nst.style_stats import style_statistics
from nst.vgg import layer_positions


@pytest.fixture(scope="module")
def stylizer(weights_path):
    """Float32 with its own memory layout: the session's default stylizer runs bfloat16 on
    CPUs that have it, and its channels-last weights would meet float32 inputs here."""
    from nst import Stylizer

    return Stylizer(str(weights_path), precision="fp32")


@pytest.fixture(scope="module")
def two_jobs(stylizer, images):
    content, style = images["astronaut.png"], images["starry_night.jpg"]
    base = StyleParams(size=48, steps=1, init="noise")
    jobs = [
        Job(content, [style], base.replace(seed=1)),
        Job(
            content,
            [images["the_scream.jpg"]],
            base.replace(seed=2, style_weight=30.0, tv_weight=5.0),
        ),
    ]
    return [prepare(job, job.params.size, stylizer.passes) for job in jobs]


def losses(stylizer, prepared, x):
    p = prepared[0].job.params
    return batch_losses(
        stylizer.net,
        x,
        [j.targets() for j in prepared],
        layer_positions(p.content_layers + p.style_layers),
        p.pooling,
        stylizer.passes.dtype,
        stylizer.passes.channels_last,
    )


def gram_targets(style: dict[str, torch.Tensor], layer_weights: dict[str, float]) -> JobTargets:
    """A job whose style loss matches the Gram matrices of ``style``'s features."""
    weights = {name: torch.tensor(w, dtype=torch.float64) for name, w in layer_weights.items()}
    stats = style_statistics("gram", style)
    return JobTargets({}, (StyleRegion(stats, None),), weights, torch.ones(3), "gram", None)


def test_style_term_is_the_layer_weighted_distance_and_zero_at_its_target():
    style = {"a": torch.randn(1, 4, 5, 5), "b": torch.randn(1, 8, 3, 3)}
    job = gram_targets(style, {"a": 0.25, "b": 0.75})
    assert float(style_term(style, job)) < 1e-7
    moved = {"a": style["a"] + 1.0, "b": style["b"]}
    alone = style_term(moved, gram_targets(style, {"a": 1.0}))
    torch.testing.assert_close(style_term(moved, job), 0.25 * alone)
    assert float(alone) > 1e-3


def test_style_term_gradient_is_correct():
    style = {"a": torch.randn(1, 3, 4, 4, dtype=torch.float64)}
    job = gram_targets(style, {"a": 1.0})
    feats = torch.randn(1, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda f: style_term({"a": f}, job), (feats,))


def test_rows_are_weighted_terms_of_each_job(stylizer, two_jobs):
    x = torch.cat([p.init for p in two_jobs])
    result = losses(stylizer, two_jobs, x)
    assert result.terms.shape == (2, 3) and result.total.shape == (2,)
    for terms, total, prepared in zip(result.terms, result.total.tolist(), two_jobs):
        p = prepared.job.params
        content, style, tv = terms.tolist()
        assert min(content, style, tv) > 0
        expected = p.content_weight * content + p.style_weight * style + p.tv_weight * tv
        assert total == pytest.approx(expected, rel=1e-6)


def test_a_jobs_row_and_gradient_do_not_depend_on_its_batch(stylizer, two_jobs):
    x = torch.cat([p.init for p in two_jobs]).requires_grad_(True)
    batched = losses(stylizer, two_jobs, x)
    batched.total[0].backward()
    assert x.grad[1].abs().max() == 0  # job 1's pixels get nothing from job 0's loss
    alone_x = two_jobs[0].init.clone().requires_grad_(True)
    alone = losses(stylizer, two_jobs[:1], alone_x)
    alone.total[0].backward()
    torch.testing.assert_close(batched.terms[0], alone.terms[0], rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(batched.total[0], alone.total[0], rtol=1e-5, atol=1e-7)
    scale = alone_x.grad.abs().max().item()  # batched convolutions round differently
    torch.testing.assert_close(x.grad[:1], alone_x.grad, rtol=1e-4, atol=1e-5 * scale)


def test_bf16_step_stays_close_to_fp32(weights_path, stylizer, two_jobs):
    """The same pixels through the bfloat16 pass (channels-last, as the engine runs it):
    loss rows within 2 % of float32 and a gradient pointing the same way. (Emulated where
    the CPU lacks bfloat16, so kept at 48 px.)"""
    from nst import Stylizer

    grads, rows = [], []
    for engine in (stylizer, Stylizer(str(weights_path), precision="bf16")):
        x = torch.cat([p.init for p in two_jobs]).requires_grad_(True)
        result = losses(engine, two_jobs, x)
        result.total.sum().backward()
        assert result.terms.dtype == torch.float32 and x.grad.dtype == torch.float32
        rows.append(torch.cat([result.terms, result.total[:, None]], dim=1).detach())
        grads.append(x.grad.flatten(1))
    assert not torch.equal(rows[1], rows[0])  # the pass did run in bfloat16
    torch.testing.assert_close(rows[1], rows[0], rtol=0.02, atol=0)
    cosine = torch.nn.functional.cosine_similarity(grads[0], grads[1])
    assert cosine.min() > 0.99, cosine


def test_loop_reads_losses_back_only_at_the_ends(stylizer, images, monkeypatch):
    """Without a callback, the loss rows stay on the device: the number of host reads does
    not grow with the steps (on a GPU each one would wait for the queued kernels)."""
    from nst.progress import LossTerms

    reads = []
    original = LossTerms.of.__func__
    monkeypatch.setattr(
        LossTerms, "of", classmethod(lambda cls, *a: reads.append(1) or original(cls, *a))
    )
    counts = []
    for steps in (2, 6):
        reads.clear()
        params = StyleParams(size=32, steps=steps, optimizer="adam", levels=1)
        stylizer.stylize(Job(images["astronaut.png"], [images["starry_night.jpg"]], params))
        counts.append(len(reads))
    assert counts[0] == counts[1] <= 2


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["default", "reduce-overhead"])
def test_compiled_step_matches_the_eager_one(weights_path, images, mode):
    """torch.compile (CPU inductor here) changes rounding only: final losses within 0.5 %.
    (``reduce-overhead`` records CUDA graphs on GPUs only: tests/nst/test_gpu.py.)"""
    from nst import Stylizer

    job = Job(
        images["astronaut.png"],
        [images["starry_night.jpg"]],
        StyleParams(size=48, steps=4, levels=1),
    )
    eager = Stylizer(str(weights_path), precision="fp32").stylize(job)
    compiled = Stylizer(
        str(weights_path), precision="fp32", compile=True, compile_mode=mode
    ).stylize(job)
    assert compiled.steps_run == eager.steps_run == 4
    assert compiled.losses.total == pytest.approx(eager.losses.total, rel=0.005)
    assert compiled.losses.total < compiled.initial_losses.total


def test_an_unknown_compile_mode_is_refused_before_any_compilation():
    with pytest.raises(ValueError, match="compile mode must be one of"):
        compiled_objective("max-autotune")
