"""How long VGG work takes on this device, learned while it runs, so deadlines hold.

A deadline checked only between whole steps overshoots by a step, and a preparation (style
passes at up to ``style_scale`` x the output size) is not a step at all. :class:`Pace`
keeps the seconds per pixel of a VGG forward pass and of an optimisation step (forward and
backward) as measured on this device; :class:`Deadline` uses them to refuse work that would
end past the deadline, before it starts.

Rates rise at once to a slower measurement and fall slowly, so one fast run does not make
the next estimate optimistic. On a GPU the host does not wait for kernels, so a step's
wall time is only measured where a result is read back; estimates there are rougher, which
the deadline margin covers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from .errors import DeadlineExceeded

# Passes smaller than this are not timed: fixed per-pass costs dominate them, and a rate per
# pixel taken from them would overestimate large images many times over.
MIN_TIMED_PIXELS = 128 * 128
STEP_PER_FORWARD = 3.0  # a step (forward + backward to the pixels) costs ~3 forward passes
RESERVE_STEPS = 1.5  # stop when fewer than this many steps' time is left (final evaluation)


def _blend(old: float | None, new: float) -> float:
    """Up at once, down by a fifth of the difference."""
    return new if old is None or new > old else old + 0.2 * (new - old)


@dataclass
class Pace:
    """Seconds per pixel of a forward pass and of a step; ``None`` until measured."""

    forward_s_per_px: float | None = None
    step_s_per_px: float | None = None

    def record_forward(self, pixels: int, seconds: float) -> None:
        if pixels >= MIN_TIMED_PIXELS:
            self.forward_s_per_px = _blend(self.forward_s_per_px, seconds / pixels)

    def record_step(self, pixels: int, seconds: float) -> None:
        if pixels >= MIN_TIMED_PIXELS:
            self.step_s_per_px = _blend(self.step_s_per_px, seconds / pixels)

    def forward_seconds(self, pixels: int) -> float:
        """Estimated seconds of a forward pass over ``pixels`` (0 when never measured)."""
        return (self.forward_s_per_px or 0.0) * pixels

    def step_seconds(self, pixels: int) -> float:
        """Estimated seconds of one step over ``pixels`` (from forward passes if no step ran
        yet; 0 when nothing was measured)."""
        if self.step_s_per_px is not None:
            return self.step_s_per_px * pixels
        return STEP_PER_FORWARD * self.forward_seconds(pixels)


class Deadline:
    """A ``time.monotonic()`` instant (or none) and the pace used to respect it."""

    def __init__(self, at: float | None, pace: Pace):
        self.at, self.pace = at, pace
        self._pending: tuple[int, float] | None = None

    def left(self) -> float:
        return float("inf") if self.at is None else self.at - time.monotonic()

    def before_forward(self, pixels: int) -> None:
        """Checkpoint before a forward pass of ``pixels``: records the previous pass's time
        and raises :class:`DeadlineExceeded` when this one would end past the deadline."""
        self.after_forward()
        if self.pace.forward_seconds(pixels) >= self.left():
            raise DeadlineExceeded(
                "the server ran out of time before this request could start; retry later",
                field=None,
            )
        self._pending = (pixels, time.monotonic())

    def after_forward(self) -> None:
        """Record the time of the pass begun at the last :meth:`before_forward`."""
        if self._pending is not None:
            pixels, started = self._pending
            self.pace.record_forward(pixels, time.monotonic() - started)
            self._pending = None

    def allows_step(self, pixels: int) -> bool:
        """True when a step over ``pixels`` and the final evaluation fit before the deadline."""
        return RESERVE_STEPS * self.pace.step_seconds(pixels) < self.left()
