"""The optimisation of a batch of prepared jobs at one size.

Batch independence: VGG in eval mode treats batch items separately, and the batch's loss is
the *sum* of per-job losses, so the gradient reaching a job's pixels is that of its own loss.
Each job's pixels are a separate tensor with its **own optimiser**: for L-BFGS its own
curvature history and step length, never one line search or one history over the
concatenated batch (which would couple the jobs through shared dot products).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch

from .adam import Adam
from .imageio import tensor_to_image
from .lbfgs import LBFGS
from .losses import random_directions
from .objective import JobTargets, Losses, PassConfig, evaluate_losses
from .pace import Deadline, Pace
from .preconditioner import preconditioner
from .prepare import PreparedJob
from .progress import Callback, LossTerms, Progress, StopReason
from .vgg import layer_positions

# Curvature pairs L-BFGS keeps: fewer than the usual 100 end as low and hold far less memory
# (docs/benchmarks.md, "L-BFGS through the clamp").
LBFGS_HISTORY = 20
FINITE_CHECK_EVERY = 10  # steps between finiteness checks of the loss on a GPU
STEP_TIMER_WINDOW = 10  # steps per timing window on a GPU (one synchronisation each)


class BatchRun:
    """Jobs of one size optimised together: ``steps[k]`` steps for job ``k``; jobs with a
    ``time_limit`` stop that many seconds after ``started`` (a ``time.monotonic()``
    instant), after at least one step."""

    def __init__(
        self,
        passes: PassConfig,
        prepared: Sequence[PreparedJob],
        steps: Sequence[int],
        callback: Callback | None = None,
        started: float | None = None,
    ):
        self.passes, self.prepared, self.callback = passes, list(prepared), callback
        self.steps = list(steps)
        limits = [p.job.params.time_limit for p in self.prepared]
        self.time_limits = [started + t if started is not None and t else None for t in limits]
        self.targets = [p.targets() for p in self.prepared]
        params = self.prepared[0].job.params  # layers and pooling are shared by the batch
        self.positions = layer_positions(params.content_layers + params.style_layers)
        self.pooling = params.pooling
        self.pixels = [p.init.clone().requires_grad_(True) for p in self.prepared]
        self.optimizers = [
            make_optimizer(x, p, n) for x, p, n in zip(self.pixels, self.prepared, self.steps)
        ]
        self.steps_run = [0] * len(self.prepared)
        self.stopped: list[StopReason | None] = [None] * len(self.prepared)
        self.first: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * len(self.prepared)
        # Finiteness needs the loss on the host: every step on a CPU, where reading it is
        # free; every few steps on a GPU, where it would stall the queue of kernels.
        on_cpu = self.pixels[0].device.type == "cpu"
        self.finite_check_every = 1 if on_cpu else FINITE_CHECK_EVERY
        # (pixels, steps run) of the last image whose loss was finite
        self.last_finite: list[tuple[torch.Tensor, int] | None] = [None] * len(self.prepared)
        # Polyak averages of the iterates (params.average) and the weight they have gathered
        self.averages: list[tuple[torch.Tensor, float] | None] = [None] * len(self.prepared)
        # Sliced Wasserstein: each job's projections come from its own seeded generator
        self.generators = [
            torch.Generator().manual_seed(p.job.params.seed)
            if p.job.params.style_loss == "sliced_wasserstein"
            else None
            for p in self.prepared
        ]

    def active(self) -> list[int]:
        return [
            k
            for k in range(len(self.prepared))
            if self.stopped[k] is None and self.steps_run[k] < self.steps[k]
        ]

    def optimise(self, clock: Deadline) -> None:
        """Step every active job until each has run its steps or stopped; a step starts only
        when it (and the final evaluation) can end before the deadline."""
        timer = StepTimer(self.pixels[0].device, clock.pace)
        while indices := self.active():
            pixels = sum(self.pixels[k][0, 0].numel() for k in indices)
            if not clock.allows_step(pixels):
                for k in indices:
                    self.stopped[k] = "deadline"
                return
            if self._stop_timed_out(indices, pixels, clock.pace):
                continue  # fewer jobs: the next step is cheaper
            timer.start()
            losses = self._evaluate(indices, grad=True)
            for row, k in enumerate(indices):
                self._step(k, losses.terms[row], losses.total[row])
            timer.stop(pixels)

    def _stop_timed_out(self, indices: Sequence[int], pixels: int, pace: Pace) -> bool:
        """Stop the jobs among ``indices`` whose ``time_limit`` leaves no time for a step
        over ``pixels``; True when any stopped."""
        late = [
            k
            for k in indices
            if (limit := self.time_limits[k]) is not None
            and self.steps_run[k] > 0
            and not Deadline(limit, pace).allows_step(pixels)
        ]
        for k in late:
            self.stopped[k] = "time_limit"
        return bool(late)

    def losses(self, indices: Sequence[int], dtype: torch.dtype | None = None) -> list[LossTerms]:
        """Loss terms of jobs ``indices``' current pixels, read back to the host."""
        losses = self._evaluate(indices, grad=False, dtype=dtype)
        return [LossTerms.of(terms, total) for terms, total in zip(losses.terms, losses.total)]

    def first_terms(self, k: int) -> LossTerms | None:
        """Losses of job ``k``'s start image, once a step has run."""
        first = self.first[k]
        return None if first is None else LossTerms.of(*first)

    def output(self, k: int) -> torch.Tensor:
        """Job ``k``'s image to return and preview: the average of its iterates when
        ``params.average`` asks for one, else its current pixels."""
        average = self.averages[k]
        if average is None:
            return self.pixels[k].detach()
        total, weight = average
        return total / weight

    def end_level(self) -> None:
        """Make each job's pixels its :meth:`output` image (at the end of a level, so that
        the next level and the reported losses start from what is returned)."""
        with torch.no_grad():
            for k, x in enumerate(self.pixels):
                if self.averages[k] is not None:
                    x.copy_(self.output(k))
                    self.averages[k] = None

    def _evaluate(
        self, indices: Sequence[int], grad: bool, dtype: torch.dtype | None = None
    ) -> Losses:
        return evaluate_losses(
            self.passes,
            [self.pixels[k] for k in indices],
            [self._targets(k) for k in indices],
            self.positions,
            self.pooling,
            grad=grad,
            dtype=dtype,
        )

    def _targets(self, k: int) -> JobTargets:
        """Job ``k``'s targets; for the sliced Wasserstein loss, with projections drawn
        afresh at each evaluation."""
        generator, targets = self.generators[k], self.targets[k]
        if generator is None:
            return targets
        stats = targets.style[0].stats
        directions = {
            name: random_directions(stats[name][0].shape[1], generator, self.pixels[k].device)
            for name in targets.layer_weights
        }
        return targets._replace(directions=directions)

    def _average(self, k: int) -> None:
        """Fold job ``k``'s new pixels into its exponential moving average (bias-corrected:
        the weights of the iterates so far are divided by their sum)."""
        decay = self.prepared[k].job.params.average
        if not decay:
            return
        x = self.pixels[k].detach()
        total, weight = self.averages[k] or (torch.zeros_like(x), 0.0)
        self.averages[k] = (total * decay + x * (1 - decay), weight * decay + (1 - decay))

    def _step(self, k: int, terms: torch.Tensor, total: torch.Tensor) -> None:
        """Apply job ``k``'s optimiser to the gradient already in its pixels.

        The losses stay on the device; they are read back to the host only when a callback
        wants them (and once at the end), so with Adam a GPU step queues its kernels
        without waiting for the previous ones to finish.
        """
        x = self.pixels[k]
        if self.first[k] is None:
            self.first[k] = (terms, total)
        if self.steps_run[k] % self.finite_check_every == 0 and not self._finite(k, terms, total):
            return
        # The forward/backward for the whole batch has already run: the closure L-BFGS
        # calls once, at the start of step(), returns that loss (left on the device).
        self.optimizers[k].step(lambda: total)
        with torch.no_grad():
            x.clamp_(0, 1)  # keep pixels valid (neural-style instead lets them drift)
        x.grad = None
        self.steps_run[k] += 1
        self._average(k)
        if self.callback is not None:
            self._report(k, LossTerms.of(terms, total))

    def _report(self, k: int, losses: LossTerms) -> None:
        every = self.prepared[k].job.params.preview_every
        preview = None
        if every and self.steps_run[k] % every == 0:
            preview = tensor_to_image(self.prepared[k].finish(self.output(k)))
        assert self.callback is not None
        if self.callback(Progress(k, self.steps_run[k], self.steps[k], losses, preview)):
            self.stopped[k] = "cancelled"

    def _finite(self, k: int, terms: torch.Tensor, total: torch.Tensor) -> bool:
        """Keep job ``k``'s pixels when their loss is finite; else go back to the last kept
        pixels and stop the job (a departure from every reference loop, which would go on
        optimising NaNs and return a black image)."""
        x = self.pixels[k]
        if bool(torch.isfinite(terms).all() and torch.isfinite(total)):
            self.last_finite[k] = (x.detach().clone(), self.steps_run[k])
            return True
        kept = self.last_finite[k]
        if kept is not None:
            with torch.no_grad():
                x.copy_(kept[0])
            self.steps_run[k] = kept[1]
        self.averages[k] = None  # it may hold the non-finite pixels
        x.grad = None
        self.stopped[k] = "non_finite"
        return False


class StepTimer:
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
        seconds = (time.monotonic() - self.began) / self.steps
        self.pace.record_step(self.pixels // self.steps, seconds)
        self.steps, self.pixels = 0, 0


def make_optimizer(pixels: torch.Tensor, prepared: PreparedJob, steps: int) -> Adam | LBFGS:
    """The job's optimiser for ``steps`` steps of ``pixels``."""
    p = prepared.job.params
    precondition = preconditioner(p.parameterization)
    if p.optimizer == "adam":
        return Adam([pixels], lr=p.lr, precondition=precondition)
    # One L-BFGS iteration per step() so the loop controls evaluation, deadlines and
    # progress; no line search (as neural-style). nst.lbfgs rather than torch's: its pairs
    # follow the pixels through the clamp (see nst/lbfgs.py), and it never syncs with a GPU.
    # Its matrices are allocated up front, so a short run gets only the slots it can fill.
    return LBFGS(
        [pixels],
        lr=1.0,
        history_size=max(1, min(LBFGS_HISTORY, steps - 1)),
        precondition=precondition,
    )
