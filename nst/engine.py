"""The optimisation loop: several jobs of one output size in one forward/backward pass."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from PIL import Image

from . import precision as precision_mod
from .imageio import tensor_to_image
from .job import Job, PreparedJob, check, prepare, work_pixels
from .lbfgs import LBFGS
from .objective import JobTargets, batch_losses
from .pace import Deadline, Pace
from .style_cache import StyleCache
from .vgg import VGGFeatures, positions
from .weights import VGGWeights, load_weights


@dataclass(frozen=True)
class LossTerms:
    """Unweighted loss terms of one job and the weighted total."""

    content: float
    style: float
    tv: float
    total: float


@dataclass(frozen=True)
class Progress:
    """Reported to the callback after every step of every job."""

    job: int  # index of the job in the batch
    step: int  # steps done so far
    steps: int  # steps requested
    losses: LossTerms  # of the image the step started from
    preview: Image.Image | None  # current image, every ``preview_every`` steps


@dataclass(frozen=True)
class Result:
    """The stylised image and the run's figures."""

    image: Image.Image
    steps_run: int
    losses: LossTerms  # of the returned image
    initial_losses: LossTerms  # of the start image
    seconds: float
    # None (all steps ran), "deadline", "cancelled" or "non_finite" (the loss stopped being
    # a finite number; the image is the last one whose loss was finite)
    stopped: str | None = None


Callback = Callable[[Progress], bool | None]  # returning True stops that job

# Curvature pairs L-BFGS keeps. 20, not the usual 100: at 256 px over 300 steps, 20, 50 and
# 100 pairs end within 0.3 % of each other (docs/benchmarks.md), and each pair costs two
# image-sized buffers read twice per step (at 4096 px, 100 pairs would hold 40 GB).
LBFGS_HISTORY = 20
FINITE_CHECK_EVERY = 10  # steps between finiteness checks of the loss on a GPU
STEP_TIMER_WINDOW = 10  # steps per timing window on a GPU (one synchronisation each)


