"""Host memory reuse between steps: glibc's malloc told to keep what a step frees.

Each step allocates and frees the same activations and gradients (tens of MB at 256 px).
glibc's defaults hand large blocks straight back to the kernel when they are freed, so
the next step gets fresh pages and faults each one in again: on a 2-core CPU that cost
5-8 % of a 256 px step and about a quarter of a 512 px one (docs/benchmarks.md, "The cost
of a step beyond the convolutions").
PyTorch's GPU allocator caches blocks for the same reason; its CPU allocator does not.
"""

from __future__ import annotations

import ctypes
import ctypes.util

# mallopt(3) parameters
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 32 * 2**20  # blocks above this still come from (and go back to) the kernel
KEEP_FREE_BYTES = 256 * 2**20  # free memory the heap may keep at its top for reuse


def reuse_freed_memory(keep_bytes: int = KEEP_FREE_BYTES) -> bool:
    """Ask the C library to serve blocks of up to :data:`MMAP_THRESHOLD` from its heap and
    keep up to ``keep_bytes`` of freed memory for reuse, for the whole process (call it
    from the program's entry point). True when the C library took both settings; False
    where it has no ``mallopt`` (not glibc), which leaves its allocator as it was."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, keep_bytes)
    )
