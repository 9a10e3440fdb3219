"""The engine's public API: load VGG19 once, check jobs, stylise them alone or batched."""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch

from . import cost
from . import precision as precision_mod
from .coarse_to_fine import run_levels
from .gate import check_job
from .imageio import tensor_to_image
from .job import Job
from .objective import PassConfig, batch_losses, compiled_objective
from .pace import Deadline, Pace
from .progress import Callback, Result
from .style_cache import DEFAULT_MAX_BYTES, StyleCache
from .vgg import VGGFeatures
from .weights import VGGWeights, load_weights


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
        style_cache_bytes: int = DEFAULT_MAX_BYTES,
        compile: bool = False,
        compile_mode: str = "default",
    ):
        """``batch_invariant``: run the network once per job, so batching never changes a
        result (bit for bit). A batched pass picks different convolution blockings per batch
        size; their rounding differences (~1e-7) are amplified by L-BFGS's curvature updates
        into visibly different images after a few dozen steps. On a CPU a batched pass is no
        faster than one pass per job, so ``None`` (auto) means True on CPU and False on GPUs,
        where one batched pass is much cheaper and results agree up to rounding.

        ``precision``: dtype of the VGG passes (:mod:`nst.precision`): ``auto`` is bfloat16
        where the hardware runs it natively, else float32; ``fp32`` or ``bf16`` force it.

        ``style_cache_size``: style images whose style statistics are kept (:mod:`nst.style_cache`;
        0 turns the cache off); ``style_cache_bytes``: the most memory they may hold in all
        (on the device the job runs on).

        ``compile``: run each step's objective (:func:`nst.objective.batch_losses`) through
        ``torch.compile``, which fuses its element-wise work and reductions into fewer
        kernels. Each new input shape costs a compilation the first time, so it pays for
        long-lived workers serving a few sizes (docs/benchmarks.md). ``compile_mode``:
        ``default``, or ``reduce-overhead`` to replay each step as CUDA graphs on a GPU
        (:func:`nst.objective.compiled_objective`).
        """
        torch_device = torch.device(device)
        dtype = precision_mod.resolve(precision, torch_device)
        channels_last = precision_mod.use_channels_last(torch_device, dtype)
        precision_mod.configure_gpu(torch_device)
        self.style_cache = StyleCache(style_cache_size, style_cache_bytes)
        self.pace = Pace()  # this device's measured speed, for deadlines (nst.pace)
        loaded = weights if isinstance(weights, VGGWeights) else load_weights(weights)
        net = VGGFeatures(loaded).to(torch_device)
        net.keep_copy_in(dtype)
        if channels_last:
            net = net.to(memory_format=torch.channels_last)
        self.passes = PassConfig(
            net,
            torch_device,
            compiled_objective(compile_mode) if compile else batch_losses,
            dtype,
            channels_last,
            one_pass_per_job=torch_device.type == "cpu"
            if batch_invariant is None
            else batch_invariant,
        )

    @property
    def device(self) -> torch.device:
        """The device the network runs on."""
        return self.passes.device

    @property
    def net(self) -> VGGFeatures:
        """The feature extractor."""
        return self.passes.net

    @property
    def dtype(self) -> torch.dtype:
        """The precision of the VGG passes."""
        return self.passes.dtype

    def check(self, job: Job) -> None:
        """The gate: raise the input error any part of ``job``'s run would raise
        (:func:`nst.gate.check_job`), at no cost. :meth:`stylize_batch` trusts it."""
        check_job(job, self.net)

    def start_seconds(self, jobs: Sequence[Job]) -> float:
        """Estimated seconds before ``jobs``, run together, have prepared and made one step
        (:func:`nst.cost.start_seconds`; 0 until this device's pace has been measured)."""
        return cost.start_seconds(jobs, self.pace)

    def stylize(
        self, job: Job, callback: Callback | None = None, deadline: float | None = None
    ) -> Result:
        """Check and stylise one job. ``deadline`` is a ``time.monotonic()`` instant."""
        self.check(job)
        return self.stylize_batch([job], callback, deadline)[0]

    def stylize_batch(
        self,
        jobs: Sequence[Job],
        callback: Callback | None = None,
        deadline: float | None = None,
    ) -> list[Result]:
        """Stylise jobs that passed :meth:`check` and share :meth:`Job.batch_key`, together;
        results in job order.

        Every job keeps its own parameters (weights, optimiser, steps, seed...). When a job
        has run its steps it leaves the batch; the others go on. Each job runs its
        :meth:`Job.levels` (:func:`nst.coarse_to_fine.run_levels`); the losses reported are
        at the output size.
        """
        if len({job.batch_key() for job in jobs}) > 1:
            raise ValueError("jobs of one batch need the same output size, layers and pooling")
        start, started = time.perf_counter(), time.monotonic()
        clock = Deadline(deadline, self.pace)
        # The server may call this under torch.inference_mode(); the loop needs autograd.
        with torch.inference_mode(False), torch.enable_grad():
            final_run, outcomes = run_levels(
                jobs, self.passes, self.style_cache, callback, clock, started
            )
            everyone = list(range(len(jobs)))
            final = final_run.losses(everyone, dtype=torch.float32)  # reported in float32
        seconds = time.perf_counter() - start
        return [
            Result(
                image=tensor_to_image(final_run.prepared[i].finish(final_run.pixels[i])),
                steps_run=outcomes.steps_run[i],
                losses=final[i],
                initial_losses=outcomes.first_losses[i] or final[i],
                seconds=seconds,
                stopped=outcomes.stopped[i],
            )
            for i in everyone
        ]