class Stylizer:
    """Loads VGG19 once; stylises jobs (load once, serve many)."""

    def __init__(
        self,
        weights: VGGWeights | str | None = None,
        device: str = "cpu",
        *,
        batch_invariant: bool | None = None,
        precision: str = "auto",
        style_cache_size: int = 32,
        compile: bool = False,
    ):
        """``batch_invariant``: run the network once per job, so batching never changes a
        result (bit for bit). A batched pass picks different convolution blockings per batch
        size; their rounding differences (~1e-7) are amplified by L-BFGS's curvature updates
        into visibly different images after a few dozen steps. On a CPU a batched pass is no
        faster than one pass per job, so ``None`` (auto) means True on CPU and False on GPUs,
        where one batched pass is much cheaper and results agree up to rounding.

        ``precision``: dtype of the VGG passes (:mod:`nst.precision`): ``auto`` is bfloat16
        where the hardware runs it natively, else float32; ``fp32`` or ``bf16`` force it.

        ``style_cache_size``: style images whose Gram targets are kept (:mod:`nst.style_cache`;
        0 turns the cache off).

        ``compile``: run each step's objective (:func:`nst.objective.batch_losses`) through
        ``torch.compile``, which fuses its element-wise work and reductions, forward and
        backward, into fewer kernels (on a GPU a step is largely kernel launches). Each new
        input shape costs a compilation (seconds to tens of seconds) the first time, so it
        pays for long-lived workers serving a few sizes; ``docs/benchmarks.md`` has figures.
        """
        self.device = torch.device(device)
        self.batch_invariant = (
            self.device.type == "cpu" if batch_invariant is None else batch_invariant
        )
        self.dtype = precision_mod.resolve(precision, self.device)
        self.channels_last = precision_mod.use_channels_last(self.device, self.dtype)
        precision_mod.configure_gpu(self.device)
        self.style_cache = StyleCache(style_cache_size)
        self.pace = Pace()  # this device's measured speed, for deadlines (nst.pace)
        loaded = weights if isinstance(weights, VGGWeights) else load_weights(weights)
        self.net = VGGFeatures(loaded).to(self.device)
        if self.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.objective = torch.compile(batch_losses) if compile else batch_losses

    def check(self, job: Job) -> None:
        """Raise the input error :meth:`stylize` would raise for ``job``, at no cost."""
        check(job, self.net)

    def start_seconds(self, jobs: Sequence[Job]) -> float:
        """Estimated seconds before ``jobs``, run together, have prepared and made one step
        (0 until this device's pace has been measured)."""
        prep = sum(self.pace.forward_seconds(work_pixels(job)) for job in jobs)
        return prep + self.pace.step_seconds(sum(_pixels(job) for job in jobs))

    def stylize(
        self, job: Job, callback: Callback | None = None, deadline: float | None = None
    ) -> Result:
        """Stylise one job. ``deadline`` is a ``time.monotonic()`` instant."""
        return self.stylize_batch([job], callback, deadline)[0]

    def stylize_batch(
        self, jobs: Sequence[Job], callback: Callback | None = None, deadline: float | None = None
    ) -> list[Result]:
        """Stylise jobs sharing :meth:`Job.batch_key` together; results in job order.

        Every job keeps its own parameters (weights, optimiser, steps, seed...). When a job
        has run its steps it leaves the batch; the others go on. Each job runs its
        :meth:`Job.level_plan`, coarsest level first, each level starting from the last
        one's pixels; the losses reported at the end are always at the output size.
        """
        if len({job.batch_key() for job in jobs}) > 1:
            raise ValueError("jobs of one batch need the same output size, layers and pooling")
        for job in jobs:
            check(job, self.net)  # every level's constraints, before any work
        start = time.perf_counter()
        clock = Deadline(deadline, self.pace)
        # The server may call this under torch.inference_mode(); the loop needs autograd.
        with torch.inference_mode(False), torch.enable_grad():
            state = _Levels(jobs)
            plans = [job.level_plan() for job in jobs]
            last = len(plans[0]) - 1
            # Output-size targets and start images, prepared once: the last level runs on
            # them, and the start image's losses are measured at the output size.
            full = [self._prepare(job.at_level(*plan[-1]), clock) for job, plan in zip(jobs, plans)]
            if last > 0:
                state.first_losses = _BatchRun(self, full, None).evaluate_chunked(
                    list(range(len(jobs))), grad=False
                )
            final_run = None
            for level in range(last + 1):
                live = [i for i in range(len(jobs)) if state.stopped[i] is None]
                if not live:
                    break
                if level < last:
                    prepared = [
                        self._prepare(jobs[i].at_level(*plans[i][level]), clock, state.pixels[i])
                        for i in live
                    ]
                else:
                    prepared = [state.continued(full[i], i) for i in live]
                run = self._run_level(prepared, live, state, callback, clock)
                if level == last and len(live) == len(jobs):
                    final_run = run  # already at the output size with every job
            if final_run is None:  # a job stopped early: bring every job to the output size
                final_run = _BatchRun(
                    self, [state.continued(p, i) for i, p in enumerate(full)], None
                )
            # Reported losses in float32, whatever precision the steps ran in.
            final = final_run.evaluate_chunked(
                list(range(len(jobs))), grad=False, dtype=torch.float32
            )
        seconds = time.perf_counter() - start
        return [
            Result(
                image=tensor_to_image(final_run.prepared[i].finish(final_run.pixels[i])),
                steps_run=state.steps_run[i],
                losses=final[i],
                initial_losses=state.first_losses[i] or final[i],
                seconds=seconds,
                stopped=state.stopped[i],
            )
            for i in range(len(jobs))
        ]

    def _prepare(self, job: Job, clock: Deadline, start: torch.Tensor | None = None) -> PreparedJob:
        """:func:`prepare` under the deadline, timing its VGG passes."""
        try:
            return prepare(
                job, self.net, self.device, start, self.style_cache, clock.before_forward
            )
        finally:
            clock.after_forward()

    def _run_level(
        self,
        prepared: list[PreparedJob],
        live: list[int],
        state: _Levels,
        callback: Callback | None,
        clock: Deadline,
    ) -> _BatchRun:
        """Optimise one level of the live jobs and fold its outcome into ``state``."""
        run = _BatchRun(self, prepared, state.relay(callback, live))
        run.optimise(clock)
        for k, i in enumerate(live):
            state.pixels[i] = run.pixels[k].detach()
            state.steps_run[i] += run.steps_run[k]
            state.stopped[i] = run.stopped[k]
            state.first_losses[i] = state.first_losses[i] or run.first_terms(k)
        return run


