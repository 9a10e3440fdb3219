"""The GPU code paths, on a CUDA GPU (skipped elsewhere): every style statistic and a mask
run their steps with finite losses, a GPU run agrees with a CPU run, and CUDA-graph replay
(``compile_mode="reduce-overhead"``) agrees with eager steps.

Self-contained (``pytest --noconftest tests/nst/test_gpu.py`` runs it on a machine with only
torch, torchvision, Pillow and safetensors): the weights come from ``NST_WEIGHTS``, the
images from ``../shared/images``.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from PIL import Image

from nst import Job, StyleParams, Stylizer, decode_image
from nst.masks import PALETTE

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

IMAGES = Path(__file__).resolve().parents[3] / "shared/images"


@pytest.fixture(scope="module")
def images() -> tuple[Image.Image, Image.Image, Image.Image]:
    return (
        decode_image(IMAGES / "content/astronaut.png"),
        decode_image(IMAGES / "style/starry_night.jpg"),
        decode_image(IMAGES / "style/the_scream.jpg"),
    )


@pytest.fixture(scope="module")
def gpu() -> Stylizer:
    return Stylizer(device="cuda")


def finished(result, steps: int) -> bool:
    total = result.losses.total
    return (
        result.steps_run == steps
        and result.stopped is None
        and math.isfinite(total)
        and total < result.initial_losses.total
    )


@pytest.mark.parametrize("style_loss", ["gram", "mean_cov", "sliced_wasserstein"])
def test_every_style_statistic_runs_its_steps_on_the_gpu(gpu, images, style_loss):
    content, style, _ = images
    params = StyleParams(size=128, steps=20, style_loss=style_loss)
    assert finished(gpu.stylize(Job(content, [style], params)), 20)


def test_a_mask_with_two_styles_runs_on_the_gpu(gpu, images):
    content, style, second = images
    mask = Image.new("RGB", content.size, PALETTE[1][1])
    mask.paste(PALETTE[2][1], (content.width // 2, 0, content.width, content.height))
    job = Job(content, [style, second], StyleParams(size=128, steps=20), mask=mask)
    gpu.check(job)
    assert finished(gpu.stylize(job), 20)


def test_a_gpu_run_reaches_the_loss_of_a_cpu_run(images):
    content, style, _ = images
    job = Job(content, [style], StyleParams(size=96, steps=30, optimizer="adam"))
    on_gpu = Stylizer(device="cuda", precision="fp32").stylize(job).losses.total
    on_cpu = Stylizer(device="cpu", precision="fp32").stylize(job).losses.total
    assert abs(on_gpu / on_cpu - 1) < 0.02


def test_cuda_graph_replay_agrees_with_eager_steps(images):
    content, style, _ = images
    job = Job(content, [style], StyleParams(size=128, steps=40, optimizer="adam"))
    eager = Stylizer(device="cuda").stylize(job)
    replayed = Stylizer(device="cuda", compile=True, compile_mode="reduce-overhead")
    replayed.stylize(job)  # the first run compiles and records
    again = replayed.stylize(job)
    assert again.steps_run == 40
    assert abs(again.losses.total / eager.losses.total - 1) < 0.01
