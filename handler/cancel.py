"""Cancel markers: how the jobs service stops a running job inside the worker.

The jobs service (``nst_server.jobs``) sends each job to TorchServe with an ``X-NST-Job-Id``
header; to cancel it, it writes ``cancel-<id>`` into ``$NST_STATE_DIR``, the pod-local folder
the busy markers use. The handler looks for that file between steps and stops that job alone
(``stopped: cancelled``, the image so far); its batch-mates go on. Without the variable, or
for a request without the header, nothing is checked.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping
from pathlib import Path

from nst import Progress

from .activity import STATE_DIR_ENV

JOB_ID_HEADER = "X-NST-Job-Id"
PREFIX = "cancel-"
_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # ids that can name a file, nothing else


def marker(state_dir: str | Path, job_id: str) -> Path | None:
    """The cancel marker of ``job_id`` (None for an id that cannot name one)."""
    return Path(state_dir) / f"{PREFIX}{job_id}" if _JOB_ID.match(job_id) else None


def request_cancel(state_dir: str | Path, job_id: str) -> None:
    """Ask the worker running ``job_id`` to stop it at its next step."""
    path = marker(state_dir, job_id)
    if path is not None:
        path.write_text("")


def clear_cancel(state_dir: str | Path, job_id: str) -> None:
    """Remove ``job_id``'s marker once the job has ended."""
    path = marker(state_dir, job_id)
    if path is not None:
        path.unlink(missing_ok=True)


def clear_stale(state_dir: str | Path, max_age_s: float, now: float | None = None) -> int:
    """Remove the cancel markers older than ``max_age_s``: those no runner is left to clear
    (a job failed because the replica running it stopped). How many went."""
    limit = (time.time() if now is None else now) - max_age_s
    removed = 0
    for path in Path(state_dir).glob(f"{PREFIX}*"):
        try:
            if path.stat().st_mtime < limit:
                path.unlink()
                removed += 1
        except FileNotFoundError:  # cleared meanwhile by its runner
            continue
    return removed


class CancelWatch:
    """A progress callback: True (stop) for a job whose marker exists."""

    def __init__(self, markers: Mapping[int, Path]):
        self.markers = dict(markers)  # job index in the group -> its marker

    @classmethod
    def for_jobs(
        cls, job_ids: Mapping[int, str | None], state_dir: str | None = None
    ) -> CancelWatch | None:
        """The watch for the jobs of a group that carry a job id (None when none does, or
        no state folder is set)."""
        state_dir = state_dir or os.environ.get(STATE_DIR_ENV)
        if not state_dir:
            return None
        markers = {
            k: path
            for k, job_id in job_ids.items()
            if job_id and (path := marker(state_dir, job_id)) is not None
        }
        return cls(markers) if markers else None

    def __call__(self, progress: Progress) -> bool:
        path = self.markers.get(progress.job)
        return path is not None and path.exists()
