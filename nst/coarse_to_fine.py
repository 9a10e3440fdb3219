"""Coarse-to-fine, the driver: every job's :meth:`nst.job.Job.levels` run in turn, each
level a :class:`nst.optimize.BatchRun` of freshly prepared jobs (:func:`nst.prepare.prepare`)
starting from the last level's pixels; losses are always reported at the output size.

:func:`run_levels` is to :class:`~nst.optimize.BatchRun` what pystiche's
``pyramid_image_optimization`` is to ``image_optimization``: it calls it once per level.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from PIL import Image

from .job import Job
from .objective import PassConfig
from .optimize import BatchRun
from .pace import Deadline
from .prepare import PreparedJob, prepare
from .progress import Callback, LossTerms, Progress, StopReason
from .style_cache import StyleCache


class LevelOutcomes:
    """What each job of a batch has reached over the levels run so far."""

    def __init__(self, jobs: Sequence[Job]):
        n = len(jobs)
        self.total_steps = [job.params.steps for job in jobs]
        self.output_sizes = [job.output_size() for job in jobs]
        self.pixels: list[torch.Tensor | None] = [None] * n
        self.steps_run = [0] * n
        self.stopped: list[StopReason | None] = [None] * n
        # Losses of the start image at the output size (measured before the levels run when
        # there are several; else taken from the first step).
        self.first_losses: list[LossTerms | None] = [None] * n

    def live(self) -> list[int]:
        """The jobs that have not stopped."""
        return [i for i, stopped in enumerate(self.stopped) if stopped is None]

    def absorb(self, run: BatchRun, live: list[int]) -> None:
        """Fold one level's outcome for jobs ``live`` into these outcomes."""
        for k, i in enumerate(live):
            self.pixels[i] = run.pixels[k].detach()
            self.steps_run[i] += run.steps_run[k]
            self.stopped[i] = run.stopped[k]
            self.first_losses[i] = self.first_losses[i] or run.first_terms(k)

    def relay(self, callback: Callback | None, live: list[int]) -> Callback | None:
        """The user's callback, with level-local job indices and steps made global and
        previews brought to the output size."""
        if callback is None:
            return None
        offsets = [self.steps_run[i] for i in live]

        def relayed(progress: Progress) -> bool | None:
            k, i = progress.job, live[progress.job]
            preview = progress.preview
            if preview is not None and preview.size != self.output_sizes[i]:
                preview = preview.resize(self.output_sizes[i], Image.Resampling.BICUBIC)
            step = offsets[k] + progress.step
            return callback(Progress(i, step, self.total_steps[i], progress.losses, preview))

        return relayed


def run_levels(
    jobs: Sequence[Job],
    passes: PassConfig,
    cache: StyleCache | None,
    callback: Callback | None,
    clock: Deadline,
    started: float,
) -> tuple[BatchRun, LevelOutcomes]:
    """Run every job's levels (all jobs of a batch have plans of one length), coarsest
    first; returns a run holding every job at the output size, and the outcomes.

    ``passes`` says how VGG runs, ``cache`` keeps style statistics, ``clock`` holds the
    deadline and ``started`` (a ``time.monotonic()`` instant) is when the jobs' own
    ``time_limit`` began.
    """

    def prepared_at(job: Job, size: int, pixels: torch.Tensor | None) -> PreparedJob:
        try:
            return prepare(job, size, passes, pixels, cache, clock.before_forward)
        finally:
            clock.after_forward()

    def batch_run(
        prepared: list[PreparedJob], steps: list[int], relay: Callback | None
    ) -> BatchRun:
        return BatchRun(passes, prepared, steps, relay, started)

    plans = [job.levels() for job in jobs]
    last = len(plans[0]) - 1
    outcomes = LevelOutcomes(jobs)
    # Output-size targets, prepared once: the last level runs on them, and the start
    # image's losses are measured at the output size.
    full = [prepared_at(job, job.params.size, None) for job in jobs]
    everyone = list(range(len(jobs)))
    if last > 0:  # a run of no steps only evaluates (its optimisers get no history slots)
        outcomes.first_losses = list(batch_run(full, [0] * len(jobs), None).losses(everyone))
    final_run = None
    for level in range(last + 1):
        live = outcomes.live()
        if not live:
            break
        if level < last:
            prepared = [
                prepared_at(jobs[i], plans[i][level].size, outcomes.pixels[i]) for i in live
            ]
        else:
            prepared = [full[i].continued_from(outcomes.pixels[i]) for i in live]
        steps = [plans[i][level].steps for i in live]
        run = batch_run(prepared, steps, outcomes.relay(callback, live))
        run.optimise(clock)
        run.end_level()
        outcomes.absorb(run, live)
        if level == last and len(live) == len(jobs):
            final_run = run  # already at the output size with every job
    if final_run is None:  # a job stopped early: bring every job to the output size
        prepared = [p.continued_from(outcomes.pixels[i]) for i, p in enumerate(full)]
        final_run = batch_run(prepared, [0] * len(jobs), None)
    return final_run, outcomes
