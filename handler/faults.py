"""Which device failures a worker can recover from, and how it leaves when it cannot."""

from __future__ import annotations

import logging
import os
import threading

import torch

log = logging.getLogger(__name__)

# Messages of errors after which a CUDA context is unusable: every later call fails too.
_FATAL_MARKERS = (
    "illegal memory access",
    "device-side assert",
    "unspecified launch failure",
    "CUDA error: misaligned address",
    "an illegal instruction",
    "uncorrectable ECC error",
    "device not ready",
    "CUDA driver version",
    "CUDA-capable device(s) is/are busy or unavailable",
)
EXIT_DELAY_S = 2.0  # time for the batch's replies to leave before the worker exits


def is_out_of_memory(exc: BaseException) -> bool:
    """The device (or host) could not allocate: retrying smaller may work."""
    return isinstance(exc, torch.OutOfMemoryError | MemoryError) or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()
    )


def is_fatal_device_error(exc: BaseException) -> bool:
    """A CUDA error that poisons the process: only a new worker recovers."""
    accelerator_error = getattr(torch, "AcceleratorError", ())
    text = str(exc)
    return (isinstance(exc, accelerator_error) and not is_out_of_memory(exc)) or (
        isinstance(exc, RuntimeError) and any(marker in text for marker in _FATAL_MARKERS)
    )


def free_device_memory(device: torch.device) -> None:
    """Return cached blocks to the device after an out-of-memory error."""
    if device.type == "cuda":
        torch.cuda.empty_cache()


def exit_worker_soon(delay_s: float = EXIT_DELAY_S) -> None:
    """Exit this worker process shortly (after the current replies are sent); TorchServe
    starts a fresh one with a new CUDA context."""
    log.critical("the device is in an unrecoverable state; this worker exits in %.0f s", delay_s)
    timer = threading.Timer(delay_s, os._exit, args=(70,))  # 70: EX_SOFTWARE
    timer.daemon = True
    timer.start()