class _Levels:
    """Per-job state carried from one coarse-to-fine level to the next."""

    def __init__(self, jobs: Sequence[Job]):
        n = len(jobs)
        self.total_steps = [job.params.steps for job in jobs]
        self.output_sizes = [job.output_size() for job in jobs]
        self.pixels: list[torch.Tensor | None] = [None] * n
        self.steps_run = [0] * n
        self.stopped: list[str | None] = [None] * n
        # Losses of the start image, at the output size (set before the levels run when
        # there are several; else from the first step).
        self.first_losses: list[LossTerms | None] = [None] * n

    def continued(self, prepared: PreparedJob, i: int) -> PreparedJob:
        """``prepared`` (output size) starting from job ``i``'s pixels so far, if any."""
        if self.pixels[i] is None:
            return prepared
        return prepared.continued_from(self.pixels[i])

    def relay(self, callback: Callback | None, live: list[int]) -> Callback | None:
        """The user's callback, with level-local job indices and steps made global."""
        if callback is None:
            return None
        offsets = [self.steps_run[i] for i in live]

        def relayed(progress: Progress) -> bool | None:
            k, i = progress.job, live[progress.job]
            preview = progress.preview
            if preview is not None and preview.size != self.output_sizes[i]:
                preview = preview.resize(self.output_sizes[i], Image.Resampling.BICUBIC)
            return callback(
                Progress(
                    i, offsets[k] + progress.step, self.total_steps[i], progress.losses, preview
                )
            )

        return relayed


class _BatchRun:
    """State of one batched optimisation.

    Batch independence: VGG in eval mode treats batch items separately, and the batch's
    loss is the *sum* of per-job losses, so the gradient reaching a job's pixels is that of
    its own loss. Each job's pixels are a separate tensor with its **own optimiser**: for
    L-BFGS its own curvature history and step length, never one line search or one history
    over the concatenated batch (which would couple the jobs through shared dot products).
    """

    def __init__(self, stylizer: Stylizer, prepared: list[PreparedJob], callback: Callback | None):
        self.net, self.objective = stylizer.net, stylizer.objective
        self.prepared, self.callback = prepared, callback
        self.targets = [JobTargets.of(p) for p in prepared]
        params = prepared[0].job.params  # layers and pooling are shared by the batch
        self.wanted = positions(params.content_layers + params.style_layers)
        self.pooling = params.pooling
        self.one_pass_per_job = stylizer.batch_invariant
        self.dtype, self.channels_last = stylizer.dtype, stylizer.channels_last
        self.pixels = [p.init.clone().requires_grad_(True) for p in prepared]
        self.optimizers = [_make_optimizer(x, p.job) for x, p in zip(self.pixels, prepared)]
        self.steps_run = [0] * len(prepared)
        self.stopped: list[str | None] = [None] * len(prepared)
        self.first_losses: list[torch.Tensor | None] = [None] * len(prepared)
        # Finiteness needs the loss on the host: every step on a CPU, where reading it is
        # free; every few steps on a GPU, where it would stall the queue of kernels.
        self.finite_check_every = 1 if stylizer.device.type == "cpu" else FINITE_CHECK_EVERY
        # (pixels, steps run) of the last image whose loss was finite
        self.last_finite: list[tuple[torch.Tensor, int] | None] = [None] * len(prepared)

    def active(self) -> list[int]:
        return [
            i
            for i, p in enumerate(self.prepared)
            if self.stopped[i] is None and self.steps_run[i] < p.job.params.steps
        ]

    def optimise(self, clock: Deadline) -> None:
        """Step every active job until each has run its steps or stopped; a step starts only
        when it (and the final evaluation) can end before the deadline."""
        timer = _StepTimer(self.pixels[0].device, clock.pace)
        while indices := self.active():
            pixels = sum(self.pixels[i][0, 0].numel() for i in indices)
            if not clock.allows_step(pixels):
                for i in indices:
                    self.stopped[i] = "deadline"
                return
            timer.start()
            rows = self._evaluate_rows(indices, grad=True)
            for k, i in enumerate(indices):
                self._step(i, rows[k])
            timer.stop(pixels)

    def _step(self, i: int, row: torch.Tensor) -> None:
        """Apply job ``i``'s optimiser to the gradient already in its pixels.

        ``row`` holds the job's loss terms on the device; they are read back to the host
        only when a callback wants them (and once at the end), so with Adam a GPU step
        queues its kernels without waiting for the previous ones to finish.
        """
        x, job = self.pixels[i], self.prepared[i].job
        if self.first_losses[i] is None:
            self.first_losses[i] = row
        if self.steps_run[i] % self.finite_check_every == 0 and not self._finite(i, row):
            return
        # L-BFGS calls the closure exactly once, at the start of step(); the forward/backward
        # for the whole batch has already run, so it returns that loss (left on the device).
        self.optimizers[i].step(lambda: row[3])
        with torch.no_grad():
            x.clamp_(0, 1)  # keep pixels valid (neural-style instead lets them drift)
        x.grad = None
        self.steps_run[i] += 1
        if self.callback is not None:
            every = job.params.preview_every
            preview = None
            if every and self.steps_run[i] % every == 0:
                preview = tensor_to_image(self.prepared[i].finish(x.detach()))
            progress = Progress(i, self.steps_run[i], job.params.steps, _terms(row), preview)
            if self.callback(progress):
                self.stopped[i] = "cancelled"

    def _finite(self, i: int, row: torch.Tensor) -> bool:
        """Keep job ``i``'s pixels when their loss is finite; else go back to the last kept
        pixels and stop the job (a departure from every reference loop, which would go on
        optimising NaNs and return a black image)."""
        x = self.pixels[i]
        if bool(torch.isfinite(row).all()):
            self.last_finite[i] = (x.detach().clone(), self.steps_run[i])
            return True
        if self.last_finite[i] is not None:
            with torch.no_grad():
                x.copy_(self.last_finite[i][0])
            self.steps_run[i] = self.last_finite[i][1]
        x.grad = None
        self.stopped[i] = "non_finite"
        return False

    def evaluate_chunked(
        self, indices: list[int], grad: bool, dtype: torch.dtype | None = None
    ) -> list[LossTerms]:
        """Loss terms of jobs ``indices``, read back to the host."""
        return [_terms(row) for row in self._evaluate_rows(indices, grad, dtype)]

    def first_terms(self, i: int) -> LossTerms | None:
        """Losses of job ``i``'s start image, once a step has run."""
        row = self.first_losses[i]
        return None if row is None else _terms(row)

    def _evaluate_rows(
        self, indices: list[int], grad: bool, dtype: torch.dtype | None = None
    ) -> torch.Tensor:
        """:meth:`evaluate` in one pass, or one pass per job when batch-invariant."""
        chunks = [[i] for i in indices] if self.one_pass_per_job else [indices]
        return torch.cat([self.evaluate(chunk, grad, dtype) for chunk in chunks])

    def evaluate(
        self, indices: list[int], grad: bool, dtype: torch.dtype | None = None
    ) -> torch.Tensor:
        """Losses of jobs ``indices`` from one batched VGG forward (and backward if ``grad``):
        one row per job of [content, style, tv, weighted total], detached, on the device."""
        with torch.set_grad_enabled(grad):
            x = torch.cat([self.pixels[i] for i in indices])
            rows = self.objective(
                self.net,
                x,
                [self.targets[i] for i in indices],
                self.wanted,
                self.pooling,
                dtype or self.dtype,
                self.channels_last,
            )
            if grad:
                rows[:, 3].sum().backward()
        return rows.detach()


