"""Shared fixtures: the real weights and images from ../shared."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from handler.histograms import ADDRESS_ENV
from nst.weights import WEIGHTS_ENV, default_weights_path
from tests.live_server import (
    DEV_WEIGHTS,
    SHARED,
    server,  # noqa: F401  (the session's real TorchServe)
)

CONTENT = SHARED / "images/content"
STYLE = SHARED / "images/style"


def adobe_rgb_profile() -> bytes:
    """The Adobe RGB (1998) ICC profile embedded in one of the shared photos."""
    from PIL import Image

    return Image.open(CONTENT / "rocket.jpg").info["icc_profile"]


torch.set_num_threads(min(2, os.cpu_count() or 1))
# The development weights, unless the caller names others: the library itself never looks there.
os.environ[WEIGHTS_ENV] = os.environ.get(WEIGHTS_ENV) or str(DEV_WEIGHTS)
# Handlers made in this process keep their histograms to themselves (no port); the real
# servers the tests start get a free port of their own (tests/live_server.py).
os.environ[ADDRESS_ENV] = ""


@pytest.fixture(scope="session")
def weights_path() -> Path:
    path = default_weights_path()
    if not path.is_file():
        pytest.skip(f"real VGG19 weights not found at {path} (set NST_WEIGHTS)")
    return path


@pytest.fixture(scope="session")
def stylizer(weights_path):
    from nst import Stylizer

    return Stylizer(str(weights_path))


@pytest.fixture(scope="session")
def images():
    """Decoded real images by name."""
    from nst import decode_image

    if not CONTENT.is_dir():
        pytest.skip(f"shared images not found at {CONTENT}")
    return {p.name: decode_image(p) for d in (CONTENT, STYLE) for p in sorted(d.iterdir())}
