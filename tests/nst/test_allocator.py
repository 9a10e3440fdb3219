"""nst.allocator: after reuse_freed_memory, a step's freed blocks serve the next step."""

import subprocess
import sys

import pytest

# Ten "steps", each holding eight tensors of 8-24 MB at once and then freeing them, as a
# step's activations and gradients do; prints the page faults the ten steps took.
STEPS = """
import resource, sys, torch
import nst
if sys.argv[1] == "reuse":
    assert nst.reuse_freed_memory()
def step():
    held = [torch.empty(2 * 2**20 * (1 + i % 3)).fill_(1.0) for i in range(8)]
    del held
step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def page_faults(mode: str) -> int:
    run = subprocess.run(
        [sys.executable, "-c", STEPS, mode], capture_output=True, text=True, check=True
    )
    return int(run.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_blocks_are_reused_instead_of_faulted_in_again():
    default, reused = page_faults("default"), page_faults("reuse")
    assert reused < default / 2, (default, reused)
