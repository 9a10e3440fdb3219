"""Fetch torchvision's official VGG19 (IMAGENET1K_V1), verify it, write features-only safetensors.

    nst-fetch-weights [-o FILE] [--if-missing] [--url URL | --from FILE] [--sha256 HEX]

The default output is torchvision's checkpoint cache (``torch.hub.get_dir()/checkpoints``,
which honours ``$TORCH_HOME``), where the engine looks when ``$NST_WEIGHTS`` is not set.
Downloading needs access to download.pytorch.org (image builds, first runs); ``--from``
takes a file already on disk instead (air-gapped builds). The checkpoint is read with
``torch.load(weights_only=True)``; its sha256 must equal ``--sha256`` if given, else start
with the hash prefix torchvision puts in the official file name (``vgg19-dcbb9e9d.pth``). A
``.safetensors`` file (already converted, or other VGG19 weights with their input convention
in the metadata) is accepted only with ``--sha256``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

from torch.hub import download_url_to_file

from .errors import WeightsError
from .version import add_version
from .weights import (
    TORCHVISION_CONVENTION,
    WEIGHTS_ENV,
    VGGWeights,
    cached_weights,
    default_weights_path,
    find_weights,
    load_weights,
    save_weights,
)

URL_ENV = "NST_WEIGHTS_URL"  # a mirror of the checkpoint, for builds without the internet


def official_url() -> str:
    """``$NST_WEIGHTS_URL`` or torchvision's download address of VGG19 IMAGENET1K_V1."""
    from torchvision.models import VGG19_Weights  # a second to import: only when fetching

    return os.environ.get(URL_ENV) or VGG19_Weights.IMAGENET1K_V1.url


class FetchError(RuntimeError):
    """The weights could not be downloaded or did not verify."""


def expected_prefix(url: str) -> str:
    """The hash prefix torchvision embeds in checkpoint names (``name-<sha256 prefix>.pth``)."""
    match = re.search(r"-([0-9a-f]{8,})\.pth$", url)
    if not match:
        raise ValueError(f"no hash in {url}")
    return match.group(1)


def file_sha256(path: Path) -> str:
    """The sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(url: str, dest: Path) -> str:
    """Download ``url`` to ``dest`` with a progress bar; returns the file's sha256."""
    try:
        download_url_to_file(url, str(dest), progress=True)
    except OSError as exc:  # URLError, timeouts and refused connections are OSErrors
        raise FetchError(f"could not download {url}: {getattr(exc, 'reason', exc)}") from exc
    return file_sha256(dest)


def verify(sha256: str, url: str, full: str | None) -> None:
    """Raise :class:`FetchError` unless ``sha256`` equals ``full`` (when given) or else
    starts with the hash prefix in ``url``'s file name."""
    if full is not None:
        if sha256 != full.lower():
            raise FetchError(f"sha256 mismatch: got {sha256}, expected {full}")
    elif not sha256.startswith(expected_prefix(url)):
        raise FetchError(f"sha256 {sha256} does not start with {expected_prefix(url)}")


def convert(checkpoint: Path, output: Path, source: str) -> int:
    """Write the features of a torchvision VGG19 checkpoint as safetensors with metadata."""
    weights = checked_weights(checkpoint)
    return save_weights(
        output,
        weights.state_dict,
        TORCHVISION_CONVENTION,
        {"source": source, "license": "BSD-3-Clause (torchvision)"},
    )


def checked_weights(path: Path) -> VGGWeights:
    """:func:`load_weights` (weights-only loading, shapes checked), failures as FetchError."""
    try:
        return load_weights(path)
    except WeightsError as exc:
        raise FetchError(str(exc)) from exc


def fetch(output: Path | None = None, url: str | None = None, sha256: str | None = None) -> int:
    """Download (:func:`official_url` by default), verify and convert into ``output``
    (default: :func:`~nst.weights.cached_weights`); returns the tensor count."""
    output = output or cached_weights()
    url = url or official_url()
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = Path(tmp) / "vgg19.pth"
        verify(download(url, checkpoint), url, sha256)
        return convert(checkpoint, output, url)


def from_file(source: Path, output: Path, sha256: str | None = None) -> int:
    """Verify a local checkpoint (as :func:`fetch` does a download) and convert it into
    ``output``; a ``.safetensors`` source needs ``sha256`` and is copied once it loads."""
    if not source.is_file():
        raise FetchError(f"{source} not found")
    if source.suffix == ".safetensors" and sha256 is None:
        raise FetchError(f"{source}: a .safetensors file needs --sha256 (no published hash)")
    verify(file_sha256(source), official_url(), sha256)
    output.parent.mkdir(parents=True, exist_ok=True)
    if source.suffix != ".safetensors":
        return convert(source, output, f"{source.name} (sha256 checked)")
    count = len(checked_weights(source).state_dict)
    shutil.copyfile(source, output)
    return count


def ensure_weights(explicit: str | os.PathLike | None = None) -> Path:
    """The weights to use: ``explicit``, else the first found (``$NST_WEIGHTS`` or the
    cache), else the official ones fetched into the cache once, as torchvision does (not when
    ``$NST_WEIGHTS`` names a file: loading it then says it is missing). Raises
    :class:`FetchError` when the download fails."""
    if explicit is not None:
        return Path(explicit)
    found = find_weights()
    if found is not None or os.environ.get(WEIGHTS_ENV):
        return found or default_weights_path()
    print(f"no VGG19 weights yet: fetching the official ones into {cached_weights()}")
    fetch()
    return cached_weights()


def weights_or_exit(explicit: str | os.PathLike | None = None) -> Path:
    """:func:`ensure_weights` for a command: SystemExit with :func:`advice` when it fails."""
    try:
        return ensure_weights(explicit)
    except FetchError as exc:
        raise SystemExit(advice(exc)) from None


def advice(error: FetchError) -> str:
    """One line: what failed and what to do instead."""
    return (
        f"{error}. Set {WEIGHTS_ENV} to a VGG19 weights file (.safetensors or .pth), run "
        "`nst-fetch-weights` where download.pytorch.org can be reached, or "
        "`nst-fetch-weights --from FILE` with the official checkpoint on disk."
    )


def parser() -> argparse.ArgumentParser:
    """The command's options (the defaults read the environment when it is built)."""
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    add_version(parser)
    parser.add_argument(
        "-o", "--output", type=Path, default=cached_weights(), help="safetensors file to write"
    )
    parser.add_argument(
        "--if-missing", action="store_true", help="do nothing when the output file already exists"
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--url", default=official_url(), help=f"checkpoint to fetch (${URL_ENV} sets the default)"
    )
    source.add_argument(
        "--from",
        dest="source",
        type=Path,
        help="a checkpoint (.pth) or weights (.safetensors) on disk instead of a download",
    )
    parser.add_argument(
        "--sha256", help="full sha256 to require (else: the official file name's hash prefix)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.if_missing and args.output.is_file():
        print(f"{args.output} already exists")
        return 0
    try:
        if args.source is not None:
            count = from_file(args.source, args.output, args.sha256)
        else:
            count = fetch(args.output, args.url, args.sha256)
    except FetchError as exc:
        print(advice(exc), file=sys.stderr)
        return 1
    print(f"wrote {args.output}: {count} tensors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
