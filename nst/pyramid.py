"""Coarse-to-fine: the plan of levels, moving pixels between sizes, and running the levels.

A departure from the paper, which optimises at the output size only: a job may first run
some of its steps at 1/2, 1/4 ... of the size (a quarter of the cost per step each time),
each level starting from the last one's pixels (``docs/engine.md``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NamedTuple

import torch
from PIL import Image

from .pace import Deadline
from .progress import Callback, LossTerms, Progress

if TYPE_CHECKING:  # job.py asks this module for the plan, so Job is imported for types only
    from .job import Job
    from .optimize import BatchRun
    from .prepare import PreparedJob


class Level(NamedTuple):
    """One level of a plan: the longest side and the steps run at it."""

    size: int
    steps: int


def level_plan(job: Job) -> list[Level]:
    """Levels of ``job``, coarsest first; the last is the output size.

    Each coarser level has half the side of the next; together they get ``coarse_share`` of
    the steps, split evenly; the full size gets the rest (at least one). Levels too small
    for the chosen layers are dropped and their steps are shared by the levels kept.
    """
    p = job.params
    need = job.min_side()
    width, height = job.output_size()
    coarse = [
        k for k in range(p.levels - 1, 0, -1) if min(width, height) / 2**k >= need and p.steps > 1
    ]
    coarse_steps = min(round(p.steps * p.coarse_share), p.steps - 1) if coarse else 0
    plan = []
    for n, k in enumerate(coarse):
        steps = coarse_steps // len(coarse) + (n < coarse_steps % len(coarse))
        if steps:
            plan.append(Level(round(p.size / 2**k), steps))
    return [*plan, Level(p.size, p.steps - coarse_steps)]


def resize_pixels(pixels: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """Pixels (1, 3, h, w) resized to ``hw`` (bicubic up, antialiased down), kept in 0..1."""
    if tuple(pixels.shape[-2:]) == hw:
        return pixels.detach().clone()
    return torch.nn.functional.interpolate(
        pixels.detach(), size=hw, mode="bicubic", align_corners=False, antialias=True
    ).clamp(0, 1)


def upsampled_start(
    start: torch.Tensor, content: torch.Tensor, hw: tuple[int, int]
) -> torch.Tensor:
    """A coarser level's pixels brought to ``hw``, with the content's finer detail put back.

    Upsampling alone gives a blurred image whose content loss starts far above the coarse
    level's; the band of detail the coarse level could not hold (content minus content seen
    at the coarse size) is added back, so the finer level starts where the coarse one ended.
    """
    if tuple(start.shape[-2:]) == hw:
        return start.detach().clone()
    coarse_hw = (start.shape[-2], start.shape[-1])
    detail = content - resize_pixels(resize_pixels(content, coarse_hw), hw)
    return (resize_pixels(start, hw) + detail).clamp(0, 1)


# Prepares a job at one size, optionally starting from a coarser level's pixels.
Prepare = Callable[["Job", int, "torch.Tensor | None"], "PreparedJob"]
# Starts the optimisation of prepared jobs for so many steps each, reporting to a callback.
MakeRun = Callable[["list[PreparedJob]", list[int], "Callback | None"], "BatchRun"]


class Carried:
    """Per-job state carried from one level to the next."""

    def __init__(self, jobs: Sequence[Job]):
        n = len(jobs)
        self.total_steps = [job.params.steps for job in jobs]
        self.output_sizes = [job.output_size() for job in jobs]
        self.pixels: list[torch.Tensor | None] = [None] * n
        self.steps_run = [0] * n
        self.stopped: list[str | None] = [None] * n
        # Losses of the start image at the output size (measured before the levels run when
        # there are several; else taken from the first step).
        self.first_losses: list[LossTerms | None] = [None] * n

    def live(self) -> list[int]:
        return [i for i, stopped in enumerate(self.stopped) if stopped is None]

    def absorb(self, run: BatchRun, live: list[int]) -> None:
        """Fold one level's outcome for jobs ``live`` into the carried state."""
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
    prepare: Prepare,
    make_run: MakeRun,
    callback: Callback | None,
    clock: Deadline,
) -> tuple[BatchRun, Carried]:
    """Run every job's :func:`level_plan` (all jobs have plans of one length), coarsest
    first; returns a run holding every job at the output size, and the carried state."""
    plans = [level_plan(job) for job in jobs]
    last = len(plans[0]) - 1
    carried = Carried(jobs)
    # Output-size targets, prepared once: the last level runs on them, and the start
    # image's losses are measured at the output size.
    full = [prepare(job, job.params.size, None) for job in jobs]
    everyone = list(range(len(jobs)))
    if last > 0:  # a run of no steps only evaluates (its optimisers get no history slots)
        carried.first_losses = list(make_run(full, [0] * len(jobs), None).losses(everyone))
    final_run = None
    for level in range(last + 1):
        live = carried.live()
        if not live:
            break
        if level < last:
            prepared = [prepare(jobs[i], plans[i][level].size, carried.pixels[i]) for i in live]
        else:
            prepared = [full[i].continued_from(carried.pixels[i]) for i in live]
        steps = [plans[i][level].steps for i in live]
        run = make_run(prepared, steps, carried.relay(callback, live))
        run.optimise(clock)
        run.settle()
        carried.absorb(run, live)
        if level == last and len(live) == len(jobs):
            final_run = run  # already at the output size with every job
    if final_run is None:  # a job stopped early: bring every job to the output size
        prepared = [p.continued_from(carried.pixels[i]) for i, p in enumerate(full)]
        final_run = make_run(prepared, [0] * len(jobs), None)
    return final_run, carried
