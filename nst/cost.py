"""What a job costs, in pixels through VGG: the one cost model behind the engine's deadline
estimates and a server's limits and scheduling.

A forward pass over ``n`` pixels is the unit; a step (forward and backward to the pixels)
counts :data:`nst.pace.STEP_PER_FORWARD` of them. :class:`nst.pace.Pace` turns pixels into
this device's seconds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .imageio import longest_side_size
from .job import Job
from .pace import STEP_PER_FORWARD, Pace


def work_pixels(job: Job) -> int:
    """Pixels one evaluation of the job runs through VGG at the output size: the output plus
    every style image as resized for its style statistics (the size-dependent cost of a
    request, which a server bounds)."""
    p = job.params
    total = math.prod(job.output_size())
    for style in job.styles:
        total += math.prod(longest_side_size(style.size, job.style_side(style, p.size)))
    return total


def requested_work(job: Job) -> float:
    """The job's whole requested work in forward-pass pixels: its preparation and every step
    at the output size."""
    step = STEP_PER_FORWARD * math.prod(job.output_size())
    return work_pixels(job) + job.params.steps * step


def start_seconds(jobs: Sequence[Job], pace: Pace) -> float:
    """Estimated seconds before ``jobs``, run together, have prepared and made one step
    (0 until ``pace`` has measured this device)."""
    prep = sum(pace.forward_seconds(work_pixels(job)) for job in jobs)
    pixels = sum(math.prod(job.output_size()) for job in jobs)
    return prep + pace.step_seconds(pixels)
