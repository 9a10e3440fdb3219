"""Busy markers: how a pod's preStop hook knows a worker is still optimising.

TorchServe 0.12 has no graceful shutdown (pytorch/serve#2008) and its management API shows a
busy worker as READY, so the handler leaves ``busy-<pid>`` in ``$NST_STATE_DIR`` while a batch
runs; ``scripts/healthcheck.py drain`` waits for these to go. Without the variable it is a no-op.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

STATE_DIR_ENV = "NST_STATE_DIR"
PREFIX = "busy-"


@contextmanager
def busy(state_dir: str | None = None) -> Iterator[None]:
    """Mark this process busy in ``state_dir`` (default ``$NST_STATE_DIR``) for the block."""
    state_dir = state_dir or os.environ.get(STATE_DIR_ENV)
    if not state_dir:
        yield
        return
    marker = Path(state_dir) / f"{PREFIX}{os.getpid()}"
    marker.write_text("")
    try:
        yield
    finally:
        marker.unlink(missing_ok=True)


def busy_pids(state_dir: str | Path) -> list[int]:
    """Pids with a marker whose process is still alive (a killed worker's marker is ignored)."""
    pids = []
    for marker in Path(state_dir).glob(f"{PREFIX}*"):
        pid = marker.name[len(PREFIX) :]
        if pid.isdigit() and pid_alive(int(pid)):
            pids.append(int(pid))
    return pids


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (one of another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
