#!/usr/bin/env python3
"""Fetch torchvision's official VGG19 (IMAGENET1K_V1), verify it, write features-only safetensors.

    python scripts/fetch_weights.py -o weights/vgg19-torchvision-features.safetensors

Run at image build time (needs network access to download.pytorch.org). The checkpoint is
read with ``torch.load(weights_only=True)``; its sha256 must start with the hash prefix that
torchvision puts in the file name (``vgg19-dcbb9e9d.pth``), or equal ``--sha256`` if given.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
import tempfile
from pathlib import Path

import requests
import torch
from torchvision.models import VGG19_Weights
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from nst.weights import TORCHVISION_CONVENTION, save_weights  # noqa: E402


def expected_prefix(url: str) -> str:
    """The hash prefix torchvision embeds in checkpoint names (``name-<sha256 prefix>.pth``)."""
    match = re.search(r"-([0-9a-f]{8,})\.pth$", url)
    if not match:
        raise ValueError(f"no hash in {url}")
    return match.group(1)


def download(url: str, dest: Path) -> str:
    """Stream ``url`` to ``dest`` with a progress bar; returns the file's sha256."""
    digest = hashlib.sha256()
    with requests.get(url, stream=True, timeout=60) as response:
        response.raise_for_status()
        total = int(response.headers.get("content-length", 0))
        with dest.open("wb") as out, tqdm(total=total, unit="B", unit_scale=True) as bar:
            for chunk in response.iter_content(1 << 20):
                out.write(chunk)
                digest.update(chunk)
                bar.update(len(chunk))
    return digest.hexdigest()


def verify(sha256: str, url: str, full: str | None) -> None:
    """Raise if the checksum does not match the pinned value."""
    if full is not None and sha256 != full.lower():
        raise SystemExit(f"sha256 mismatch: got {sha256}, expected {full}")
    if not sha256.startswith(expected_prefix(url)):
        raise SystemExit(f"sha256 {sha256} does not start with {expected_prefix(url)}")


def convert(checkpoint: Path, output: Path, source: str) -> int:
    """Write the features of a torchvision VGG19 checkpoint as safetensors with metadata."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    return save_weights(output, state, TORCHVISION_CONVENTION,
                        {"source": source, "license": "BSD-3-Clause (torchvision)"})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--url", default=VGG19_Weights.IMAGENET1K_V1.url)
    parser.add_argument("--sha256", help="full sha256 to require (default: the name's prefix)")
    args = parser.parse_args(argv)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = Path(tmp) / "vgg19.pth"
        verify(download(args.url, checkpoint), args.url, args.sha256)
        count = convert(checkpoint, args.output, args.url)
    print(f"wrote {args.output}: {count} tensors, torchvision convention")
    return 0


if __name__ == "__main__":
    sys.exit(main())