class _StepTimer:
    """Measures batched steps into :class:`Pace`: each step on a CPU; on a GPU, windows of
    steps ended by one synchronisation (the host does not wait for kernels otherwise)."""

    def __init__(self, device: torch.device, pace: Pace):
        self.cuda, self.pace = device.type == "cuda", pace
        self.window = STEP_TIMER_WINDOW if self.cuda else 1
        self.steps, self.pixels, self.began = 0, 0, 0.0

    def start(self) -> None:
        if self.steps == 0:
            self.began = time.monotonic()

    def stop(self, pixels: int) -> None:
        self.steps, self.pixels = self.steps + 1, self.pixels + pixels
        if self.steps < self.window:
            return
        if self.cuda:
            torch.cuda.synchronize()
        self.pace.record_step(
            self.pixels // self.steps, (time.monotonic() - self.began) / self.steps
        )
        self.steps, self.pixels = 0, 0


def _pixels(job: Job) -> int:
    width, height = job.output_size()
    return width * height


def _terms(row: torch.Tensor) -> LossTerms:
    """One job's loss row, read back to the host."""
    return LossTerms(*row.tolist())


def _make_optimizer(pixels: torch.Tensor, job: Job) -> torch.optim.Optimizer:
    p = job.params
    if p.optimizer == "adam":
        return torch.optim.Adam([pixels], lr=p.lr)
    # One L-BFGS iteration per step() so the loop controls evaluation, deadlines and
    # progress; no line search (as neural-style). nst.lbfgs rather than torch's: its pairs
    # follow the pixels through the clamp (torch's lose their way, see nst/lbfgs.py), and it
    # never syncs with a GPU. Its matrices are allocated up front, so a short job gets only
    # the slots it can fill.
    return LBFGS([pixels], lr=1.0, history_size=max(1, min(LBFGS_HISTORY, p.steps - 1)))
