"""What a run reports: loss terms, progress after each step, and the result."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, get_args

from PIL import Image

if TYPE_CHECKING:
    import torch

# Why a job stopped before its steps: the server's deadline, the job's own time_limit, its
# callback, a loss that stopped being finite (the image is then the last one whose loss was).
StopReason = Literal["deadline", "time_limit", "cancelled", "non_finite"]
STOP_REASONS: tuple[StopReason, ...] = get_args(StopReason)


@dataclass(frozen=True)
class LossTerms:
    """Unweighted loss terms of one job and the weighted total."""

    content: float
    style: float
    tv: float
    total: float

    @classmethod
    def of(cls, terms: torch.Tensor, total: torch.Tensor) -> LossTerms:
        """From one job's (3,) unweighted terms and its 0-dim total, read back to the host."""
        content, style, tv = terms.tolist()
        return cls(content, style, tv, float(total))


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
    stopped: StopReason | None = None  # None: all steps ran


Callback = Callable[[Progress], bool | None]  # returning True stops that job
